"""Sweeps: sweep files, Optuna studies, workers, resumption, pruning, divergence, export.

Every sweep trains a tiny copy-task LM (d_model 16, one layer, 20 steps) so a trial costs well
under a second; the multi-process tests start real worker interpreters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tzoo.cli import main
from tzoo.components.errors import ConfigError
from tzoo.recipes import rundir
from tzoo.recipes.experiment import load_experiment
from tzoo.sweeps import load_study, load_sweep, read_study
from tzoo.sweeps.export import best_experiment
from tzoo.sweeps.space import parse_space
from tzoo.sweeps.storage import resolve_storage
from tzoo.sweeps.trial import one_trainer, plan_trial, run_trial
from tzoo.sweeps.worker import open_study, prepare

REPO = Path(__file__).resolve().parents[1]
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def tiny_experiment(root: Path, **train: Any) -> Path:
    experiment = {
        "experiment": "tiny",
        "runs_dir": str(root / "runs"),
        "data": {"corpus": "synthetic:copy",
                 "options": {"vocab": 8, "length": 8,
                             "samples": {"train": 400, "validation": 64, "test": 64}},
                 "context": 32, "batch_size": 8},
        "model": {"d_model": 16, "layers": 1, "heads": 2},
        "train": {"steps": 20, "val_every": 5, "checkpoint_every": 5, "warmup": 2,
                  "progress": False, "threads": 1, **train},
        "eval": {"batches": 2, "test": False, "context_multipliers": [1]},
        "seeds": [0],
        "ablate": {"train.lr": [1.0e-3, 1.0e-2], "model.norm": ["layernorm", "rmsnorm"]},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(experiment))
    return path


def write_sweep(root: Path, name: str = "sw", **keys: Any) -> Path:
    if not (root / "tiny.yaml").exists():
        tiny_experiment(root)
    sweep = {"name": name, "experiment": "tiny.yaml", "n_trials": 4,
             "space": {"train.lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2,
                                    "log": True},
                       "train.warmup": {"type": "int", "low": 0, "high": 8, "step": 2}},
             "pruner": {"name": "median", "n_startup_trials": 2}, **keys}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def study(root: Path, name: str = "sw", storage: str | None = None) -> optuna.Study:
    spec = resolve_storage(storage, root / "runs" / "sw")
    return optuna.load_study(study_name=name, storage=spec.open())


def assert_whole(trials: list[optuna.trial.FrozenTrial], n: int) -> None:
    """n counted trials, unique numbers, none left running, each with its run's summary."""
    assert [t.number for t in trials] == list(range(len(trials)))
    assert sum(t.state in COUNTED for t in trials) == n
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for trial in trials:
        if trial.state in COUNTED:
            summary = rundir.read_summary(Path(trial.user_attrs["run_dir"]))
            assert summary is not None
            assert summary.status == trial.user_attrs["status"]
            if trial.state == TrialState.COMPLETE:
                assert summary.metrics["val/loss"] == pytest.approx(trial.value)


# --------------------------------------------------------------------------- one worker


def test_six_trials_complete_and_report_by_step(tmp_path):
    path = write_sweep(tmp_path, n_trials=6)
    assert main(["sweep", str(path)]) == 0
    trials = study(tmp_path).get_trials()
    assert_whole(trials, 6)
    for trial in trials:
        # reported at every validation by training step (not all at epoch 0)
        assert set(trial.intermediate_values) <= {5, 10, 15, 20}
        run_dir = Path(trial.user_attrs["run_dir"])
        assert run_dir.parent == tmp_path / "runs" / "sw"
        record = json.loads((run_dir / "trial.json").read_text())
        assert record == {"study": "sw", "trial": trial.number, "trials": [trial.number]}
        summary = rundir.read_summary(run_dir)
        assert summary.experiment == "sw"
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert completed and all(len(t.intermediate_values) == 4 for t in completed)
    for pruned in (t for t in trials if t.state == TrialState.PRUNED):
        assert rundir.read_summary(Path(pruned.user_attrs["run_dir"])).status == "pruned"

    data = json.loads((tmp_path / "runs" / "sw" / "study.json").read_text())
    entry = data["studies"][0]
    assert data["metric"] == "val/loss" and entry["name"] == "sw" and entry["n_trials"] == 6
    assert {t["number"] for t in entry["trials"]} == set(range(6))
    if len(completed) >= 2:
        assert set(entry["importances"]) == {"train.lr", "train.warmup"}
    # load_study reads study.json, the runs folder, or the storage itself: the same trials
    runs = tmp_path / "runs" / "sw"
    for source in (runs, runs / "study.journal", runs / "study.json"):
        loaded = load_study(source, "sw")
        assert [t["value"] for t in loaded["trials"]] == [t["value"] for t in entry["trials"]]
    # the snapshot is the storage's results exactly, importances included (deterministic)
    assert read_study(runs / "study.json") == read_study(runs / "study.journal")


