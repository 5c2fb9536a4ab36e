"""Experiment files: load (with `extends:` and `--set`), validate, and expand into runs.

    experiment: lm-positions
    extends: base.yaml
    model: {position: learned}
    seeds: [0, 1, 2]
    ablate:
      mode: one_at_a_time            # or grid
      model.position: [none, sinusoidal, learned, rotary, alibi]

Each run is the base with one combination of axis values and one seed. Its id is derived from
the resolved configuration (everything that changes the result, see `NON_RESULT_KEYS`) and the
seed, so the same run is recognised whichever file it came from.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tzoo.components import load_plugins
from tzoo.components.config import VARIANT_FIELDS
from tzoo.components.errors import ConfigError, unknown_choice

from . import tracking
from .parallel import check_parallel
from .schema import NON_RESULT_KEYS, all_keys, defaults, known_key, validate_sections
from .tasks import check_task, resolve_model

ABLATION_MODES = ("grid", "one_at_a_time")


@dataclass
class RunSpec:
    """One planned run: a resolved configuration, the variant it is, and its seed."""

    config: dict[str, Any]
    variant: dict[str, Any]
    seed: int
    is_base: bool
    run_id: str = ""
    index: int = 0
    #: what the base is on the ablated axes, e.g. "model.position=learned"
    base_name: str = ""
    #: `ablate.reference`: the axis values each variant is compared with in reports
    reference: dict[str, Any] = field(default_factory=dict)

    @property
    def variant_name(self) -> str:
        if not self.variant:
            return self.base_name or "base"
        return ", ".join(f"{k}={short_value(v)}" for k, v in self.variant.items())


@dataclass
class Experiment:
    name: str
    path: Path | None
    base: dict[str, Any]
    axes: dict[str, list[Any]] = field(default_factory=dict)
    mode: str = "one_at_a_time"
    seeds: list[int] = field(default_factory=lambda: [0])
    #: named axes whose values are labels of override bundles: {axis: {label: {key: value}}}
    bundles: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: `ablate.reference: {axis: value}`: reports compare each variant with the variant that
    #: has these values and the same values on every other axis (a grid's natural contrast)
    reference: dict[str, Any] = field(default_factory=dict)

    def overrides(self, variant: dict[str, Any]) -> dict[str, Any]:
        """The dotted-key overrides a variant stands for (bundle labels expanded)."""
        out: dict[str, Any] = {}
        for key, value in variant.items():
            if key in self.bundles:
                out.update(self.bundles[key][value])
            else:
                out[key] = value
        return out

    @property
    def runs_dir(self) -> Path:
        return Path(self.base.get("runs_dir", "runs")) / self.name

    def plan(self) -> list[RunSpec]:
        """Every run: base × ablation combinations × seeds, base first."""
        variants: list[dict[str, Any]] = []
        if not self.axes:
            variants.append({})
        elif self.mode == "grid":
            keys = list(self.axes)
            for values in itertools.product(*(self.axes[k] for k in keys)):
                variants.append(dict(zip(keys, values, strict=True)))
        else:
            variants.append({})
            seen = [resolved_identity(self.base)]
            for key, values in self.axes.items():
                for value in values:
                    if self._is_base({key: value}):
                        continue
                    # Two spellings of one configuration on the axes train once.
                    config = copy.deepcopy(self.base)
                    for dotted, override in self.overrides({key: value}).items():
                        set_dotted(config, dotted, override)
                    identity = resolved_identity(config)
                    if identity is not None and identity in seen:
                        continue
                    seen.append(identity)
                    variants.append({key: value})
        runs = []
        for variant in variants:
            config = copy.deepcopy(self.base)
            for key, value in self.overrides(variant).items():
                set_dotted(config, key, value)
            is_base = self._is_base(variant)
            shown = {} if is_base and self.mode == "one_at_a_time" else variant
            for seed in self.seeds:
                runs.append(RunSpec(config=config, variant=shown, seed=seed, is_base=is_base))
        base_name = self._base_name()
        for index, run in enumerate(runs):
            run.index = index
            run.base_name = base_name
            run.run_id = run_id(run.config, run.seed, run.variant)
            run.reference = dict(self.reference)
        return runs


    def _base_name(self) -> str:
        """The base's own values on the ablated axes (a bundle axis: its matching label)."""
        parts = []
        for key in self.axes:
            if key in self.bundles:
                labels = [label for label in self.bundles[key] if self._is_base({key: label})]
                if labels:
                    parts.append(f"{key}={labels[0]}")
            else:
                parts.append(f"{key}={short_value(get_dotted(self.base, key))}")
        return ", ".join(parts)

    def _is_base(self, variant: dict[str, Any]) -> bool:
        overrides = self.overrides(variant)
        if all(get_dotted(self.base, k) == v for k, v in overrides.items()):
            return True
        if self.mode != "one_at_a_time":
            return False  # a grid's cells are what the axes list, each named by its values
        # Spelled differently, trained the same: `model.mask: null` in the base is the causal
        # mask an axis value `causal` asks for, an alias is its variant's canonical name.
        config = copy.deepcopy(self.base)
        for key, value in overrides.items():
            set_dotted(config, key, value)
        resolved = resolved_identity(config)
        return resolved is not None and resolved == resolved_identity(self.base)


