"""Samplers and pruners by name, with their options checked against Optuna's own signatures.

    sampler: tpe                                   # or {name: tpe, n_startup_trials: 5}
    pruner: {name: median, n_warmup_steps: 100}    # steps are training steps

An option is any keyword of the Optuna class (so new Optuna options work without a change
here); a misspelt one gets a did-you-mean instead of a TypeError deep inside a worker.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tzoo.components.errors import ConfigError, unknown_choice

from .space import Param


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler ends `study.optimize` once the grid is done by calling `study.stop()`, which
    raises outside `optimize`; the sweep drives ask/tell and caps n_trials at the grid's size
    instead."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "grid": AskTellGridSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
}
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}
#: options the sweep fills in itself
MANAGED = {"seed", "search_space"}


@dataclass(frozen=True)
class Choice:
    """A sampler or pruner: its name and keyword options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


def parse_choice(raw: Any, key: str, table: dict[str, Callable[..., Any]],
                 default: str) -> Choice:
    """`name` or `{name: ..., **options}`, checked against the class's keyword arguments."""
    if raw is None:
        raw = default
    if isinstance(raw, str):
        name, options = raw, {}
    elif isinstance(raw, dict):
        options = dict(raw)
        name = options.pop("name", None)
    else:
        raise ConfigError(f"expected a name or a mapping with 'name', got {raw!r}", key=key)
    if name not in table:
        raise ConfigError(unknown_choice(key, name, table), key=key)
    allowed = [p for p in inspect.signature(table[name]).parameters if p not in MANAGED]
    for option in options:
        if option not in allowed:
            message = (f"the {name} {key} takes no options" if not allowed else
                       unknown_choice(f"option for the {name} {key}", option, allowed))
            raise ConfigError(message, key=f"{key}.{option}")
    if name == "cmaes" and importlib.util.find_spec("cmaes") is None:
        raise ConfigError("the cmaes sampler needs the 'cmaes' package (pip install cmaes); "
                          "allowed without it: grid, random, tpe", key=key)
    return Choice(name, options)


def make_sampler(choice: Choice, space: list[Param], seed: int) -> optuna.samplers.BaseSampler:
    options = dict(choice.options)
    if choice.name == "grid":
        options["search_space"] = grid_space(space)
    try:
        return SAMPLERS[choice.name](seed=seed, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the {choice.name} sampler rejects its options: {error}",
                          key="sampler") from None


def make_pruner(choice: Choice, *, val_every: int, steps: int) -> optuna.pruners.BasePruner:
    options = dict(choice.options)
    if choice.name == "hyperband":
        # Reports are indexed by training step, so the rungs are counted in steps too.
        options.setdefault("min_resource", val_every)
        options.setdefault("max_resource", steps)
    try:
        return PRUNERS[choice.name](**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"the {choice.name} pruner rejects its options: {error}",
                          key="pruner") from None


def grid_space(space: list[Param]) -> dict[str, list[Any]]:
    """The grid sampler's search space; every parameter must be finite."""
    grid = {}
    for param in space:
        values = param.grid()
        if values is None:
            raise ConfigError("the grid sampler needs a finite parameter: give a float a "
                              "`step`, or use categorical choices", key=f"space.{param.key}")
        grid[param.key] = values
    return grid


def grid_size(space: list[Param]) -> int:
    size = 1
    for values in grid_space(space).values():
        size *= len(values)
    return size
