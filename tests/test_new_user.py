"""Small things a new user runs into: an empty experiment file, a sweep's unknown metric, an
ablation axis spelling the base's value differently, and the README's exit statuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tzoo.cli import main
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.tasks import metric_names

ROOT = Path(__file__).resolve().parents[1]


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    err = captured.err.strip()
    assert err and "\n" not in err
    return err


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_an_empty_experiment_file_is_refused(text, write_yaml, tmp_path, capsys, monkeypatch):
    path = write_yaml("empty.yaml", text)
    monkeypatch.chdir(tmp_path)
    for command in ("validate", "run"):
        err = _refused(capsys, [command, str(path)])
        assert "empty.yaml" in err and "empty" in err.split("empty.yaml", 1)[1]
    assert not (tmp_path / "runs").exists()


def test_an_empty_base_file_is_refused(write_yaml, capsys):
    write_yaml("base.yaml", "")
    path = write_yaml("child.yaml", "extends: base.yaml\nmodel: {layers: 1}\n")
    err = _refused(capsys, ["validate", str(path)])
    assert "base.yaml" in err and "empty" in err


def test_sweep_with_an_unknown_metric_leaves_nothing_behind(tiny, write_yaml, tmp_path, capsys,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_yaml("exp.yaml", tiny)
    path = write_yaml("sw.yaml", {
        "experiment": "exp.yaml", "metric": "val/los", "n_trials": 2,
        "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
    })
    err = _refused(capsys, ["sweep", str(path)])
    assert "sw.yaml" in err and "'metric'" in err and "did you mean 'val/loss'" in err
    assert not (tmp_path / "runs").exists(), "refused, yet runs/<sweep>/ was created"
    # the same refusal from `tzoo validate`, which accepts sweep files
    err = _refused(capsys, ["validate", str(path)])
    assert "did you mean 'val/loss'" in err
    assert not (tmp_path / "runs").exists()


def test_declared_metrics_are_the_recorded_ones(tiny, tmp_path):
    """What `tzoo sweep` checks a metric against is what a run records."""
    import json

    from tzoo.recipes.runner import run_experiment

    tiny["train"]["steps"] = 2
    tiny["eval"]["context_multipliers"] = [1, 2]
    experiment = experiment_from_dict(tiny)
    (outcome,) = run_experiment(experiment, out=tmp_path / "runs", echo=lambda _: None)
    recorded = json.loads((outcome.run_dir / "summary.json").read_text())["metrics"]
    assert sorted(recorded) == sorted(metric_names(experiment.base))
    assert metric_names(experiment.base)[0] == "val/loss"


def test_one_at_a_time_dedupes_on_the_resolved_configuration(tiny):
    tiny["model"]["mask"] = None  # the decoder's own: causal
    tiny["task"]["allow_future_leak"] = True
    tiny["ablate"] = {"model.mask": ["causal", "bidirectional"],
                      "model.position": ["rotary", "rope", "alibi"]}
    runs = experiment_from_dict(tiny).plan()
    assert [r.variant_name for r in runs] == [
        "model.mask=None, model.position=rotary", "model.mask=bidirectional",
        "model.position=alibi"]
    # the same value spelled twice on an axis, neither of them the base's, trains once
    tiny["ablate"] = {"model.position": ["alibi", "relative", "t5"]}
    names = [r.variant_name for r in experiment_from_dict(tiny).plan()]
    assert names == ["model.position=rotary", "model.position=alibi",
                     "model.position=relative"]


def test_readme_exit_status_table_lists_every_status_the_cli_returns():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| (\d+) \|", readme, flags=re.M))
    assert documented == {"0", "1", "2", "130"}
    cli = (ROOT / "tzoo" / "cli.py").read_text()
    assert "return 130" in cli and "BAD_INPUT, FAILED = 2, 1" in cli