def short_value(value: Any) -> str:
    """How a value is written in variant names: a dict as name(key=value,...)."""
    if isinstance(value, dict):
        name = value.get("name", "")
        rest = ",".join(f"{k}={v}" for k, v in value.items() if k != "name")
        return f"{name}({rest})" if rest else str(name)
    return str(value)


def _result_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration without the keys that cannot change a run's results."""
    identity = copy.deepcopy(config)
    for key in NON_RESULT_KEYS:
        delete_dotted(identity, key)
    return identity


def resolved_identity(config: dict[str, Any]) -> dict[str, Any] | None:
    """What a run of `config` trains, however its file spells it: the result-relevant
    configuration with the model resolved (defaults filled in, variants by canonical name
    with their arguments, the architecture's own mask for `mask: null`). None when the model
    does not resolve (the validation that follows reports why)."""
    identity = _result_identity(config)
    try:
        model = resolve_model(config)
        identity["model"] = {
            **model.to_dict(),
            **{name: dict(zip(("name", "arguments"), model.variant(name), strict=True))
               for name in VARIANT_FIELDS},
        }
    except (ConfigError, KeyError, TypeError):
        return None
    return identity


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:8]


def config_digest(config: dict[str, Any]) -> str:
    """8 hex of the result-relevant configuration, seed left out: every seed of one
    configuration shares it, so reports pool exactly those runs. `config` may be a run's
    config.yaml (which also records its seed and run id)."""
    identity = _result_identity(config)
    identity.pop("seed", None)
    identity.pop("run_id", None)
    return _digest(identity)


def run_id(config: dict[str, Any], seed: int, variant: dict[str, Any]) -> str:
    """'<variant slug>-s<seed>-<8 hex of the result-relevant config and the seed>'."""
    digest = _digest({"config": _result_identity(config), "seed": seed})
    slug = "base" if not variant else "_".join(short_value(v) for v in variant.values())
    slug = re.sub(r"[^A-Za-z0-9.=,()-]+", "-", slug)[:60].strip("-") or "run"
    return f"{slug}-s{seed}-{digest}"


# ---------------------------------------------------------------------------------- dotted keys


