"""Everyday commands: --version, `tzoo config`, `tzoo runs`, shipped files by name, sweeps in
`tzoo validate`, help on every option, and `tzoo generate`'s sampling and beam search."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import yaml
from conftest import TINY
from fixtures_runs import make_experiment

import tzoo
from tzoo.cli import build_parser, main
from tzoo.components import beam_search, generate
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.runner import run_experiment
from tzoo.shipped import resolve, shipped

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny trained LM run (and its experiment file)."""

    root = tmp_path_factory.mktemp("trained")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    (outcome,) = run_experiment(experiment_from_dict(TINY), out=root / "runs",
                                echo=lambda _: None)
    assert outcome.status == "completed"
    return path, outcome.run_dir


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"tzoo {tzoo.__version__} (torch {torch.__version__.split('+')[0]}")


def test_every_option_and_argument_has_help():
    parser = build_parser()
    missing = [f"tzoo {action.dest}" for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        missing += [f"tzoo {name} {'/'.join(action.option_strings) or action.dest}"
                    for action in sub._actions if not action.help]
    assert not missing, f"options without help text: {missing}"


def test_config_prints_what_each_run_records(trained, capsys):
    path, run_dir = trained
    assert main(["config", str(path)]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert len(documents) == 1
    assert documents[0] == yaml.safe_load((run_dir / "config.yaml").read_text())
    # --set applies, and an ablation prints one document per run
    assert main(["config", str(path), "--set", "model.layers=3", "--set", "seeds=[0,1]"]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["seed"] for d in documents] == [0, 1]
    assert all(d["model"]["layers"] == 3 for d in documents)
    assert main(["config", str(path), "--set", "model.layer=3"]) == 2
    assert "did you mean 'model.layers'" in capsys.readouterr().err


def test_runs_lists_status_step_metric_and_wall_time(tmp_path, capsys):
    make_experiment(tmp_path / "runs")
    assert main(["runs", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:6] == ["run", "variant", "seed", "status", "step", "val/loss"]
    by_run = {line.split()[0]: line for line in lines[2:]}
    assert len(by_run) == 7
    assert "completed" in by_run["positions/base-s0"] and "2.100" in by_run["positions/base-s0"]
    assert "1 min 35 s" in by_run["positions/base-s0"]
    assert "diverged" in by_run["positions/rotary-s2"] and "412/100" in by_run[
        "positions/rotary-s2"]
    # a run still going: its step is the last one it logged
    assert "running" in by_run["positions/base-s3"] and "100/100" in by_run["positions/base-s3"]

    assert main(["runs", str(tmp_path / "runs" / "positions"), "--json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["rotary-s1"] == {
        "path": str((tmp_path / "runs" / "positions" / "rotary-s1").resolve()),
        "experiment": "positions", "run_id": "rotary-s1", "variant": "model.position=rotary",
        "seed": 1, "status": "completed", "step": 100, "steps": 100, "metric": "val/loss",
        "value": 1.95, "wall_s": 95.0}
    assert rows["alibi-s0"]["status"] == "failed" and rows["alibi-s0"]["value"] is None
    assert rows["base-s3"]["status"] == "running" and rows["base-s3"]["wall_s"] >= 0

    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_shipped_experiments_and_sweeps_by_name(capsys, tmp_path, monkeypatch):
    assert {"quickstart", "lm-positions"} <= set(shipped("experiment"))
    assert "lr-placement" in shipped("sweep")
    assert resolve("quickstart") == str(shipped("experiment")["quickstart"])
    assert resolve("quickstart.yaml") == str(shipped("experiment")["quickstart"])
    assert resolve("lr-placement", ("sweep",)) == str(shipped("sweep")["lr-placement"])
    # a file in the current folder wins over a shipped one of the same name
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text("model: {layers: 1}\n")
    assert resolve("quickstart") == "quickstart"
    (tmp_path / "quickstart").unlink()

    assert main(["validate", "quickstart"]) == 0
    assert capsys.readouterr().out.startswith("quickstart: 8 runs")
    assert main(["validate", "lr-placement"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lr-placement: sweep of") and "2 study(ies) x 20 trials" in out
    assert "search train.lr: float in [0.0003, 0.03], log scale" in out
    assert "at most 80 runs of 600 steps (2 seed(s) a trial: 0, 1;" in out
    assert main(["run", "quickstar"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'quickstart'" in err and "\n" not in err.strip()
    assert main(["sweep", "lr-placment"]) == 2
    assert "did you mean 'lr-placement'" in capsys.readouterr().err
    assert main(["run", "no/such/file.yaml"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_generate_samples_several_and_beam_searches(trained, capsys):
    _, run_dir = trained
    args = ["generate", str(run_dir), "--prompt", "", "--max-new-tokens", "6"]
    assert main([*args, "--num-samples", "3", "--temperature", "1.0", "--top-p", "0.9",
                 "--top-k", "5", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("--- sample ") == 3
    assert main([*args, "--num-samples", "3", "--temperature", "1.0", "--top-p", "0.9",
                 "--top-k", "5", "--seed", "1"]) == 0
    assert capsys.readouterr().out == printed  # the seed makes sampling repeatable

    from tzoo.recipes.checkpoints import load_run

    loaded = load_run(run_dir)
    prompt = torch.tensor([[loaded.tokenizer.bos_id]])
    best = beam_search(loaded.model, prompt, beam_size=3, max_new_tokens=6,
                       eos_id=loaded.tokenizer.eos_id, pad_id=loaded.tokenizer.pad_id)
    assert main([*args, "--beam-size", "3"]) == 0
    assert capsys.readouterr().out == loaded.tokenizer.decode(best[0].tolist()) + "\n"

    for bad, flag in ((["--top-p", "1.5"], "--top-p"), (["--num-samples", "0"], "--num-samples"),
                      (["--beam-size", "2", "--num-samples", "2"], "--num-samples")):
        assert main([*args, *bad]) == 2
        assert flag in capsys.readouterr().err


def test_top_p_keeps_the_nucleus_only(trained):
    from tzoo.recipes.checkpoints import load_run

    model = load_run(trained[1]).model
    prompt = torch.tensor([[1, 7, 8, 9]])
    greedy = generate(model, prompt, max_new_tokens=8, temperature=0.0)
    # a nucleus of (almost) no mass holds only the most likely token: greedy decoding
    tiny_p = generate(model, prompt, max_new_tokens=8, temperature=1.0, top_p=1e-6,
                      generator=torch.Generator().manual_seed(0))
    assert torch.equal(tiny_p, greedy)
    # top_p=1 keeps every token: the same draws as plain sampling
    plain = generate(model, prompt, max_new_tokens=8, temperature=1.0,
                     generator=torch.Generator().manual_seed(3))
    whole = generate(model, prompt, max_new_tokens=8, temperature=1.0, top_p=1.0,
                     generator=torch.Generator().manual_seed(3))
    assert torch.equal(plain, whole)
