"""The search space: one parameter per dotted key of the experiment.

    space:
      train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
      train.warmup: {type: int, low: 0, high: 200, step: 50}
      model.norm: {type: categorical, choices: [layernorm, rmsnorm]}

Optuna's own parameter names are the dotted keys, so a trial's `params` read like `--set`
overrides. Categorical choices that are not plain scalars (a variant spec with arguments,
`{name: alibi, slopes: ...}`) are stored in Optuna under a JSON label and mapped back here,
because Optuna's storages only persist scalars.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import optuna

from tzoo.components.errors import ConfigError, unknown_choice
from tzoo.recipes.schema import all_keys, known_key

PARAM_TYPES = ("float", "int", "categorical")
#: keys each parameter type accepts
PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Param:
    """One searched key: its Optuna distribution plus the labels of non-scalar choices."""

    key: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def labels(self) -> tuple[Any, ...]:
        """What Optuna stores for each choice: the scalar itself, or its JSON text."""
        return tuple(c if isinstance(c, SCALARS) else _label(c) for c in self.choices)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.kind == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log,
                                                          step=self.step)
        if self.kind == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high),
                                                        log=self.log, step=int(self.step or 1))
        return optuna.distributions.CategoricalDistribution(self.labels)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return self.value(trial.suggest_categorical(self.key, self.labels))

    def value(self, stored: Any) -> Any:
        """The configuration value for what Optuna stored (undoing the JSON label)."""
        if self.kind != "categorical":
            return stored
        return self.choices[self.labels.index(stored)]

    def bounds(self) -> list[Any]:
        """Values that together exercise every edge of the parameter (for validation)."""
        if self.kind == "categorical":
            return list(self.choices)
        cast = int if self.kind == "int" else float
        return [cast(self.low), cast(self.high)]

    def grid(self) -> list[Any] | None:
        """Every value, when the parameter is finite (what the grid sampler needs)."""
        if self.kind == "categorical":
            return list(self.labels)
        if self.step is None and self.kind == "float":
            return None
        step = self.step or 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        cast = int if self.kind == "int" else float
        return [cast(self.low + i * step) for i in range(count)]


def _label(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def parse_space(raw: Any, *, forbidden: tuple[str, ...] = ()) -> list[Param]:
    """Validate the `space:` mapping; every error names the parameter's key."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("expected a non-empty mapping of dotted keys to parameters, e.g. "
                          "train.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}",
                          key="space")
    return [_parse_param(key, spec, forbidden) for key, spec in raw.items()]


def _parse_param(key: Any, spec: Any, forbidden: tuple[str, ...]) -> Param:
    where = f"space.{key}"
    if not isinstance(key, str) or "." not in key or not known_key(key):
        raise ConfigError(f"a searched key must be a dotted key of the experiment; "
                          f"{unknown_choice('key', key, all_keys())}", key=where)
    if key in forbidden:
        raise ConfigError("this key is the sweep's `per` key: each study fixes it, so it "
                          "cannot also be searched", key=where)
    if not isinstance(spec, dict):
        raise ConfigError("expected a mapping such as {type: float, low: ..., high: ...}",
                          key=where)
    kind = spec.get("type", "categorical" if "choices" in spec else None)
    if kind not in PARAM_TYPES:
        raise ConfigError(unknown_choice("parameter type", kind, PARAM_TYPES), key=f"{where}.type")
    for name in spec:
        if name not in PARAM_KEYS[kind]:
            raise ConfigError(unknown_choice(f"key for a {kind} parameter", name,
                                             PARAM_KEYS[kind]), key=f"{where}.{name}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError("expected a non-empty list of values", key=f"{where}.choices")
        labels = [c if isinstance(c, SCALARS) else _label(c) for c in choices]
        if len(set(map(repr, labels))) != len(labels):
            raise ConfigError("the choices repeat a value", key=f"{where}.choices")
        return Param(key, kind, choices=tuple(choices))
    return _parse_range(key, kind, spec, where)


def _parse_range(key: str, kind: str, spec: dict[str, Any], where: str) -> Param:
    number = (int,) if kind == "int" else (int, float)
    values = {}
    for name in ("low", "high"):
        value = spec.get(name)
        if not isinstance(value, number) or isinstance(value, bool):
            kind_name = "an integer" if kind == "int" else "a number"
            raise ConfigError(f"expected {kind_name}, got {value!r}", key=f"{where}.{name}")
        values[name] = value
    low, high = values["low"], values["high"]
    if not low < high:
        raise ConfigError(f"low ({low}) must be below high ({high})", key=where)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"expected true/false, got {log!r}", key=f"{where}.log")
    if log and low <= 0:
        raise ConfigError(f"a log scale needs low > 0, got {low}", key=f"{where}.low")
    step = spec.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise ConfigError(f"expected a positive number, got {step!r}", key=f"{where}.step")
        if log and not (kind == "int" and step == 1):
            raise ConfigError("a log scale cannot have a step", key=f"{where}.step")
        if step > high - low:
            raise ConfigError(f"step ({step}) is larger than the range ({low}..{high})",
                              key=f"{where}.step")
    return Param(key, kind, low=low, high=high, log=log,
                 step=float(step) if kind == "float" and step is not None else step)
