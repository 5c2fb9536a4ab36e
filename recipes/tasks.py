"""The task table: everything that differs between language modelling and translation, one row
each. Nothing else in the suite asks which task a run is: it looks the task up here.

A row names the task's LightningModule and data module and the rules that tie the task to the
model: the configuration checks, whether the task marks the prefix of each sequence itself (a
prefix LM, a decoder-only translator), and how long a sequence the task trains on (which sets
`model.max_len` when the YAML leaves it null), the metrics it records and the ones an experiment
is judged by unless `eval.primary` says otherwise. What a finished run adds to its summary
comes from the LightningModule (`Task.summary_fields`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L

from tzoo.components import ModelConfig
from tzoo.components.errors import ConfigError, did_you_mean, unknown_choice

from .corpora import is_generated
from .data import PreparedData, prepare_data
from .language_modeling import LanguageModeling, LMData, bits_name, multiplier_label
from .metrics import is_split, split_metric
from .task import Task
from .translation import PairsData, Translation


@dataclass(frozen=True)
class TaskKind:
    """One task: its Lightning classes and its rules."""

    name: str
    module: type[Task]
    data: type[L.LightningDataModule]
    #: checks of the configuration beyond the model's own (run before anything trains)
    check: Callable[[dict[str, Any], ModelConfig], None]
    #: whether the task tells the model where each sequence's prefix ends
    supplies_prefix: Callable[[dict[str, Any], str], bool]
    #: tokens of content in the longest training sequence, for a model of this `arch`
    sequence_length: Callable[[dict[str, Any], str], int]
    #: special tokens around that content (bos, separator, eos)
    special_tokens: Callable[[str], int]
    #: trains on windows of `data.context` tokens (what a context-length sweep varies)
    windowed: bool
    #: the names of the metrics a run records, without their split (`loss`, `bleu`)
    metrics: Callable[[dict[str, Any]], tuple[str, ...]]
    #: what an experiment is judged by when `eval.primary` is not set, most important first;
    #: a name without a split stands for it on every split (see `metrics.resolve`)
    primary: Callable[[dict[str, Any]], tuple[str, ...]]
    #: the metric names a completed run records (its summary's keys; a measure the run
    #: cannot take is recorded as null), given the corpus's split names; the summary keys
    #: a sweep may optimise and trackers receive
    recorded: Callable[[dict[str, Any], Sequence[str]], list[str]]


# ----------------------------------------------------------------------- language modelling


def _check_lm(config: dict[str, Any], model: ModelConfig) -> None:
    objective = config["task"]["objective"]
    mask = model.resolved_mask_name()
    if model.arch == "encoder_decoder":
        raise ConfigError("language modelling uses one stack: allowed arch: decoder, encoder",
                          key="model.arch")
    if objective in ("causal", "prefix") and mask == "bidirectional" and not config["task"][
        "allow_future_leak"
    ]:
        raise ConfigError(
            f"the {objective} objective with a bidirectional mask lets every position see the "
            "token it must predict, so the loss measures copying, not modelling. Use "
            "model.mask: causal (or prefix), the 'masked' objective, or set "
            "task.allow_future_leak: true to demonstrate exactly that leak",
            key="model.mask",
        )
    if config["eval"]["repeat_loss"] and objective != "causal":
        raise ConfigError(f"the repeat loss is a causal loss; the objective is {objective}",
                          key="eval.repeat_loss")
    if objective == "masked" and not 0.0 < config["task"]["mask_prob"] < 1.0:
        raise ConfigError("must be in (0, 1)", key="task.mask_prob")
    context = config["data"]["context"]
    max_len = model.max_len
    if model.variant("position")[0] == "learned" and max_len is not None and context > max_len:
        raise ConfigError(
            f"data.context ({context}) is longer than the learned position table "
            f"(model.max_len = {max_len}); raise model.max_len or shorten the context",
            key="data.context",
        )
    for multiplier in config["eval"]["context_multipliers"]:
        if not isinstance(multiplier, (int, float)) or multiplier <= 0:
            raise ConfigError(f"expected positive numbers, got {multiplier!r}",
                              key="eval.context_multipliers")


def _lm_metrics(config: dict[str, Any]) -> tuple[str, ...]:
    bits = bits_name(config["data"]["tokenizer"])
    lengths = [f"loss@{multiplier_label(m)}" for m in config["eval"]["context_multipliers"]
               if isinstance(m, (int, float))]
    return ("loss", "ppl", bits, *lengths)


def _lm_recorded(config: dict[str, Any], splits: Sequence[str]) -> list[str]:
    bits = bits_name(config["data"]["tokenizer"])
    names = ["val/loss", "val/ppl", f"val/{bits}"]
    names += [f"val/loss@{multiplier_label(m)}" for m in config["eval"]["context_multipliers"]]
    if config["eval"]["test"]:
        names += ["test/loss", "test/ppl", f"test/{bits}"]
    return names


LM = TaskKind(
    name="lm",
    module=LanguageModeling,
    data=LMData,
    check=_check_lm,
    supplies_prefix=lambda config, arch: config["task"]["objective"] == "prefix",
    sequence_length=lambda config, arch: int(config["data"]["context"]),
    special_tokens=lambda arch: 0,
    windowed=True,
    metrics=_lm_metrics,
    # Validation loss: what every study so far compared (the test split is read once, at the
    # end, on fewer batches).
    primary=lambda config: ("val/loss",),
    recorded=_lm_recorded,
)


# ----------------------------------------------------------------------------- translation


def _check_translation(config: dict[str, Any], model: ModelConfig) -> None:
    if model.arch == "encoder":
        raise ConfigError(
            "translation needs a model that generates: allowed arch: encoder_decoder, decoder",
            key="model.arch",
        )
    if model.resolved_mask_name() == "bidirectional":
        raise ConfigError("a generating model needs a causal or prefix mask", key="model.mask")
    if config["task"]["objective"] != "causal":
        raise ConfigError("translation has one objective; remove task.objective",
                          key="task.objective")


def _pair_length(config: dict[str, Any], arch: str) -> int:
    # A decoder-only translator reads source and target as one sequence.
    pair = int(config["data"]["max_len"])
    return 2 * pair if arch == "decoder" else pair


def _translation_primary(config: dict[str, Any]) -> tuple[str, ...]:
    # Generated targets (number words, copied symbols) are short and have one right answer:
    # exact match says whether the model has it, and BLEU is often undefined on them
    # (`short_references.py`). On people's sentences BLEU is the figure papers report.
    if is_generated(config["data"]["corpus"]):
        return ("exact_match", "chrf")
    return ("bleu", "chrf")


#: what decoding adds to the loss of every evaluated split
DECODED_SCORES = ("bleu", "chrf", "exact_match")


def _translation_recorded(config: dict[str, Any], splits: Sequence[str]) -> list[str]:
    names = ["val/loss", "val/ppl"]
    if int(config["eval"]["decode_batches"]):
        names += [f"val/{score}" for score in DECODED_SCORES]
    if config["eval"]["test"]:
        for split in splits:
            if split == "test" or split.startswith("test_"):
                names += [f"{split}/loss", *(f"{split}/{score}" for score in DECODED_SCORES)]
    return names


TRANSLATION = TaskKind(
    name="translation",
    module=Translation,
    data=PairsData,
    check=_check_translation,
    supplies_prefix=lambda config, arch: arch == "decoder",  # the source is the prefix
    sequence_length=_pair_length,
    special_tokens=lambda arch: 3 if arch == "decoder" else 2,  # (sep) bos/eos
    windowed=False,
    metrics=lambda config: ("loss", "ppl", "bleu", "chrf", "exact_match"),
    primary=_translation_primary,
    recorded=_translation_recorded,
)


TASKS: dict[str, TaskKind] = {kind.name: kind for kind in (LM, TRANSLATION)}


def task_kind(config: dict[str, Any]) -> TaskKind:
    return TASKS[config["task"]["name"]]


def resolve_model(config: dict[str, Any], vocab_size: int | None = None) -> ModelConfig:
    """The run's `ModelConfig`: the YAML's fields, with the vocabulary size from the tokenizer
    and, when `model.max_len` is null, the longest sequence the task trains on (so a learned
    table is exactly as long as training needs, and extrapolation beyond it is visible)."""
    values = dict(config["model"])
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    if values.get("max_len") is None:
        kind, arch = task_kind(config), values.get("arch", "decoder")
        values["max_len"] = kind.sequence_length(config, arch) + kind.special_tokens(arch)
    return ModelConfig.from_dict(values)


def metric_names(config: dict[str, Any], splits: Sequence[str] = ("test",)) -> list[str]:
    """The summary keys a completed run of `config` records; `splits`: the corpus's split
    names (a translation run scores every test split it has)."""
    return task_kind(config).recorded(config, splits)


def primary_metric(config: dict[str, Any] | None) -> str:
    """The one summary key a run is judged by (`tzoo runs`, a report's opening chart): the
    first of `judged_by`, on the test split where the run records it there, else validation;
    `val/loss` when the task is unknown."""
    try:
        wanted = judged_by(config)[0]  # type: ignore[arg-type]
        recorded = metric_names(config)  # type: ignore[arg-type]
    except (KeyError, TypeError, AttributeError):
        return "val/loss"
    split, name = split_metric(wanted)
    if split is not None:
        return wanted
    matches = [m for m in recorded if split_metric(m)[1] == name]
    tested = [m for m in matches if not m.startswith("val/")]
    return (tested or matches or [wanted])[0]


def supplies_prefix(config: dict[str, Any]) -> bool:
    """Whether the run's task marks each sequence's prefix for the model (a prefix mask then
    needs no fixed length)."""
    return task_kind(config).supplies_prefix(config, config["model"].get("arch", "decoder"))


def check_task(config: dict[str, Any], model: ModelConfig) -> None:
    """The rules that tie the task and the model together (the leak guard among them), and
    that `eval.primary` names a metric the task records."""
    model.validate(task_supplies_prefix=supplies_prefix(config))
    task_kind(config).check(config, model)
    _check_primary(config)


def _check_primary(config: dict[str, Any]) -> None:
    primary = config["eval"].get("primary")
    if primary is None:
        return
    names = task_kind(config).metrics(config)
    split, name = split_metric(primary)
    if name not in names:
        raise ConfigError(
            unknown_choice(f"{config['task']['name']} metric", name, names)
            + "; write it alone (every split that measures it) or after a split: "
            "val/NAME, test/NAME or test_<split>/NAME", key="eval.primary")
    if split is not None and not is_split(split):
        raise ConfigError(f"unknown split '{split}' in '{primary}'"
                          f"{did_you_mean(split, ['val', 'test'])}; allowed: val, test, "
                          "test_<split> (e.g. test_long)", key="eval.primary")


def judged_by(config: dict[str, Any]) -> tuple[str, ...]:
    """The metrics an experiment is judged by, most important first: its `eval.primary`, then
    its task's defaults (loss for language modelling; BLEU then chrF for translation, exact
    match then chrF on a generated corpus)."""
    defaults = task_kind(config).primary(config)
    primary = config["eval"].get("primary")
    return (primary, *(m for m in defaults if m != primary)) if primary else defaults


@dataclass
class BuiltTask:
    """A run's prepared data, LightningModule and data module, wired together."""

    data: PreparedData
    task: Task
    datamodule: L.LightningDataModule


def build_task(config: dict[str, Any], *, seed: int = 0, start_step: int = 0) -> BuiltTask:
    """The LightningModule and data module of a resolved run configuration, as `tzoo run`
    trains them: the model from `resolve_model`, batches drawn from (seed, step) from
    `start_step` on. Seeds nothing: the caller seeds torch before building (the model's
    initial weights come from the global generator)."""
    kind = task_kind(config)
    data = prepare_data(config)
    model_config = resolve_model(config, vocab_size=data.tokenizer.vocab_size)
    task = kind.module(config, data, model_config, seed=seed,
                       task_supplies_prefix=supplies_prefix(config))
    datamodule = kind.data(config, data, seed=seed, start_step=start_step, model=task.model)
    task.attach(datamodule)
    return BuiltTask(data, task, datamodule)