def get_dotted(config: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def delete_dotted(config: dict[str, Any], key: str) -> None:
    parts = key.split(".")
    node: Any = config
    for part in parts[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def deep_merge(base: dict[str, Any], override: dict[str, Any],
               _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """`override` wins; mappings merge key by key, except that a model variant spec
    (`model.position: {name: alibi, ...}`) replaces the base's spec whole."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        variant_spec = _path == ("model",)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not variant_spec:
            out[key] = deep_merge(out[key], value, (*_path, key))
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """YAML 1.1 (PyYAML) reads `1e-3` -- an exponent without a dot -- as a string; read it as
    the number everyone means, in files and in `--set train.lr=1e-4` alike."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, with the line number in any syntax error."""
    if not path.is_file():
        raise ConfigError("file not found", source=str(path))
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise ConfigError(f"malformed YAML at {where}: {error.problem}", source=str(path)) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"malformed YAML: {error}", source=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping of keys", source=str(path))
    return data


def _resolve_extends(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise ConfigError(f"'extends' forms a cycle: {chain}", key="extends", source=str(path))
    data = _anchor_files(read_yaml(path), path.parent)
    if not data:
        # An empty file would train the default model on the default corpus: never what was
        # meant (a file saved before it was written, a wrong path to a blank template).
        raise ConfigError("the file is empty; an experiment names at least what it changes "
                          "from the defaults (start from recipes/quickstart.yaml, or "
                          "`extends:` another file)",
                          source=str(path) if seen else None)  # the top file: as typed
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError("expected a file name", key="extends", source=str(path))
    base = _resolve_extends((path.parent / parent), (*seen, path))
    return deep_merge(base, data)


def _anchor_files(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A relative `file:` corpus is relative to the file that names it (as `extends:` is), not
    to the directory `tzoo` runs in: it is made absolute here. (`--set data.corpus=file:...`
    is relative to the working directory, like any path on a command line.)"""
    section = data.get("data")
    corpus = section.get("corpus") if isinstance(section, dict) else None
    if isinstance(corpus, str) and corpus.startswith("file:"):
        rest = corpus[len("file:"):]
        if rest and not Path(rest).expanduser().is_absolute():
            section["corpus"] = "file:" + os.path.normpath(folder / rest)
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """'model.layers=6' -> ('model.layers', 6); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"an override must look like KEY=VALUE, got '{text}'", key="--set")
    key, _, raw = text.partition("=")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_experiment(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Read, merge, override and validate an experiment file; every error names the file."""
    source = str(path)
    try:
        raw = _resolve_extends(Path(path))
        for text in overrides:
            key, value = parse_override(text)
            if not known_key(key):
                raise ConfigError(unknown_choice("key", key, all_keys()), key="--set")
            set_dotted(raw, key, value)
        return _validated(raw, Path(path))
    except ConfigError as error:
        raise error.located(source=source) from None


def experiment_from_dict(raw: dict[str, Any], name: str | None = None) -> Experiment:
    """Build an experiment from an in-memory mapping (sweeps and tests)."""
    raw = copy.deepcopy(raw)
    if name:
        raw["experiment"] = name
    return _validated(raw, None)


def _validated(raw: dict[str, Any], path: Path | None) -> Experiment:
    raw = copy.deepcopy(raw)
    ablate = raw.pop("ablate", None) or {}
    if "experiment" not in raw:
        if path is None:
            raise ConfigError("missing key: every experiment needs a name", key="experiment")
        raw["experiment"] = path.stem
    validate_sections(raw)
    load_plugins(tuple(raw.get("plugins", ())))
    config = deep_merge(defaults(), raw)
    seeds = config.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"expected a non-empty list of integers, got {seeds!r}", key="seeds")
    mode, axes, bundles, reference = _ablation(ablate)
    experiment = Experiment(config["experiment"], path, config, axes, mode, list(seeds), bundles,
                            reference)
    for run in experiment.plan():
        check_run_config(run.config, run.variant)
    return experiment


def _ablation(ablate: Any) -> tuple[str, dict[str, list[Any]], dict[str, dict], dict[str, Any]]:
    """(mode, axes, bundles, reference). An axis is `dotted.key: [values]`, or a named bundle
    axis `name: {label: {dotted.key: value, ...}, ...}` that varies several keys together;
    `reference: {axis: value, ...}` names the values every variant is compared with."""
    if not isinstance(ablate, dict):
        raise ConfigError("expected a mapping of dotted keys to lists of values", key="ablate")
    ablate = dict(ablate)
    mode = ablate.pop("mode", "one_at_a_time")
    reference = ablate.pop("reference", None) or {}
    if mode not in ABLATION_MODES:
        raise ConfigError(unknown_choice("ablation mode", mode, ABLATION_MODES),
                          key="ablate.mode")
    bundles: dict[str, dict[str, dict[str, Any]]] = {}
    for key, values in list(ablate.items()):
        if "." not in key and isinstance(values, dict):
            for label, overrides in values.items():
                if not isinstance(overrides, dict) or not overrides:
                    raise ConfigError("a bundle maps a label to {dotted.key: value, ...}",
                                      key=f"ablate.{key}.{label}")
                for dotted in overrides:
                    if not known_key(dotted) or "." not in dotted:
                        raise ConfigError(unknown_choice("key", dotted, all_keys()),
                                          key=f"ablate.{key}.{label}")
            bundles[key] = {str(label): dict(o) for label, o in values.items()}
            ablate[key] = list(bundles[key])
            continue
        if not known_key(key) or "." not in key:
            raise ConfigError(
                f"an axis must be a dotted key of the configuration; "
                f"{unknown_choice('key', key, all_keys())}",
                key=f"ablate.{key}",
            )
        if not isinstance(values, list) or not values:
            raise ConfigError("an axis needs a non-empty list of values", key=f"ablate.{key}")
    check_reference(reference, ablate, "ablate.reference")
    return mode, ablate, bundles, dict(reference)


def check_reference(reference: Any, axes: dict[str, list[Any]], where: str) -> None:
    """A reference names ablated axes and, for each, one of the axis's values."""
    if not isinstance(reference, dict):
        raise ConfigError("expected a mapping of ablated axes to one of their values, e.g. "
                          "{model.residual: add}", key=where)
    for axis, value in reference.items():
        key = where if where.startswith("--") else f"{where}.{axis}"  # a flag, or a YAML key
        if axis not in axes:
            raise ConfigError(unknown_choice("ablated axis", axis, list(axes)), key=key)
        shown = [short_value(v) for v in axes[axis]]
        if short_value(value) not in shown:
            raise ConfigError(unknown_choice(f"value of {axis}", short_value(value), shown),
                              key=key)


def check_run_config(config: dict[str, Any], variant: dict[str, Any] | None = None) -> None:
    """Everything that can be known before training: sections, model names and combinations,
    and the rules that tie task and model together (the leak guard)."""
    where = f" (in the variant {variant})" if variant else ""
    try:
        validate_sections({k: v for k, v in config.items() if k != "ablate"})
        tracking.check_available(config["train"]["logger"])
        check_task(config, resolve_model(config))
        check_parallel(config)
    except ConfigError as error:
        if where and where not in error.detail:
            raise ConfigError(error.detail + where, key=error.key, source=error.source) from None
        raise
