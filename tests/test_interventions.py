"""Interventions inside trained models: the hooks change nothing until asked, and each
intervention means what it says (knocking out every head = skipping the sublayer; the logit lens
at the last layer = the model's loss; patching a run with itself = no change), on tiny models
trained here, plus the report section and `tzoo probe` on a run trained by `tzoo run`."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY

import tzoo
from tzoo.cli import main
from tzoo.components import build_model
from tzoo.components.errors import ConfigError
from tzoo.components.interventions import (
    RunningMean,
    ablate,
    intervene,
    logit_lens,
    patch,
    points,
)
from tzoo.recipes.checkpoints import load_run
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.runner import run_experiment
from tzoo.recipes.validation import Validation
from tzoo.reports.build import build_report
from tzoo.reports.interventions import head_knockout, lens_losses, run_interventions

pytestmark = pytest.mark.usefixtures("one_thread")

VOCAB, LENGTH = 12, 16
SHAPES = {
    "pre": {},
    "post": {"placement": "post"},
    "sandwich-rmsnorm": {"placement": "sandwich", "norm": "rmsnorm"},
    "gqa-swiglu": {"attention": {"name": "gqa", "kv_heads": 2}, "ffn": "swiglu"},
    "rezero-no-ffn": {"residual": "rezero", "ffn": "none"},
    "encoder": {"arch": "encoder"},
    "encoder-decoder": {"arch": "encoder_decoder"},
}


def _repeats(batch: int, seed: int) -> torch.Tensor:
    """Random halves repeated once: a sequence whose second half a model can learn to copy."""
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(0, VOCAB, (batch, LENGTH // 2), generator=generator)
    return torch.cat([half, half], dim=1)


def _logits(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "encoder"):
        return model(tokens, tokens[:, :-1])
    return model(tokens[:, :-1])


def _loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    logits = _logits(model, tokens)
    return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())


@functools.cache
def _trained(shape: str, bias: bool = True) -> torch.nn.Module:
    """A tiny zoo model trained for 40 steps (about a second) on repeated halves; trained once
    per shape (the tests only hook it, which leaves no trace)."""
    torch.manual_seed(0)
    model = build_model({"vocab_size": VOCAB, "d_model": 16, "layers": 2, "heads": 4,
                         "max_len": LENGTH, "position": "rotary", "bias": bias,
                         **SHAPES[shape]})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(40):
        loss = _loss(model, _repeats(16, step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _hooks_left(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ------------------------------------------------------------------------ the hooks themselves


@pytest.mark.parametrize("shape", list(SHAPES))
def test_hooks_leave_outputs_bit_identical_when_no_intervention_is_active(shape: str) -> None:
    model = _trained(shape)
    tokens = _repeats(4, 99)
    with torch.no_grad():
        reference = _logits(model, tokens)
        named = points(model)
        with intervene(model, record=named) as seen:  # every point observed, none changed
            observed = _logits(model, tokens)
        after = _logits(model, tokens)
    assert torch.equal(observed, reference) and torch.equal(after, reference)
    assert _hooks_left(model) == 0
    assert all(len(values) == 1 for values in seen.values())
    heads = next(v[0] for name, v in seen.items() if name.endswith("attn.heads"))
    assert heads.shape[-2:] == (4, 4)  # (…, heads, head_dim): heads still separate
    if shape == "encoder-decoder":
        assert "decoder.blocks.1.cross_attn.heads" in named and "encoder.final_norm" in named


@pytest.mark.parametrize("shape", ["pre", "gqa-swiglu", "rezero-no-ffn"])
def test_knocking_out_every_head_of_a_layer_equals_removing_that_attention_sublayer(
        shape: str) -> None:
    tokens = _repeats(4, 7)
    unbiased = _trained(shape, bias=False)
    with torch.no_grad():
        reference = _logits(unbiased, tokens)
        for layer in range(2):
            with intervene(unbiased, {f"blocks.{layer}.attn.heads": ablate()}):
                no_heads = _logits(unbiased, tokens)
            with intervene(unbiased, {f"blocks.{layer}.attn.sublayer": ablate()}):
                no_sublayer = _logits(unbiased, tokens)
            assert torch.equal(no_heads, no_sublayer)
            assert not torch.equal(no_heads, reference)  # the layer did something
    # With a bias, zeroing every head leaves the output projection's bias in the stream: exactly
    # what the sublayer adds (through its residual: ReZero scales it) when its write is that.
    biased = _trained(shape)
    block = biased.stack.blocks[0]
    bias = block.self_attention.out.bias.detach()
    write = block.self_attention_sublayer.residual(torch.zeros_like(bias), bias).detach()
    with torch.no_grad():
        with intervene(biased, {"blocks.0.attn.heads": ablate()}):
            no_heads = _logits(biased, tokens)
        with intervene(biased, {"blocks.0.attn.sublayer": ablate(value=write)}):
            bias_only = _logits(biased, tokens)
    torch.testing.assert_close(no_heads, bias_only, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", ["pre", "post", "sandwich-rmsnorm", "encoder-decoder"])
def test_logit_lens_at_the_last_layer_is_the_models_own_prediction(shape: str) -> None:
    model = _trained(shape)
    tokens = _repeats(8, 5)
    with torch.no_grad():
        own = _loss(model, tokens)
        with intervene(model, logit_lens(model, 1)):
            last = _loss(model, tokens)
        with intervene(model, logit_lens(model, -1)):
            embedding_only = _loss(model, tokens)
    assert torch.equal(last, own)
    assert not torch.equal(embedding_only, own)  # it does read another stream
    with pytest.raises(ConfigError, match="out of range"):
        logit_lens(model, 2)


@pytest.mark.parametrize("shape", ["pre", "post", "encoder-decoder"])
def test_patching_the_clean_activation_into_the_clean_run_changes_nothing(shape: str) -> None:
    model = _trained(shape)
    clean, other = _repeats(4, 1), _repeats(4, 2)
    corrupted = torch.cat([other[:, : LENGTH // 2], clean[:, LENGTH // 2:]], dim=1)
    named = [n for n in points(model) if not n.endswith("final_norm")]
    with torch.no_grad():
        reference = _logits(model, clean)
        with intervene(model, record=named) as seen:
            _logits(model, clean)
        for name in named:
            with intervene(model, {name: patch(seen[name][0])}):
                assert torch.equal(_logits(model, clean), reference), name
        # Patching the whole stream entering the first block (of each stack: an encoder-decoder
        # reads the tokens twice) turns the corrupted run into the clean one; one head changes
        # the output without restoring it.
        firsts = [n for n in named if n.endswith("blocks.0.resid_pre")]
        with intervene(model, {name: patch(seen[name][0]) for name in firsts}):
            assert torch.equal(_logits(model, corrupted), reference)
        heads = named[1]
        corrupted_logits = _logits(model, corrupted)
        with intervene(model, {heads: patch(seen[heads][0], heads=[0])}):
            one_head = _logits(model, corrupted)
    assert not torch.equal(one_head, corrupted_logits)
    assert not torch.equal(one_head, reference)


def test_ablate_patch_and_mean_touch_only_the_heads_named() -> None:
    model = _trained("pre")
    tokens = _repeats(4, 3)
    name = "blocks.1.attn.heads"
    observer = RunningMean()
    with torch.no_grad():
        with intervene(model, {name: observer}, record=[name]) as plain:
            _logits(model, tokens)
        original = plain[name][0]
        torch.testing.assert_close(observer.mean, original.double().mean(dim=(0, 1)).float())
        with intervene(model, {name: ablate(heads=[2], value=observer.mean)},
                       record=[name]) as edited:
            _logits(model, tokens)
    changed = edited[name][0]
    assert torch.equal(changed[..., [0, 1, 3], :], original[..., [0, 1, 3], :])
    assert torch.equal(changed[..., 2, :], observer.mean[2].expand_as(changed[..., 2, :]))


def test_unknown_points_are_refused_and_hooks_never_outlive_the_block() -> None:
    model = _trained("pre")
    typo = {"blocks.1.atn.heads": ablate()}
    with pytest.raises(ConfigError, match=r"did you mean 'blocks\.1\.attn\.heads'"), \
            intervene(model, typo):
        pass
    with pytest.raises(RuntimeError, match="boom"), \
            intervene(model, {"blocks.0.ffn.out": ablate()}):
        raise RuntimeError("boom")
    assert _hooks_left(model) == 0
    with pytest.raises(ConfigError, match="not a transformer-zoo model"):
        points(torch.nn.Linear(2, 2))
    assert tzoo.intervene is intervene and tzoo.ablate is ablate  # the notebook entry point


def test_interventions_on_an_encoder_decoder_name_both_stacks() -> None:
    model = _trained("encoder-decoder")
    tokens = _repeats(8, 11)

    def evaluate() -> float:
        return float(_loss(model, tokens))

    result = run_interventions(model, evaluate, windows=None)
    assert result.attention == ["enc 0", "enc 1", "dec 0", "dec 0 cross", "dec 1", "dec 1 cross"]
    assert result.zero.shape == result.mean.shape == (6, 4)
    assert result.blocks == ["enc 0", "enc 1", "dec 0", "dec 1"]
    cross = result.skipped["cross-attention"]
    assert np.isnan(cross[:2]).all() and not np.isnan(cross[2:]).any()
    assert result.lens[-1] == result.baseline  # the decoder's lens ends at the model's loss
    assert "causal language model" in result.not_applicable["patch"]


# ------------------------------------------------------------- a run trained by `tzoo run`


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer LM trained for 150 steps on the induction task, as `tzoo run` trains it (it
    learns enough in that time for its blocks to matter)."""
    raw = copy.deepcopy(TINY)
    raw["experiment"] = "interp"
    raw["data"].update(corpus="synthetic:induction", context=32,
                       options={"vocab": 8, "length": 8,
                                "samples": {"train": 300, "validation": 40, "test": 20}})
    raw["model"].update(layers=2, heads=2, d_model=32)
    raw["train"].update(steps=150, warmup=10, val_every=75, checkpoint_every=75, lr=1e-2)
    raw["eval"]["repeat_loss"] = True  # the knockouts are read on the repeated half too
    raw["seeds"] = [0]
    root = tmp_path_factory.mktemp("runs")
    (outcome,) = run_experiment(experiment_from_dict(raw), out=root, echo=lambda *_: None)
    assert outcome.status == "completed"
    return outcome.run_dir


