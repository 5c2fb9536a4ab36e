"""The sweep file: which experiment to tune, on what metric, over which keys, and how.

    name: lr-placement               # default: the file's stem; runs go to runs/<name>/
    experiment: ../recipes/lm-norms.yaml   # relative to this file
    set: {train.steps: 300}          # overrides of the experiment's keys
    metric: val/loss                 # default: the validation figure of what the experiment
                                     # is judged by (eval.primary, or its task's default)
    direction: minimize              # default: the metric's own (loss down, BLEU up)
    n_trials: 20                     # per study; completed + pruned trials count
    space:
      train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      train.warmup: {type: int, low: 0, high: 200, step: 50}
    sampler: tpe                     # tpe | random | grid | cmaes, or {name: ..., **options}
    pruner: median                   # median | hyperband | none, or {name: ..., **options}
    storage: null                    # null: runs/<name>/study.journal; a path; a database URL
    per: model.placement             # optional: one study per value
    per_values: [pre, post]          # default: the experiment's ablate axis for `per`

Validated like experiment files: every error names the file and the key, with the allowed
values. Each trial trains the experiment's base configuration (its ablate axes are not run)
with the first of its seeds.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes.experiment import (
    Experiment,
    check_run_config,
    load_experiment,
    parse_override,
    read_yaml,
    set_dotted,
)
from tzoo.recipes.metrics import VALIDATION, lower_is_better, split_metric
from tzoo.recipes.schema import all_keys, known_key
from tzoo.recipes.tasks import judged_by

from .algorithms import PRUNERS, SAMPLERS, Choice, grid_size, parse_choice
from .space import Param, parse_space

SWEEP_KEYS = ("name", "description", "experiment", "set", "metric", "direction", "n_trials",
              "seed", "space", "sampler", "pruner", "storage", "per", "per_values",
              "max_failures", "seeds_per_trial")
DIRECTIONS = ("minimize", "maximize")


@dataclass(frozen=True)
class StudySpec:
    """One Optuna study of the sweep: its name and the keys it holds fixed (`per`)."""

    name: str
    fixed: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sweep:
    name: str
    path: Path | None
    experiment: Experiment
    space: list[Param]
    metric: str = "val/loss"
    direction: str = "minimize"
    n_trials: int = 20
    seed: int = 0
    sampler: Choice = field(default_factory=lambda: Choice("tpe"))
    pruner: Choice = field(default_factory=lambda: Choice("median"))
    storage: str | None = None
    per: str | None = None
    per_values: list[Any] = field(default_factory=list)
    max_failures: int = 3
    description: str = ""
    #: runs per trial, on the experiment's first seeds; the objective is their mean
    seeds_per_trial: int = 1

    @property
    def runs_dir(self) -> Path:
        """runs/<sweep>/: the trials' run directories, the journal and study.json."""
        return Path(self.experiment.base.get("runs_dir", "runs")) / self.name

    @property
    def grid_note(self) -> str:
        """For a grid that n_trials does not cover, which is easy to miss after widening the
        grid: what is left out. '' otherwise."""
        if self.sampler.name != "grid":
            return ""
        size = grid_size(self.space)
        if self.n_trials >= size:
            return ""
        return (f"note: the grid has {size} points and n_trials is {self.n_trials}: each study "
                f"runs {self.n_trials} of them, chosen at random (n_trials: {size} runs them all)")

    @property
    def run_seed(self) -> int:
        return self.experiment.seeds[0]

    @property
    def trial_seeds(self) -> list[int]:
        """The seeds every trial trains: the experiment's first `seeds_per_trial`."""
        return list(self.experiment.seeds[: self.seeds_per_trial])

    def studies(self) -> list[StudySpec]:
        if self.per is None:
            return [StudySpec(self.name)]
        return [StudySpec(f"{self.name}-{self.per}={_text(v)}", {self.per: v})
                for v in self.per_values]

    def trial_config(self, study: StudySpec, values: dict[str, Any]) -> dict[str, Any]:
        """The run configuration of one trial: the base, the study's fixed keys, the values."""
        config = copy.deepcopy(self.experiment.base)
        config["experiment"] = self.name
        for key, value in {**expand(self.experiment, study.fixed), **values}.items():
            set_dotted(config, key, value)
        return config


def expand(experiment: Experiment, fixed: dict[str, Any]) -> dict[str, Any]:
    """Dotted overrides for `fixed`, with a bundle axis label (`ablate: {name: {label: {...}}}`)
    replaced by the keys it stands for."""
    bundles = getattr(experiment, "bundles", {})
    out: dict[str, Any] = {}
    for key, value in fixed.items():
        out.update(bundles[key][value] if key in bundles else {key: value})
    return out


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name", json.dumps(value, sort_keys=True)))
    return str(value)


def load_sweep(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
               n_trials: int | None = None) -> Sweep:
    """Read and validate a sweep file. `overrides` are `--set KEY=VALUE`: a sweep key
    (n_trials, storage, ...) sets that key, anything else overrides the experiment."""
    path = Path(path)
    try:
        raw = read_yaml(path)
        for text in overrides:
            key, value = parse_override(text)
            if key in SWEEP_KEYS:
                raw[key] = value
            else:
                raw.setdefault("set", {})
                if isinstance(raw["set"], dict):
                    raw["set"][key] = value
        if n_trials is not None:
            raw["n_trials"] = n_trials
        return _validated(raw, path)
    except ConfigError as error:
        raise error.located(source=str(path)) from None


