"""`tzoo bench --gradients`: the gradient profile (each block's gradient norm at initialisation
and over the first steps, per variant) is measured right and written as JSON, a figure and a
README section."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tzoo.cli import build_parser
from tzoo.components import ConfigError
from tzoo.recipes.bench.cli import bench_command
from tzoo.recipes.bench.gradients import profile, randomised
from tzoo.recipes.bench.subjects import build_subject
from tzoo.recipes.experiment import load_experiment
from tzoo.recipes.tokenization import N_SPECIAL

pytestmark = pytest.mark.usefixtures("one_thread")

GRID = """\
experiment: tiny-gradients
data: {corpus: "builtin:pydoc", tokenizer: char, context: 16, batch_size: 2}
model: {d_model: 16, layers: 2, heads: 2, max_len: 16}
train: {steps: 10, warmup: 1, log_every: 2, progress: false, threads: 1}
eval: {batches: 1, context_multipliers: [1]}
ablate: {mode: grid, model.placement: [post, pre], model.init: [gpt2, vaswani]}
"""


@pytest.fixture(scope="module")
def experiment_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gradients") / "grid.yaml"
    path.write_text(GRID)
    return path


def _bench(experiment_file: Path, plots: Path, *extra: str) -> int:
    return bench_command(build_parser().parse_args([
        "bench", str(experiment_file), "--no-table", "--gradients", "--threads", "1",
        "--plots", str(plots), *extra]))


def test_profile_json_figure_and_readme(experiment_file: Path, tmp_path: Path) -> None:
    plots = tmp_path / "plots"
    assert _bench(experiment_file, plots, "--gradient-steps", "2", "--gradient-tokens",
                  "random") == 0
    doc = json.loads((plots / "gradients.json").read_text())
    assert doc["settings"]["tokens"] == "random" and doc["settings"]["steps"] == 2
    assert {(v["placement"], v["init"]) for v in doc["variants"].values()} == {
        ("post", "gpt2"), ("post", "vaswani"), ("pre", "gpt2"), ("pre", "vaswani")}
    for result in doc["variants"].values():
        assert result["blocks"] == ["decoder 0", "decoder 1"]
        assert result["steps"] == [0, 1, 2] and len(result["loss"]) == 3
        assert len(result["block_grad_norm"]) == 3
        for norms in result["block_grad_norm"]:
            assert len(norms) == 2 and all(math.isfinite(n) and n > 0 for n in norms)
        assert result["block_grad_norm"][0] != result["block_grad_norm"][2]  # it trained
    figure = plots / "gradient_profile.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    readme = (plots / "README.md").read_text()
    assert "### Gradient profile" in readme and "![gradient_profile.png]" in readme
    assert "model.init=vaswani" in readme


def test_the_profile_at_initialisation_is_each_blocks_gradient_norm(
        experiment_file: Path) -> None:
    config = load_experiment(experiment_file, ["model.layers=3"]).plan()[0].config
    subject = build_subject("post", config, seed=0)
    weights = {k: v.clone() for k, v in subject.model.state_dict().items()}
    result = profile(subject, steps=0)  # the real batches: `tokens: data`
    assert result["blocks"] == ["decoder 0", "decoder 1", "decoder 2"]
    model = subject.model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())  # no update
    model.zero_grad()
    loss, _ = subject.task.loss(subject.batches[0])
    loss.backward()
    for i, measured in enumerate(result["block_grad_norm"][0]):
        squares = sum(p.grad.pow(2).sum() for name, p in model.named_parameters()
                      if name.startswith(f"stack.blocks.{i}."))
        assert measured == pytest.approx(math.sqrt(float(squares)), rel=1e-5)
    assert result["loss"] == [pytest.approx(float(loss.detach()))]


def test_random_tokens_keep_special_ids_and_padding() -> None:
    ids = torch.tensor([[1, 10, 11, 12, 2, 0, 0], [1, 20, 21, 22, 23, 24, 2]])
    out = randomised({"tokens": ids, "lengths": [5, 7]}, 50, torch.Generator().manual_seed(0))
    special = ids < N_SPECIAL
    assert torch.equal(out["tokens"][special], ids[special])
    regular = out["tokens"][~special]
    assert ((regular >= N_SPECIAL) & (regular < 50)).all() and not torch.equal(regular,
                                                                                ids[~special])
    assert out["lengths"] == [5, 7]


def test_negative_steps_are_refused(experiment_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        _bench(experiment_file, tmp_path, "--gradient-steps", "-1")
    assert error.value.key == "--gradient-steps"
    assert not tmp_path.joinpath("gradients.json").exists()