def test_validation_loss_is_the_runs_own_val_loss(trained_run: Path) -> None:
    loaded = load_run(trained_run)
    validation = Validation(loaded.config, loaded.model)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert validation.loss() == pytest.approx(summary["metrics"]["val/loss"], rel=1e-5)
    assert validation.causal_windows().shape[1] == 33  # context + 1


def test_repeated_and_fresh_losses_are_the_runs_own_split(trained_run: Path) -> None:
    loaded = load_run(trained_run)
    validation = Validation(loaded.config, loaded.model)
    metrics = json.loads((trained_run / "summary.json").read_text())["metrics"]
    assert validation.splits_repeats
    repeat, fresh = validation.halves()
    assert repeat == pytest.approx(metrics["val/loss_repeat"], rel=1e-5)
    assert fresh == pytest.approx(metrics["val/loss_fresh"], rel=1e-5)


def test_knocking_out_every_head_equals_skipping_the_sublayer_on_the_repeated_half_too(
        trained_run: Path) -> None:
    loaded = load_run(trained_run)
    model = loaded.model
    with torch.no_grad():  # without the projection's bias, zeroed heads write nothing
        for block in model.stack.blocks:
            block.self_attention.out.bias.zero_()
    validation = Validation(loaded.config, model, max_batches=1)
    untouched = validation.halves()
    for layer in range(2):
        with intervene(model, {f"blocks.{layer}.attn.heads": ablate()}):
            no_heads = validation.halves()
        with intervene(model, {f"blocks.{layer}.attn.sublayer": ablate()}):
            no_sublayer = validation.halves()
        assert no_heads == no_sublayer
        assert no_heads[0] != untouched[0]


