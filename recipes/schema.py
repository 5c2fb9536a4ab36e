"""The experiment file's schema: every key, its type, default and allowed values.

One table drives defaults, validation and the "did you mean" for unknown keys, so the YAML a
user may write is documented in exactly one place (the README's tour is generated from the same
ideas, kept in sync by a test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tzoo.components import ModelConfig
from tzoo.components.errors import ConfigError, unknown_choice

from .parallel import STRATEGIES
from .tasks import TASKS


@dataclass(frozen=True)
class Field:
    """One leaf: accepted Python types, default, and optional choices / lower bound."""

    types: tuple[type, ...]
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    nullable: bool = False
    doc: str = ""

    def check(self, value: Any, key: str) -> None:
        if value is None and (self.nullable or self.default is None):
            return
        if isinstance(value, bool) and bool not in self.types:
            raise ConfigError(f"expected {self._type_names()}, got {value!r}", key=key)
        if not isinstance(value, self.types):
            raise ConfigError(f"expected {self._type_names()}, got {value!r}", key=key)
        if self.choices is not None and value not in self.choices:
            raise ConfigError(unknown_choice("value", value, map(str, self.choices)), key=key)
        if self.minimum is not None and isinstance(value, (int, float)) and value < self.minimum:
            raise ConfigError(f"must be >= {self.minimum}, got {value!r}", key=key)

    def _type_names(self) -> str:
        names = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
                 list: "a list", dict: "a mapping"}
        return " or ".join(names.get(t, t.__name__) for t in self.types)


NUMBER = (int, float)

SCHEMA: dict[str, Any] = {
    "experiment": Field((str,), doc="the experiment's name: runs go to runs/<experiment>/"),
    "description": Field((str,), ""),
    "extends": Field((str,), doc="a base file, relative to this one"),
    "plugins": Field((list,), [], doc="modules to import that register extra variants"),
    "seeds": Field((list,), [0]),
    "runs_dir": Field((str,), "runs"),
    "task": {
        "name": Field((str,), "lm", choices=tuple(TASKS)),
        "objective": Field((str,), "causal", choices=("causal", "masked", "prefix")),
        "allow_future_leak": Field((bool,), False),
        "mask_prob": Field(NUMBER, 0.15, minimum=0.0),
        "label_smoothing": Field(NUMBER, 0.1, minimum=0.0),
    },
    "data": {
        "corpus": Field((str,), "builtin:pydoc"),
        "options": Field((dict,), {}),
        "tokenizer": Field((str,), "char"),
        "context": Field((int,), 128, minimum=2, doc="LM training context, in tokens"),
        "max_len": Field((int,), 64, minimum=2, doc="translation: longest source/target kept"),
        "batch_size": Field((int,), 16, minimum=1),
        "token_files": Field((str, bool), "auto", choices=("auto", True, False),
                             doc="LM on split files: tokenize once into memory-mapped token "
                                 "files (auto: from 64 MB of text)"),
    },
    "model": "ModelConfig",
    "train": {
        "steps": Field((int,), 1000, minimum=1),
        "lr": Field(NUMBER, 1e-3, minimum=0.0),
        "min_lr": Field(NUMBER, None, nullable=True, minimum=0.0,
                        doc="cosine decay floor (default lr/10)"),
        "warmup": Field((int,), 100, minimum=0),
        "schedule": Field((str,), "cosine", choices=("cosine", "linear", "constant")),
        "weight_decay": Field(NUMBER, 0.1, minimum=0.0),
        "betas": Field((list,), [0.9, 0.95]),
        "grad_clip": Field(NUMBER, 1.0, nullable=True, minimum=0.0),
        "val_every": Field((int,), 200, minimum=1),
        "checkpoint_every": Field((int,), 200, minimum=1),
        "log_every": Field((int,), 10, minimum=1),
        "precision": Field((str,), "32-true",
                           choices=("32-true", "32", "bf16-mixed", "16-mixed", "64-true")),
        "accelerator": Field((str,), "auto", choices=("auto", "cpu", "gpu", "cuda", "mps")),
        "devices": Field((int, str), 1, doc="devices (processes) per node, or 'auto'"),
        "num_nodes": Field((int,), 1, minimum=1),
        "strategy": Field((str,), "auto", choices=STRATEGIES),
        "accumulate": Field((int,), 1, minimum=1,
                            doc="micro-batches per optimizer step (data.batch_size stays the "
                            "step's global batch)"),
        "threads": Field((int,), None, nullable=True, minimum=1),
        "logger": Field((str, list), "csv",
                        doc="csv (always kept), tensorboard, mlflow, wandb, or a list of them"),
        "progress": Field((bool,), True),
        "compile": Field((bool,), False),
    },
    "eval": {
        "batches": Field((int,), 20, minimum=1, doc="validation batches per evaluation"),
        "context_multipliers": Field((list,), [1, 2, 4]),
        "decode_batches": Field((int,), 2, minimum=0, doc="translation: batches decoded per val"),
        "beam_size": Field((int,), 4, minimum=1),
        "max_new_tokens": Field((int,), 64, minimum=1),
        "samples": Field((int,), 3, minimum=0),
        "test_batches": Field((int,), None, nullable=True, minimum=1,
                              doc="batches per test split (null: all)"),
        "test": Field((bool,), True, doc="evaluate the test split(s) at the end"),
        "repeat_loss": Field((bool,), False, doc="LM, causal: also val/loss_repeat and "
                             "val/loss_fresh (tokens seen earlier in their document, or not)"),
        "primary": Field((str,), None, nullable=True,
                         doc="the metric the experiment is judged by (bleu, val/loss, ...; "
                             "default: the task's, see tasks.judged_by)"),
    },
    "ablate": "ablate",
}

#: keys that do not change a run's result, so they are left out of its identity
NON_RESULT_KEYS = (
    "experiment", "description", "extends", "plugins", "seeds", "runs_dir", "ablate",
    "train.logger", "train.progress", "train.checkpoint_every", "train.log_every",
    "train.threads", "train.accelerator", "train.devices", "eval.primary", "data.token_files",
    "train.num_nodes", "train.strategy",
    "train.accumulate",  # the same optimisation on 1 or N devices: see parallel.py
)


def defaults() -> dict[str, Any]:
    """The full default configuration."""
    out: dict[str, Any] = {}
    for key, spec in SCHEMA.items():
        if isinstance(spec, dict):
            out[key] = {name: _copy(field.default) for name, field in spec.items()}
        elif spec == "ModelConfig":
            out[key] = ModelConfig().to_dict()
        elif isinstance(spec, Field) and spec.default is not None:
            out[key] = _copy(spec.default)
    return out


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def known_key(dotted: str) -> bool:
    """Whether `dotted` (e.g. 'model.position', 'train.lr') names a key of the schema."""
    section, _, rest = dotted.partition(".")
    spec = SCHEMA.get(section)
    if spec is None:
        return False
    if not rest:
        return True
    if spec == "ModelConfig":
        return rest.split(".")[0] in ModelConfig().to_dict()
    if isinstance(spec, dict):
        return rest in spec or (rest.split(".")[0] == "options" and section == "data")
    return False


def all_keys() -> list[str]:
    keys = []
    for section, spec in SCHEMA.items():
        if isinstance(spec, dict):
            keys += [f"{section}.{name}" for name in spec]
        elif spec == "ModelConfig":
            keys += [f"model.{name}" for name in ModelConfig().to_dict()]
        else:
            keys.append(section)
    return keys


def validate_sections(config: dict[str, Any]) -> None:
    """Check every key against the schema (types, choices, bounds); model fields by ModelConfig."""
    for key, value in config.items():
        spec = SCHEMA.get(key)
        if spec is None:
            raise ConfigError(unknown_choice("top-level key", key, SCHEMA), key=key)
        if isinstance(spec, Field):
            spec.check(value, key)
        elif isinstance(spec, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"expected a mapping, got {value!r}", key=key)
            for name, item in value.items():
                if name not in spec:
                    raise ConfigError(unknown_choice(f"key in '{key}'", name, spec),
                                      key=f"{key}.{name}")
                spec[name].check(item, f"{key}.{name}")
        elif spec == "ModelConfig":
            if not isinstance(value, dict):
                raise ConfigError(f"expected a mapping, got {value!r}", key=key)
            ModelConfig.from_dict(value)
