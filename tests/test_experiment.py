"""Experiment files: validation errors (through the CLI), `extends:`, `--set`, ablation
expansion, bundles, run ids and the leak guard. Nothing here trains."""

from __future__ import annotations

import json

import pytest
import yaml

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.recipes.experiment import experiment_from_dict, load_experiment, run_id


def _bad_input(capsys, argv: list[str]) -> str:
    """Run the CLI on input that must be refused; return its one-paragraph message."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert err and "\n" not in err, f"not one paragraph: {err!r}"
    return err


# (files to write, the file to validate, fragments the message must contain)
BAD_FILES = {
    "unknown top-level key": (
        {"x.yaml": "modle: {layers: 2}\n"}, "x.yaml",
        ["x.yaml", "'modle'", "did you mean 'model'"]),
    "unknown variant": (
        {"x.yaml": "model: {position: rotery}\n"}, "x.yaml",
        ["x.yaml", "model.position", "'rotery'", "did you mean 'rotary'"]),
    "wrong type": (
        {"x.yaml": 'train: {steps: "ten"}\n'}, "x.yaml",
        ["x.yaml", "train.steps", "expected an integer", "'ten'"]),
    "extends cycle": (
        {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "a.yaml",
        ["a.yaml", "extends", "cycle", "a.yaml -> b.yaml -> a.yaml"]),
    "axis on a missing key": (
        {"x.yaml": "ablate: {model.positon: [rotary, alibi]}\n"}, "x.yaml",
        ["x.yaml", "ablate.model.positon", "did you mean 'model.position'"]),
    "malformed YAML": (
        {"x.yaml": "model:\n  layers: 2\n   heads: [4\n"}, "x.yaml",
        ["x.yaml", "malformed YAML", "line 3"]),
    "empty axis": (
        {"x.yaml": "ablate: {model.position: []}\n"}, "x.yaml",
        ["x.yaml", "ablate.model.position", "non-empty list"]),
    "unknown mode": (
        {"x.yaml": "ablate: {mode: gird, model.layers: [1, 2]}\n"}, "x.yaml",
        ["x.yaml", "ablate.mode", "did you mean 'grid'"]),
    "several devices for a one-device strategy": (
        {"x.yaml": "train: {devices: 2, strategy: single_device}\n"}, "x.yaml",
        ["x.yaml", "train.strategy", "one device", "ddp"]),
    "a batch that does not split over the devices": (
        {"x.yaml": "data: {batch_size: 10}\ntrain: {devices: 2, accumulate: 2}\n"}, "x.yaml",
        ["x.yaml", "data.batch_size", "= 4 parts", "use 8 or 12"]),
    "devices neither a number nor auto": (
        {"x.yaml": "train: {devices: all}\n"}, "x.yaml",
        ["x.yaml", "train.devices", "'auto'"]),
    "unknown strategy": (
        {"x.yaml": "train: {strategy: dpp}\n"}, "x.yaml",
        ["x.yaml", "train.strategy", "did you mean 'ddp'"]),
    "FSDP on the CPU": (
        {"x.yaml": "train: {strategy: fsdp, accelerator: cpu, devices: 2}\n"}, "x.yaml",
        ["x.yaml", "train.strategy", "FSDP needs CUDA"]),
    "reference on an axis not ablated": (
        {"x.yaml": "ablate: {mode: grid, model.layers: [1, 2], reference: {model.layer: 1}}\n"},
        "x.yaml", ["x.yaml", "ablate.reference.model.layer", "did you mean 'model.layers'"]),
    "reference value not on its axis": (
        {"x.yaml": "ablate: {mode: grid, model.ffn: [gelu, relu], reference: {model.ffn: gelo}}"
                   "\n"}, "x.yaml",
        ["x.yaml", "ablate.reference.model.ffn", "did you mean 'gelu'", "allowed: gelu, relu"]),
    "bad variant inside an axis": (
        {"x.yaml": "ablate: {model.norm: [rmsnorm, rmsnrom]}\n"}, "x.yaml",
        ["x.yaml", "model.norm", "did you mean 'rmsnorm'"]),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_experiment_exits_2_with_one_paragraph(case, command, write_yaml, tmp_path, capsys):
    files, target, fragments = BAD_FILES[case]
    for name, text in files.items():
        write_yaml(name, text)
    err = _bad_input(capsys, [command, str(tmp_path / target), "--out", str(tmp_path / "runs")])
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} missing from: {err}"
    assert not (tmp_path / "runs").exists()  # refused before anything ran


def test_set_with_unknown_key_exits_2(tiny, write_yaml, capsys):
    path = write_yaml("x.yaml", tiny)
    err = _bad_input(capsys, ["validate", str(path), "--set", "model.layrs=6"])
    assert "x.yaml" in err and "model.layrs" in err and "did you mean 'model.layers'" in err
    err = _bad_input(capsys, ["validate", str(path), "--set", "model.layers=six"])
    assert "model.layers" in err


def test_validate_lists_the_planned_runs(tiny, write_yaml, capsys):
    tiny["ablate"] = {"model.position": ["rotary", "alibi"]}
    path = write_yaml("x.yaml", tiny)
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tiny: 2 runs" in out and "model.position=alibi" in out


# ------------------------------------------------------------------------ extends and --set


def test_extends_inherits_and_set_overrides(tiny, write_yaml):
    tiny["model"]["position"] = {"name": "alibi"}
    write_yaml("base.yaml", tiny)
    child = write_yaml("sub/child.yaml", {
        "extends": "../base.yaml", "experiment": "child",
        "model": {"layers": 2, "position": "rotary"}, "train": {"lr": 5e-4},
    })
    experiment = load_experiment(child, ["model.layers=6", "data.options.vocab=6"])
    base = experiment.base
    assert experiment.name == "child"
    assert base["model"]["layers"] == 6                 # --set wins over the file
    assert base["model"]["d_model"] == 16               # inherited from base.yaml
    assert base["model"]["position"] == "rotary"        # a variant spec replaces, not merges
    assert base["train"]["lr"] == 5e-4 and base["train"]["steps"] == 20
    assert base["train"]["schedule"] == "cosine"        # schema default
    assert base["data"]["options"]["vocab"] == 6 and base["data"]["options"]["length"] == 8


# ------------------------------------------------------------------------ ablation expansion


def test_grid_and_one_at_a_time_counts(tiny):
    tiny["seeds"] = [0, 1]
    axes = {"model.position": ["rotary", "alibi", "learned"],
            "model.norm": ["layernorm", "rmsnorm"]}
    tiny["ablate"] = {"mode": "one_at_a_time", **axes}
    runs = experiment_from_dict(tiny).plan()
    # base (rotary, layernorm) + alibi + learned + rmsnorm; values equal to the base are folded
    assert len(runs) == 4 * 2
    assert [r.variant_name for r in runs[::2]] == [
        # the base is named by its own values on the ablated axes
        "model.position=rotary, model.norm=layernorm", "model.position=alibi",
        "model.position=learned", "model.norm=rmsnorm"]
    assert runs[0].is_base and runs[0].variant == {}
    assert runs[0].is_base and not runs[2].is_base
    tiny["ablate"] = {"mode": "grid", **axes}
    runs = experiment_from_dict(tiny).plan()
    assert len(runs) == 3 * 2 * 2
    assert len({r.run_id for r in runs}) == 12
    assert sum(r.is_base for r in runs) == 2  # the base combination, once per seed
    combos = {(r.config["model"]["position"], r.config["model"]["norm"]) for r in runs}
    assert len(combos) == 6


def test_bundle_axis_varies_keys_together(tiny):
    tiny["ablate"] = {"size": {
        "small": {"model.layers": 1, "model.d_model": 16},
        "big": {"model.layers": 2, "model.d_model": 32, "train.lr": 3e-4},
    }}
    runs = experiment_from_dict(tiny).plan()
    # `small` equals the base, so it is the base run
    assert [r.variant_name for r in runs] == ["size=small", "size=big"]
    assert runs[0].is_base and runs[0].variant == {}
    big = runs[1].config
    assert (big["model"]["layers"], big["model"]["d_model"], big["train"]["lr"]) == (2, 32, 3e-4)
    assert runs[1].run_id.startswith("big-s0-")
    tiny["ablate"] = {"size": {"big": {"model.layrs": 2}}}
    with pytest.raises(ConfigError, match=r"did you mean 'model\.layers'") as info:
        experiment_from_dict(tiny)
    assert info.value.key == "ablate.size.big"


# ------------------------------------------------------------------------ run ids


def test_run_ids_are_stable_and_seed_dependent(tiny, write_yaml):
    tiny["seeds"] = [0, 1]
    one = load_experiment(write_yaml("one.yaml", tiny)).plan()
    # the same resolved configuration reached another way: other name, extends, non-result keys
    write_yaml("parent.yaml", {**tiny, "model": {**tiny["model"], "position": "alibi"}})
    other = {"extends": "parent.yaml", "experiment": "renamed", "description": "same runs",
             "model": {"position": "rotary"}, "train": {"progress": True, "log_every": 5},
             "seeds": [1, 0]}
    two = load_experiment(write_yaml("two.yaml", other)).plan()
    assert {r.run_id for r in one} == {r.run_id for r in two}
    assert one[0].run_id != one[1].run_id  # seeds differ
    assert one[0].run_id.startswith("base-s0-") and one[1].run_id.startswith("base-s1-")
    again = load_experiment(write_yaml("one.yaml", tiny)).plan()
    assert [r.run_id for r in again] == [r.run_id for r in one]
    changed = load_experiment(write_yaml("one.yaml", tiny), ["train.lr=0.002"]).plan()
    assert changed[0].run_id != one[0].run_id  # a result-relevant key changes the id
    assert run_id(one[0].config, 0, {}) == one[0].run_id


# ------------------------------------------------------------------------ the leak guard


def test_leak_guard_names_model_mask(tiny, write_yaml, capsys):
    tiny["model"]["mask"] = "bidirectional"
    with pytest.raises(ConfigError) as info:
        experiment_from_dict(tiny)
    assert info.value.key == "model.mask" and "allow_future_leak" in str(info.value)
    err = _bad_input(capsys, ["validate", str(write_yaml("leak.yaml", tiny))])
    assert "leak.yaml" in err and "model.mask" in err
    tiny["task"]["allow_future_leak"] = True
    experiment_from_dict(tiny)  # the leak, on purpose
    # the masked objective is what a bidirectional stack is for
    tiny["task"] = {"name": "lm", "objective": "masked"}
    experiment_from_dict(tiny)


def test_leak_guard_inside_an_ablation_names_the_variant(tiny):
    tiny["ablate"] = {"model.mask": ["causal", "bidirectional"]}
    with pytest.raises(ConfigError, match="bidirectional") as info:
        experiment_from_dict(tiny)
    assert info.value.key == "model.mask" and "variant" in str(info.value)


def test_exponent_without_a_dot_is_a_number(tiny, write_yaml):
    """PyYAML alone reads `1e-3` as a string; experiment files and --set read a number."""
    tiny["train"] = {**tiny["train"], "lr": "LR"}
    path = write_yaml("exp.yaml", yaml.safe_dump(tiny).replace("LR", "1e-3"))
    assert load_experiment(path).base["train"]["lr"] == 1e-3
    assert load_experiment(path, ["train.lr=2E-4"]).base["train"]["lr"] == 2e-4
    assert load_experiment(path, ["experiment=1e5x"]).name == "1e5x"  # not a number: a string


def test_declared_reference_reaches_every_run_summary(tiny, write_yaml, tmp_path):
    tiny["ablate"] = {"mode": "grid", "model.ffn": ["gelu", "relu"], "model.layers": [1, 2],
                      "reference": {"model.ffn": "gelu"}}
    tiny["train"]["steps"] = 4
    path = write_yaml("grid.yaml", tiny)
    plan = load_experiment(path).plan()
    assert len(plan) == 4 and all(run.reference == {"model.ffn": "gelu"} for run in plan)
    out = tmp_path / "runs"
    assert main(["run", str(path), "--out", str(out)]) == 0
    summaries = [json.loads(p.read_text()) for p in out.glob("*/summary.json")]
    assert len(summaries) == 4
    assert all(s["reference"] == {"model.ffn": "gelu"} for s in summaries)


def test_relative_file_corpus_is_relative_to_the_file_that_names_it(tmp_path, monkeypatch):
    """`file:` paths resolve against the experiment file's folder (as `extends:` does), so an
    experiment runs the same from any working directory; `--set` paths stay relative to it."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "base.yaml").write_text("data: {corpus: 'file:corpus/input.txt'}\n")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "child.yaml").write_text("extends: ../base/base.yaml\n")
    (tmp_path / "study" / "own.yaml").write_text(
        "extends: ../base/base.yaml\ndata: {corpus: 'file:../texts/*.txt'}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    inherited = load_experiment(tmp_path / "study" / "child.yaml")
    assert inherited.base["data"]["corpus"] == f"file:{tmp_path / 'base' / 'corpus' / 'input.txt'}"
    own = load_experiment(tmp_path / "study" / "own.yaml")
    assert own.base["data"]["corpus"] == f"file:{tmp_path / 'texts' / '*.txt'}"
    cli = load_experiment(tmp_path / "study" / "own.yaml", ["data.corpus=file:mine.txt"])
    assert cli.base["data"]["corpus"] == "file:mine.txt"
    for written in ("file:/data/input.txt", "dataset:tinyshakespeare"):
        (tmp_path / "abs.yaml").write_text(f"data: {{corpus: '{written}'}}\n")
        assert load_experiment(tmp_path / "abs.yaml").base["data"]["corpus"] == written