def test_knockouts_and_lens_on_a_trained_run(trained_run: Path) -> None:
    loaded = load_run(trained_run)
    model = loaded.model
    validation = Validation(loaded.config, model, max_batches=1)
    baseline = validation.loss()
    labels, lens = lens_losses(model, validation.loss)
    assert labels == ["emb", "0", "1"] and lens[-1] == baseline
    assert lens[0] > baseline  # the blocks improve on predicting from the embedding alone
    deltas = head_knockout(model, validation.loss, baseline, modes=("zero",))["zero"]
    with intervene(model, {"blocks.0.attn.heads": ablate()}):
        every_head = validation.loss()
    with intervene(model, {"blocks.0.attn.sublayer": ablate()}):
        no_sublayer = validation.loss()
    assert deltas.shape == (2, 2) and np.abs(deltas).max() > 0
    assert every_head - baseline > 0 and no_sublayer - baseline > 0


def test_report_section_and_probe_command(trained_run: Path, tmp_path: Path, capsys) -> None:
    report = build_report([trained_run.parent], tmp_path / "report").read_text()
    section = report[report.index("## What each part does"):]
    for figure in ("heads", "depth"):
        path = tmp_path / "report" / "interventions" / "base" / f"{figure}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"interventions/base/{figure}.png" in section
    assert "Logit lens" in section and "interventions skipped" not in section
    assert "On the repeated half" in section and "the median other head" in section
    # the induction probe reads the run's own repeated tokens
    assert "on the run's own validation data" in report[:report.index("## What each part does")]
    assert "| seed | layer | head 0 | head 1 |" in section  # repeated-half Δ per layer × head

    out = tmp_path / "probe"
    assert main(["probe", str(trained_run), "--what", "heads", "--what", "lens",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "zero-ablation" in printed and "mean-ablation" in printed and "logit lens" in printed
    assert "block knockout" not in printed and "patching" not in printed
    assert "Δ loss on the repeated tokens, mean-ablation" in printed
    numbers = json.loads((out / "interventions.json").read_text())
    assert numbers["lens"][-1] == numbers["baseline"]
    assert np.array(numbers["halves_mean"]).shape == (2, 2, 2)  # layers × heads × parts
    assert sorted(p.name for p in out.glob("*.png")) == ["depth.png", "heads.png"]
    assert main(["probe", str(trained_run), "--what", "patch", "--batches", "1"]) == 0
    assert "share of that gap restored" in capsys.readouterr().out


def test_probe_command_refuses_bad_input(trained_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["probe", str(trained_run), "--what", "haeds"]) == 2
    assert "did you mean 'heads'" in capsys.readouterr().err
    assert main(["probe", str(tmp_path / "nothing")]) == 2
    assert "no final checkpoint" in capsys.readouterr().err
    assert main(["probe", str(trained_run), "--batches", "0"]) == 2


def test_head_maps_draw_a_seed_whose_patching_gap_vanished(tmp_path: Path) -> None:
    """One seed's corrupted input did not raise its loss (no share restored to show) while
    another's did: the figure still draws, the first seed's patching map left blank."""
    from tzoo.reports.intervention_plots import heads_figure
    from tzoo.reports.interventions import Interventions

    def seed(number: int, corrupt: float) -> Interventions:
        grid = np.arange(8, dtype=float).reshape(2, 4) / 10
        return Interventions(baseline=2.0, seed=number, attention=["0", "1"], heads=4,
                             zero=grid, mean=grid / 2, patch_clean=2.0,
                             patch_corrupt=corrupt, patched=np.full((2, 4), 2.05))

    results = [seed(0, corrupt=1.9), seed(1, corrupt=2.2)]
    assert results[0].restored is None and results[1].restored is not None
    path = heads_figure(results, tmp_path / "heads.png")
    assert path is not None and path.stat().st_size > 0