def test_restart_runs_only_the_remainder(tmp_path, capsys):
    path = write_sweep(tmp_path, pruner="none")
    assert main(["sweep", str(path), "--trials", "2"]) == 0
    first = study(tmp_path).get_trials()
    assert_whole(first, 2)
    assert main(["sweep", str(path), "--trials", "4"]) == 0
    trials = study(tmp_path).get_trials()
    assert_whole(trials, 4)
    assert [t.params for t in trials[:2]] == [t.params for t in first]
    assert main(["sweep", str(path), "--trials", "4"]) == 0  # nothing left to do
    assert len(study(tmp_path).get_trials()) == 4
    assert "trial 4" not in capsys.readouterr().out


def test_diverging_trial_does_not_stop_the_sweep(tmp_path):
    path = write_sweep(tmp_path, sampler="grid", pruner="none",
                       space={"train.lr": {"type": "categorical", "choices": [1000.0, 0.01]}})
    assert main(["sweep", str(path), "--trials", "5"]) == 0  # capped at the grid's 2 points
    trials = {t.params["train.lr"]: t for t in study(tmp_path).get_trials()}
    assert set(trials) == {1000.0, 0.01}
    diverged = trials[1000.0]
    assert diverged.state == TrialState.PRUNED
    assert diverged.user_attrs["status"] == "diverged"
    assert "nan" in diverged.user_attrs["reason"] or "inf" in diverged.user_attrs["reason"]
    assert trials[0.01].state == TrialState.COMPLETE


def test_per_value_studies_export_runnable_experiments(tmp_path):
    path = write_sweep(tmp_path, n_trials=2, pruner="none", per="model.norm")
    best = tmp_path / "best.yaml"
    assert main(["sweep", str(path), "--export", str(best)]) == 0
    names = ["sw-model.norm=layernorm", "sw-model.norm=rmsnorm"]
    for name in names:
        assert sum(t.state in COUNTED for t in study(tmp_path, name).get_trials()) == 2
    data = json.loads((tmp_path / "runs" / "sw" / "study.json").read_text())
    assert [s["name"] for s in data["studies"]] == names
    assert data["studies"][1]["fixed"] == {"model.norm": "rmsnorm"}

    exported = tmp_path / "best.rmsnorm.yaml"
    assert exported.is_file() and (tmp_path / "best.layernorm.yaml").is_file()
    experiment = load_experiment(exported)
    chosen = study(tmp_path, names[1]).best_trial
    assert experiment.base["model"]["norm"] == "rmsnorm"
    assert experiment.base["train"]["lr"] == chosen.params["train.lr"]
    assert experiment.base["train"]["warmup"] == chosen.params["train.warmup"]
    assert experiment.seeds == [0]
    assert experiment.axes == {}  # both axes were tuned (lr) or fixed by the study (norm)

    out = tmp_path / "rerun"
    assert main(["run", str(exported), "--out", str(out), "--set", "train.steps=10"]) == 0
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    assert rundir.read_summary(run).status == "completed"


# --------------------------------------------------------------------------- several workers