def _validated(raw: dict[str, Any], path: Path) -> Sweep:
    for key in raw:
        if key not in SWEEP_KEYS:
            raise ConfigError(unknown_choice("sweep key", key, SWEEP_KEYS), key=str(key))
    experiment = _experiment(raw, path)
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"expected a name without '/', got {name!r}", key="name")
    per, per_values = _per(raw, experiment)
    metric = _string(raw, "metric", default_objective(experiment.base))
    sweep = Sweep(
        name=name, path=path, experiment=experiment,
        space=parse_space(raw.get("space"), forbidden=(per,) if per else ()),
        metric=metric,
        direction=_string(raw, "direction", default_direction(metric)),
        n_trials=_integer(raw, "n_trials", 20, minimum=0),
        seed=_integer(raw, "seed", 0, minimum=0),
        sampler=parse_choice(raw.get("sampler"), "sampler", SAMPLERS, "tpe"),
        pruner=parse_choice(raw.get("pruner"), "pruner", PRUNERS, "median"),
        storage=raw.get("storage"),
        per=per, per_values=per_values,
        max_failures=_integer(raw, "max_failures", 3, minimum=1),
        description=_string(raw, "description", ""),
        seeds_per_trial=_integer(raw, "seeds_per_trial", 1, minimum=1),
    )
    if sweep.seeds_per_trial > len(experiment.seeds):
        raise ConfigError(
            f"{sweep.seeds_per_trial} seeds per trial need at least as many seeds in the "
            f"experiment, which has {experiment.seeds}; add seeds there or under `set:`",
            key="seeds_per_trial")
    if sweep.direction not in DIRECTIONS:
        raise ConfigError(unknown_choice("direction", sweep.direction, DIRECTIONS),
                          key="direction")
    if sweep.storage is not None and (not isinstance(sweep.storage, str) or not sweep.storage):
        raise ConfigError(f"expected a file path or a database URL, got {sweep.storage!r}",
                          key="storage")
    if sweep.sampler.name == "grid":
        sweep.n_trials = min(sweep.n_trials, grid_size(sweep.space))
    _one_device(experiment.base)
    _check_values(sweep)
    return sweep


def default_objective(config: dict[str, Any]) -> str:
    """What a sweep optimises unless it says: the metric the experiment is judged by, as
    measured on the validation split (a trial is pruned on it while it trains, and the test
    split stays unseen by the search)."""
    return f"{VALIDATION}/{split_metric(judged_by(config)[0])[1]}"


def default_direction(metric: str) -> str:
    """maximize for a score (BLEU, exact match), minimize for a loss or an unknown metric."""
    return "maximize" if lower_is_better(metric) is False else "minimize"


def _one_device(config: dict[str, Any]) -> None:
    """A trial trains on one device: a data-parallel launcher would start more processes of
    the sweep command, each asking Optuna for trials of its own. Sweeps use several devices
    with one worker per device (`--workers N --devices ...`)."""
    train = config["train"]
    for key in ("devices", "num_nodes"):
        if train[key] != 1:
            raise ConfigError(
                f"a sweep trial trains on one device, got {train[key]!r}; use one worker per "
                "device instead: tzoo sweep SWEEP.yaml --workers N --devices 0,1,...",
                key=f"train.{key}")


def _experiment(raw: dict[str, Any], path: Path) -> Experiment:
    target = raw.get("experiment")
    if not isinstance(target, str) or not target:
        raise ConfigError("missing key: the experiment file to start from, relative to this "
                          "file (e.g. experiment: ../recipes/lm-norms.yaml)", key="experiment")
    settings = raw.get("set") or {}
    if not isinstance(settings, dict):
        raise ConfigError("expected a mapping of dotted keys to values", key="set")
    for key in settings:
        if not known_key(str(key)):
            raise ConfigError(unknown_choice("key", key, all_keys()), key=f"set.{key}")
    # JSON is YAML, so each value reaches the experiment exactly as written here.
    overrides = [f"{key}={json.dumps(value)}" for key, value in settings.items()]
    return load_experiment(path.parent / target, overrides)


def _per(raw: dict[str, Any], experiment: Experiment) -> tuple[str | None, list[Any]]:
    per = raw.get("per")
    values = raw.get("per_values")
    if per is None:
        if values is not None:
            raise ConfigError("per_values needs `per`, the key they are values of",
                              key="per_values")
        return None, []
    bundles = getattr(experiment, "bundles", {})
    if not isinstance(per, str) or not (per in bundles or ("." in per and known_key(per))):
        raise ConfigError(unknown_choice("key", per, [*all_keys(), *bundles]), key="per")
    if values is None:
        if per not in experiment.axes:
            raise ConfigError(f"no values for '{per}': give per_values, or make it an "
                              "ablate axis of the experiment", key="per")
        values = list(experiment.axes[per])
    if not isinstance(values, list) or not values:
        raise ConfigError("expected a non-empty list of values", key="per_values")
    if per in bundles:
        for value in values:
            if value not in bundles[per]:
                raise ConfigError(unknown_choice("label", value, bundles[per]),
                                  key="per_values")
    return per, values


def _string(raw: dict[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"expected a string, got {value!r}", key=key)
    return value


def _integer(raw: dict[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"expected an integer >= {minimum}, got {value!r}", key=key)
    return value


def _check_values(sweep: Sweep) -> None:
    """Every study's fixed keys and every parameter's edge values must make a valid run, so a
    typo in a variant name fails now rather than as a failed trial."""
    for study in sweep.studies():
        for param in sweep.space:
            for value in param.bounds():
                config = sweep.trial_config(study, {param.key: value})
                try:
                    check_run_config(config)
                    _one_device(config)
                except ConfigError as error:
                    where = f"space.{param.key}" if error.key == param.key else error.key
                    detail = f"{error.detail} (with {param.key}={value!r}"
                    detail += f", {study.fixed})" if study.fixed else ")"
                    raise ConfigError(detail, key=where) from None
