"""Experiment trackers: the CSV log every run keeps, plus TensorBoard, MLflow and Weights & Biases
on request (`train.logger: [csv, tensorboard]`, or one name).

`metrics.csv` is part of the run directory's contract (reports read it), so the CSV logger is
always there. Every other tracker receives, when the run starts, the run's resolved
configuration as hyperparameters (dotted keys: `model.position`, `train.lr`, ...; the seed and
the run id among them) and, when the run ends, its final metrics (the summary's, at the last
step). Where each one writes:

    tensorboard   <run>/tensorboard/          tensorboard --logdir runs/<experiment>
    mlflow        $MLFLOW_TRACKING_URI, else the file store runs/<experiment>/mlruns
    wandb         <run>/wandb/, project <experiment> ($WANDB_PROJECT), run id = the run's id;
                  WANDB_MODE=offline keeps it on disk (`wandb sync` uploads it later)

A resumed run continues the same MLflow run (its id is kept in the run's tracking.json) and the
same W&B run (its id is the run's).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)

from tzoo.components.errors import ConfigError, unknown_choice

from . import rundir

LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")
#: the pip package each tracker needs, for the message when it is missing
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
KEY = "train.logger"


def logger_names(value: Any) -> list[str]:
    """`train.logger` as a list of tracker names, csv first (always kept); refuses unknown
    names and anything but a name or a list of names."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"expected a tracker name or a list of them ({', '.join(LOGGERS)}), "
                          f"got {value!r}", key=KEY)
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(unknown_choice("logger", name, LOGGERS), key=KEY)
    return ["csv", *dict.fromkeys(n for n in names if n != "csv")]


def check_available(value: Any) -> None:
    """Refuse, before anything trains, a tracker whose package is not installed."""
    import importlib.util

    for name in logger_names(value)[1:]:
        module = "mlflow" if name == "mlflow" else name
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"the {name} logger needs the '{PACKAGES[name]}' package: "
                              f"pip install 'transformer-zoo[{name}]'", key=KEY)


def flat_hyperparameters(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'model.position': 'rotary', 'train.lr': 0.001, ...}: scalars as they are, lists and
    mappings that are values (a variant with arguments, corpus options) as JSON text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and not _is_variant(value):
            flat.update(flat_hyperparameters(value, f"{dotted}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[dotted] = "null" if value is None else value
        else:
            flat[dotted] = json.dumps(value, sort_keys=True, default=str)
    return flat


def _is_variant(value: dict[str, Any]) -> bool:
    return "name" in value  # `{name: gqa, kv_heads: 2}` is one value, not a section


def _tracking_record(run_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((run_dir / rundir.TRACKING).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def make_loggers(config: dict[str, Any], run_dir: Path) -> list[Logger]:
    """The run's loggers, csv first."""
    csv_logger = CSVLogger(save_dir=str(run_dir), name="", version="", flush_logs_every_n_steps=1)
    loggers: list[Logger] = [csv_logger]
    names = logger_names(config["train"]["logger"])
    if "tensorboard" in names:
        loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version="",
                                         default_hp_metric=False))
    if "mlflow" in names:
        loggers.append(_mlflow(config, run_dir))
    if "wandb" in names:
        loggers.append(WandbLogger(
            project=os.environ.get("WANDB_PROJECT") or config["experiment"],
            name=run_dir.name, id=run_dir.name, save_dir=str(run_dir)))
    return loggers


class _MLflow(MLFlowLogger):
    """MLflow allows letters, digits and `_ - . /` and spaces in a metric's name: the context
    multiple `val/loss@2x` is logged as `val/loss_at_2x` (Lightning would drop the '@')."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        super().log_metrics({k.replace("@", "_at_"): v for k, v in metrics.items()}, step)


def _mlflow(config: dict[str, Any], run_dir: Path) -> Logger:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        # MLflow 3 keeps the file store in "maintenance mode" behind this switch; the
        # default here is a folder beside the runs, as `mlflow ui` reads it. A database or a
        # server: set MLFLOW_TRACKING_URI (sqlite:///mlflow.db, http://...).
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = (run_dir.parent / "mlruns").resolve().as_uri()
    previous = _tracking_record(run_dir).get("mlflow_run_id")
    logger = _MLflow(experiment_name=config["experiment"], run_name=run_dir.name,
                          tracking_uri=uri, run_id=previous)
    record = {**_tracking_record(run_dir), "mlflow_run_id": logger.run_id,
              "mlflow_tracking_uri": uri}
    rundir.write_json(run_dir / rundir.TRACKING, record)
    return logger


def _trackers(loggers: Sequence[Logger]) -> list[Logger]:
    return [logger for logger in loggers if not isinstance(logger, CSVLogger)]


def log_hyperparameters(loggers: Sequence[Logger], config: dict[str, Any],
                        metric_names: Sequence[str]) -> None:
    """The resolved configuration to every tracker; TensorBoard's hparams view also learns
    which scalars are the run's metrics, so it shows their last values beside the config."""
    flat = flat_hyperparameters(config)
    for logger in _trackers(loggers):
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, flat, metric_names)
        elif isinstance(logger, WandbLogger):
            logger.log_hyperparams(config)  # W&B shows a nested config as sections
        else:
            logger.log_hyperparams(flat)


def _tensorboard_hparams(logger: TensorBoardLogger, flat: dict[str, Any],
                         metric_names: Sequence[str]) -> None:
    # Lightning's own log_hyperparams(params, metrics) would log the metrics as scalars at
    # step 0; the hparams summary alone names them, and the run's scalars give their values.
    from torch.utils.tensorboard.summary import hparams

    writer = logger.experiment
    for summary in hparams(flat, dict.fromkeys(metric_names, 0.0)):
        writer.file_writer.add_summary(summary)
    writer.flush()


def log_final_metrics(loggers: Sequence[Logger], metrics: dict[str, float | None],
                      step: int) -> None:
    """The run's final metrics to every tracker, at the run's last step (finite ones: a null
    is a measure the run could not take)."""
    finite = {k: v for k, v in metrics.items() if v is not None and math.isfinite(v)}
    for logger in _trackers(loggers):
        logger.log_metrics(finite, step=step)


def close(loggers: Sequence[Logger], status: str) -> None:
    """End every tracker's run with the run's status (a W&B run must be finished before the
    next run of the process starts its own, or the next would log into it)."""
    # Lightning passes "success" and "failed" on (MLflow: FINISHED, FAILED); a run that
    # stopped to be resumed is KILLED in MLflow's words
    ending = {"completed": "success", "interrupted": "KILLED", "pruned": "KILLED",
              "stopped": "KILLED"}.get(status, "failed")
    for logger in _trackers(loggers):
        logger.finalize(ending)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=0 if status == "completed" else 1)