@pytest.mark.parametrize("storage", [None, "sqlite:///{root}/sweep.db"])
def test_two_workers_share_one_study(tmp_path, storage, monkeypatch):
    """Two worker processes share one study through the storage, each on its own device: the
    command may hand out 7 and 9 (its CUDA_VISIBLE_DEVICES), and every trial a worker trained
    records the one it was given."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,9")
    url = storage.format(root=tmp_path) if storage else None
    path = write_sweep(tmp_path, n_trials=6, **({"storage": url} if url else {}))
    assert main(["sweep", str(path), "--workers", "2"]) == 0
    trials = study(tmp_path, storage=url).get_trials()
    assert_whole(trials, 6)
    run_dirs = [t.user_attrs["run_dir"] for t in trials if t.state in COUNTED]
    assert len(set(run_dirs)) == 6  # every result kept in its own run
    workers = {json.dumps(t.user_attrs["worker"], sort_keys=True) for t in trials}
    assert 1 <= len(workers) <= 2
    device_of: dict[str, set] = {}
    for trial in trials:
        seen = rundir.read_summary(Path(trial.user_attrs["run_dir"])).visible_devices
        device_of.setdefault(json.dumps(trial.user_attrs["worker"]), set()).add(seen)
    assert all(len(devices) == 1 for devices in device_of.values())  # one device per worker
    assert set().union(*device_of.values()) <= {"7", "9"}
    if len(device_of) == 2:
        assert set().union(*device_of.values()) == {"7", "9"}
    if url:
        assert len(load_study(url, "sw")["trials"]) == 6


def test_a_worker_starts_without_a_runpy_warning():
    """`python -m tzoo.sweeps.worker`, as --workers starts it: the package must not have
    imported the worker module already (runpy warns, and runs a second copy of it)."""
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "tzoo.sweeps.worker", "--help"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr and "usage:" in done.stdout


def test_killed_worker_trial_is_failed_retried_and_resumed(tmp_path):
    # Long enough to kill mid-run: 400 steps, checkpoints every 5.
    tiny_experiment(tmp_path, steps=400, val_every=100)
    path = write_sweep(tmp_path, n_trials=1, pruner="none")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tzoo.sweeps.worker", str(path)], cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "runs" / "sw" / "study.journal"
    deadline = time.monotonic() + 180
    checkpoint = None
    while checkpoint is None and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
        found = list((tmp_path / "runs" / "sw").glob("*/checkpoints/last.ckpt"))
        checkpoint = found[0] if found and journal.exists() else None
    assert checkpoint is not None and worker.poll() is None, "the worker never checkpointed"
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    (lost,) = study(tmp_path).get_trials()
    assert lost.state == TrialState.RUNNING  # what a killed worker leaves behind

    assert main(["sweep", str(path)]) == 0
    lost, retried = study(tmp_path).get_trials()
    assert lost.state == TrialState.FAIL and lost.user_attrs["status"] == "lost"
    assert retried.state == TrialState.COMPLETE
    assert retried.params == lost.params
    assert retried.system_attrs["failed_trial"] == lost.number
    run_dir = Path(retried.user_attrs["run_dir"])
    assert run_dir == Path(lost.user_attrs["run_dir"])
    summary = rundir.read_summary(run_dir)
    assert summary.status == "completed" and summary.resumed_from_step > 0
    assert json.loads((run_dir / "trial.json").read_text())["trials"] == [0, 1]


# --------------------------------------------------------------------------- bad input


BAD = [
    ({"sampler_": "tpe"}, "sampler_", "did you mean 'sampler'"),
    ({"sampler": "tpf"}, "sampler", "allowed: cmaes, grid, random, tpe"),
    ({"pruner": "medain"}, "pruner", "did you mean 'median'"),
    ({"pruner": {"name": "median", "warmup": 3}}, "pruner.warmup", "n_warmup_steps"),
    ({"direction": "down"}, "direction", "allowed: maximize, minimize"),
    ({"space": {"train.lrr": {"type": "float", "low": 0.1, "high": 1.0}}}, "space.train.lrr",
     "did you mean 'train.lr'"),
    ({"space": {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}}, "space.train.lr",
     "must be below high"),
    ({"space": {"train.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
     "space.train.lr.low", "log scale needs low > 0"),
    ({"space": {"train.lr": {"type": "flaot", "low": 0.1, "high": 1.0}}}, "space.train.lr.type",
     "did you mean 'float'"),
    ({"space": {"train.lr": {"type": "float", "low": 0.1, "hi": 1.0}}}, "space.train.lr.hi",
     "did you mean 'high'"),
    ({"space": {"model.norm": {"type": "categorical", "choices": ["rmsnrm"]}}},
     "model.norm", "did you mean 'rmsnorm'"),
    ({"space": {"train.warmup": {"type": "int", "low": -5, "high": 5}}}, "train.warmup",
     "must be >= 0"),
    ({"per": "train.lr"}, "space.train.lr", "per"),
    ({"per": "model.placement"}, "per", "give per_values"),
    ({"set": {"train.stepz": 3}}, "set.train.stepz", "did you mean 'train.steps'"),
    ({"experiment": "missing.yaml"}, "missing.yaml", "file not found"),
    ({"space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.1}},
      "sampler": "grid"}, "space.train.lr", "finite"),
    ({"set": {"train.devices": 2, "train.strategy": "ddp"}}, "train.devices",
     "--workers N --devices"),
]


@pytest.mark.parametrize(("keys", "where", "message"), BAD)
def test_bad_sweep_files_exit_2(tmp_path, capsys, keys, where, message):
    path = write_sweep(tmp_path, **keys)
    assert main(["sweep", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("tzoo sweep: error: ") and "Traceback" not in error
    assert ("missing.yaml" in error) or (str(path) in error)
    assert where in error and message in error
    assert not (tmp_path / "runs" / "sw" / "study.journal").exists()


def test_set_overrides_sweep_and_experiment_keys(tmp_path):
    path = write_sweep(tmp_path)
    sweep = load_sweep(path, ["n_trials=7", "train.steps=12"])
    assert sweep.n_trials == 7 and sweep.experiment.base["train"]["steps"] == 12
    with pytest.raises(ConfigError, match=r"did you mean 'train\.steps'"):
        load_sweep(path, ["train.stepz=3"])


def test_non_scalar_choices_round_trip_through_optuna():
    (param,) = parse_space({"model.position": {"choices": ["rotary",
                                                            {"name": "alibi", "max_bias": 4}]}})
    stored = param.labels[1]
    assert isinstance(stored, str) and param.value(stored) == {"name": "alibi", "max_bias": 4}


def test_shipped_sweep_files_load():
    files = sorted((REPO / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        sweep = load_sweep(path)
        assert sweep.space and sweep.n_trials > 0
    sweep = load_sweep(REPO / "sweeps" / "lr-placement.yaml")
    assert [s.fixed for s in sweep.studies()] == [{"model.placement": "pre"},
                                                  {"model.placement": "post"}]


def test_export_keeps_the_reference_on_axes_left_untuned(tmp_path):
    """A grid with `ablate.reference`: the exported experiment keeps the reference for the
    axes still ablated and drops it with an axis the sweep fixed."""
    path = tiny_experiment(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["ablate"] = {"mode": "grid", "model.norm": ["layernorm", "rmsnorm"],
                     "model.ffn": ["gelu", "relu"],
                     "reference": {"model.norm": "layernorm", "model.ffn": "gelu"}}
    path.write_text(yaml.safe_dump(raw))
    sweep = load_sweep(write_sweep(tmp_path, per="model.ffn"))
    gelu_study = next(s for s in sweep.studies() if s.fixed == {"model.ffn": "gelu"})
    document = best_experiment(sweep, gelu_study, {"train.lr": 3e-3, "train.warmup": 2})
    assert document["ablate"] == {"mode": "grid", "model.norm": ["layernorm", "rmsnorm"],
                                  "reference": {"model.norm": "layernorm"}}
    exported = tmp_path / "best.yaml"
    exported.write_text(yaml.safe_dump(document))
    assert load_experiment(exported).reference == {"model.norm": "layernorm"}


def test_no_pruning_at_the_last_step():
    """A trial whose last validation is below the median has finished anyway: it completes
    (and its value reaches the sampler) instead of being counted as pruned."""
    from types import SimpleNamespace

    from lightning.pytorch.trainer.states import TrainerFn

    from tzoo.sweeps.pruning import Pruned, PruneOnValidation

    class AlwaysPrune:
        def __init__(self):
            self.reported: list[int] = []

        def report(self, value, step):
            self.reported.append(step)

        def should_prune(self):
            return True

    trial = AlwaysPrune()
    callback = PruneOnValidation(trial, "val/loss")

    def trainer(step):
        return SimpleNamespace(sanity_checking=False, state=SimpleNamespace(fn=TrainerFn.FITTING),
                               callback_metrics={"val/loss": 2.5}, global_step=step,
                               max_steps=20)

    with pytest.raises(Pruned):
        callback.on_validation_end(trainer(10), None)
    callback.on_validation_end(trainer(20), None)  # the last step: no Pruned
    assert trial.reported == [10, 20]


def test_seeds_per_trial_trains_each_seed_and_scores_the_mean(tmp_path):
    """`seeds_per_trial: 2`: every trial trains the experiment's first two seeds; its value is
    the mean of their metric, each seed's run is an ordinary run directory."""
    path = write_sweep(tmp_path, n_trials=2, pruner="none", seeds_per_trial=2,
                       set={"seeds": [0, 1, 2]})
    assert main(["sweep", str(path)]) == 0
    trials = study(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:
        run_dirs = [Path(p) for p in trial.user_attrs["run_dirs"]]
        summaries = [rundir.read_summary(p) for p in run_dirs]
        assert [s.seed for s in summaries] == [0, 1]
        losses = [s.metrics["val/loss"] for s in summaries]
        assert trial.user_attrs["seed_values"] == pytest.approx(losses)
        assert trial.value == pytest.approx(sum(losses) / 2)
    data = json.loads((tmp_path / "runs" / "sw" / "study.json").read_text())
    assert len(data["studies"][0]["trials"][0]["run_dirs"]) == 2


def test_more_seeds_per_trial_than_the_experiment_has_exits_2(tmp_path, capsys):
    path = write_sweep(tmp_path, seeds_per_trial=3)  # tiny has seeds [0]
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "seeds_per_trial" in err and "[0]" in err
    assert not (tmp_path / "runs" / "sw").exists()


def test_grid_workers_share_one_shuffle_so_every_point_runs_once(tmp_path):
    """A grid trial records an index into the grid as its sampler shuffled it (by seed): two
    workers asking in turn must get four different points of a four-point grid, not one
    point twice and another never (lr-ffn's first sweep ran 8e-3 twice and 1.6e-2 never)."""
    choices = [0.002, 0.004, 0.008, 0.016]
    path = write_sweep(tmp_path, sampler="grid", pruner="none",
                       space={"train.lr": {"type": "categorical", "choices": choices}})
    sweep = load_sweep(str(path), [])
    storage = prepare(sweep).open()
    (spec,) = sweep.studies()
    workers = [open_study(sweep, spec, storage, worker=index) for index in (0, 1)]
    asked = [workers[number % 2].ask() for number in range(4)]
    values = [trial.suggest_categorical("train.lr", choices) for trial in asked]
    assert sorted(values) == choices


def test_a_run_is_trained_by_one_trial_at_a_time(tmp_path):
    """Two trials that want the same run (a sampler may propose a point again while its first
    trial still trains) never write one run directory at once: the second waits for the run's
    lock, then takes the finished run."""
    path = write_sweep(tmp_path, sampler="random", pruner="none", n_trials=1,
                       space={"train.lr": {"type": "categorical", "choices": [0.01]}})
    sweep = load_sweep(str(path), [])
    storage = prepare(sweep).open()
    (spec,) = sweep.studies()
    planned = plan_trial(sweep, spec, {"train.lr": 0.01})
    written_while_held: list[bool] = []
    held = threading.Event()

    def other_worker() -> None:  # holds the run for 3 s, as a worker training it would
        with one_trainer(planned.run_dir):
            held.set()
            time.sleep(3)
            written_while_held.append((planned.run_dir / "metrics.csv").exists()
                                      or (planned.run_dir / "config.yaml").exists())

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(10)
    study_ = open_study(sweep, spec, storage)
    frozen = run_trial(sweep, spec, study_, study_.ask())
    thread.join()
    assert written_while_held == [False]
    assert frozen.state == TrialState.COMPLETE
    assert rundir.read_summary(planned.run_dir).status == "completed"
    assert (tmp_path / "runs" / "sw" / ".locks" / f"{planned.run_dir.name}.lock").exists()


def test_a_grid_that_n_trials_does_not_cover_is_said(tmp_path, capsys):
    """Widening a grid without raising n_trials leaves points out at random: validate and
    sweep say so (lr-ffn's 5-point grid first ran with n_trials 4)."""
    space = {"train.lr": {"type": "categorical", "choices": [0.001, 0.01, 0.1]}}
    path = write_sweep(tmp_path, sampler="grid", pruner="none", n_trials=2, space=space)
    assert main(["validate", str(path)]) == 0
    assert ("note: the grid has 3 points and n_trials is 2: each study runs 2 of them"
            in capsys.readouterr().out)
    path = write_sweep(tmp_path, name="whole", sampler="grid", pruner="none", n_trials=3,
                       space=space)
    assert main(["validate", str(path)]) == 0
    assert "note: the grid" not in capsys.readouterr().out
