"""Experiment trackers, read back from what they wrote: TensorBoard's event file, MLflow's file
store and a W&B offline run each hold the run's resolved configuration and its final metrics."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import TINY

from tzoo.cli import main
from tzoo.recipes.experiment import experiment_from_dict
from tzoo.recipes.runner import run_experiment
from tzoo.recipes.tracking import flat_hyperparameters, logger_names, make_loggers

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root, loggers: list[str], **changes):
    config = json.loads(json.dumps(TINY))
    config["train"].update(steps=10, logger=loggers, **changes)
    config["model"]["attention"] = {"name": "gqa", "kv_heads": 1}
    (outcome,) = run_experiment(experiment_from_dict(config), out=root / "runs" / "tiny",
                                echo=lambda _: None)
    assert outcome.status == "completed", outcome.note
    summary = json.loads((outcome.run_dir / "summary.json").read_text())
    recorded = yaml.safe_load((outcome.run_dir / "config.yaml").read_text())
    return outcome.run_dir, summary, recorded


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    return _train(tmp_path_factory.mktemp("tracked"), ["csv", "tensorboard", "mlflow"])


def test_logger_takes_a_name_or_a_list(write_yaml, capsys):
    assert logger_names("tensorboard") == ["csv", "tensorboard"]
    assert logger_names(["tensorboard", "csv", "mlflow"]) == ["csv", "tensorboard", "mlflow"]
    path = write_yaml("x.yaml", {"train": {"logger": ["csv", "tensorbord"]}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "train.logger" in err and "did you mean 'tensorboard'" in err
    path = write_yaml("y.yaml", {"train": {"logger": {"name": "csv"}}})
    assert main(["validate", str(path)]) == 2
    assert "train.logger" in capsys.readouterr().err


def test_tensorboard_event_file_holds_config_and_final_metrics(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, summary, recorded = tracked
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    final = {tag: events.Scalars(tag)[-1] for tag in events.Tags()["scalars"]}
    for name, value in summary["metrics"].items():
        if value is not None:
            assert final[name].step == 10 and final[name].value == pytest.approx(value), name
    assert "train/loss" in final  # the training curve is there too
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    hparams = {key: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
               for key, value in start.hparams.items()}
    # (TensorBoard stores true/false as the numbers 1 and 0)
    expected = {k: float(v) if isinstance(v, bool) else v
                for k, v in flat_hyperparameters(recorded).items()}
    assert hparams == pytest.approx(expected)
    assert hparams["model.position"] == "rotary" and hparams["run_id"] == run_dir.name
    assert json.loads(hparams["model.attention"]) == {"name": "gqa", "kv_heads": 1}
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]).experiment
    declared = {info.name.tag for info in experiment.metric_infos}
    assert declared == set(summary["metrics"])


def test_mlflow_file_store_holds_config_and_final_metrics(tracked):
    from mlflow.tracking import MlflowClient

    run_dir, summary, recorded = tracked
    record = json.loads((run_dir / "tracking.json").read_text())
    assert record["mlflow_tracking_uri"] == (run_dir.parent / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=record["mlflow_tracking_uri"])
    run = client.get_run(record["mlflow_run_id"])
    assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
    expected = {k: str(v) for k, v in flat_hyperparameters(recorded).items()}
    assert run.data.params == expected
    for name, value in summary["metrics"].items():
        if value is not None:
            logged = name.replace("@", "_at_")
            assert run.data.metrics[logged] == pytest.approx(value), name
            history = client.get_metric_history(run.info.run_id, logged)
            assert max(m.step for m in history) == 10
    # a resumed run logs into the same MLflow run
    config = {**recorded, "train": {**recorded["train"], "logger": ["mlflow"]}}
    loggers = make_loggers(config, run_dir)
    assert loggers[1].run_id == record["mlflow_run_id"]


def _wandb_records(path):
    """The records of a W&B transaction log (`run-<id>.wandb`): a 7-byte header (":W&B", a
    magic number, a version), then LevelDB's log format: 32 KiB blocks of records, each a
    7-byte header (checksum, little-endian length, kind: 1 whole, 2 first, 3 middle, 4 last
    piece) and its bytes; a block's tail shorter than a header is padding."""
    from wandb.proto import wandb_internal_pb2

    data, block, position, pieces = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[
            position + 6]
        pieces += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def test_wandb_offline_run_holds_config_and_final_metrics(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "true")
    monkeypatch.setenv("WANDB_DISABLE_CODE", "true")
    run_dir, summary, recorded = _train(tmp_path, ["wandb"])
    (log,) = run_dir.glob(f"wandb/offline-run-*-{run_dir.name}/run-{run_dir.name}.wandb")
    config, history, exits = {}, [], []
    for record in _wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: json.loads(item.value_json)
                           for item in record.config.update})
        elif kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.history.item})
        elif kind == "exit":
            exits.append(record.exit.exit_code)
    assert {k: v for k, v in config.items() if k != "_wandb"} == recorded
    final = [row for row in history if row.get("trainer/global_step") == 10]
    for name, value in summary["metrics"].items():
        if value is not None:
            assert any(row.get(name) == pytest.approx(value) for row in final), name
    assert exits == [0]  # finished, so the next run of the process gets its own
