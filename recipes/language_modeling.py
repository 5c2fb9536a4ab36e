"""The `LanguageModeling` task: causal, masked (BERT) or prefix-LM objective on one stream.

Evaluation runs at several context lengths (1×, 2×, 4× the training context by default) and
records `val/loss@2x` etc.; a variant that cannot represent the longer context (a learned
position table) is recorded as not applicable, never crashed.
"""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from tzoo.components.masks import PrefixMask

from .batches import EvalWindows, LMStream, TrainWindows
from .data import PreparedData
from .parallel import share_of
from .task import Task, step_generator
from .tokenization import N_SPECIAL


def multiplier_label(multiplier: float) -> str:
    return f"{multiplier:g}x"


def earlier_occurrence(tokens: Tensor, eos_id: int) -> Tensor:
    """(batch, length) positions: where each token last occurred earlier in its own document of
    the window (documents end at `eos_id`), -1 where it did not. The token after that
    occurrence is what an induction head copies."""
    length = tokens.shape[1]
    earlier = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril(-1)
    document = (tokens == eos_id).cumsum(dim=1)
    same_document = document[:, :, None] == document[:, None, :]
    occurred = (tokens[:, :, None] == tokens[:, None, :]) & earlier & same_document
    positions = torch.arange(length, device=tokens.device).expand_as(occurred)
    return torch.where(occurred, positions, -1).amax(dim=-1)


def seen_in_document(tokens: Tensor, eos_id: int) -> Tensor:
    """(batch, length) booleans: whether each token occurred earlier in its own document of the
    window (documents end at `eos_id`)."""
    return earlier_occurrence(tokens, eos_id) >= 0


def bits_name(tokenizer: str) -> str:
    """Bits per byte for the byte tokenizer, per character for the others."""
    return "bpb" if tokenizer == "byte" else "bpc"


_STREAMS: dict[tuple[str, str], LMStream] = {}


def token_stream(data: PreparedData, split: str) -> LMStream:
    """A split as one token stream, tokenized once per process: the runs of an experiment (and
    the runs a report evaluates) share their data, and read the stream without changing it."""
    key = (data.fingerprint, split)
    if key not in _STREAMS:
        _STREAMS[key] = data.lm_stream(split)
    return _STREAMS[key]


class LMData(L.LightningDataModule):
    """Training windows, plus one validation loader per applicable context multiplier."""

    def __init__(self, config: dict, data: PreparedData, *, seed: int, start_step: int = 0,
                 model: torch.nn.Module | None = None):
        super().__init__()
        self.config, self.data, self.seed, self.start_step = config, data, seed, start_step
        section = config["data"]
        self.context, self.batch_size = int(section["context"]), int(section["batch_size"])
        self.streams = {split: token_stream(data, split)
                        for split in ("train", "validation", "test")}
        self.streams["train"].check(self.context, "train split")
        self.eval_contexts: list[tuple[str, int]] = []
        self.not_applicable: list[str] = []
        max_positions = getattr(model, "max_positions", None)
        for multiplier in config["eval"]["context_multipliers"]:
            label, length = multiplier_label(multiplier), round(self.context * multiplier)
            fits = len(self.streams["validation"]) >= length + 1
            if (max_positions is not None and length > max_positions) or not fits:
                self.not_applicable.append(label)
            else:
                self.eval_contexts.append((label, length))

    def train_dataloader(self):
        return TrainWindows(
            self.streams["train"], context=self.context, batch_size=self.batch_size,
            seed=self.seed, start_step=self.start_step,
            total_steps=int(self.config["train"]["steps"]), share=share_of(self.trainer),
        ).loader()

    def _eval(self, split: str, length: int):
        # Under data parallelism each process evaluates its share of the windows; the task's
        # weighted means (torchmetrics) add them up across processes.
        return EvalWindows(self.streams[split], context=length, batch_size=self.batch_size,
                           max_batches=int(self.config["eval"]["batches"]),
                           share=share_of(self.trainer)).loader()

    def val_dataloader(self):
        return [self._eval("validation", length) for _, length in self.eval_contexts]

    def test_dataloader(self):
        return self._eval("test", self.context)


class LanguageModeling(Task):
    """Next-token (causal), masked-token (BERT's 80/10/10 at `mask_prob`) or prefix-LM loss."""

    def __init__(self, config: dict, data: PreparedData, model_config, *, seed: int = 0,
                 task_supplies_prefix: bool = False):
        self.objective = config["task"]["objective"]
        super().__init__(config, model_config, seed=seed,
                         task_supplies_prefix=task_supplies_prefix)
        tokenizer = data.tokenizer
        self.mask_id, self.vocab_size = tokenizer.mask_id, tokenizer.vocab_size
        self.eos_id = tokenizer.eos_id
        self.mask_prob = float(config["task"]["mask_prob"])
        self.chars_per_token = data.chars_per_token
        self.eval_labels: list[str] = []
        self.eval_means = torch.nn.ModuleDict()
        # The loss split by whether the current token was seen earlier in the window: the
        # tokens an induction head can copy the continuation of, and the others.
        self.repeat_means = torch.nn.ModuleDict({
            part: MeanMetric() for part in ("repeat", "fresh")
        }) if config["eval"]["repeat_loss"] else None
        self.uses_prefix_mask = isinstance(self.model.mask, PrefixMask)

    def attach(self, datamodule: LMData) -> None:
        self.set_eval_labels([label for label, _ in datamodule.eval_contexts])

    def not_applicable(self, datamodule: LMData) -> dict[str, str]:
        return {f"val/loss@{label}": "the position variant cannot represent this length"
                for label in datamodule.not_applicable}

    def summary_fields(self, datamodule: LMData) -> dict:
        return {"not_applicable": self.not_applicable(datamodule)}

    def set_eval_labels(self, labels: list[str]) -> None:
        self.eval_labels = labels
        self.eval_means = torch.nn.ModuleDict({
            label.replace(".", "_"): MeanMetric() for label in labels
        })

    # ------------------------------------------------------------------------- objectives
    def _prepare(self, tokens: Tensor, generator: torch.Generator | None,
                 rows: tuple[int, int, int] | None = None):
        """(inputs, targets with -100 where no loss, prefix lengths or None). `rows`: which rows
        of a step's global batch `tokens` holds (data parallelism): random choices are drawn
        for the whole batch and these rows kept, the same draws one device makes."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        if self.objective == "causal":
            return inputs, targets, None
        start, stop, total = rows or (0, tokens.shape[0], tokens.shape[0])
        if self.objective == "prefix":
            batch, length = inputs.shape
            if generator is None:  # evaluation: a fixed half-length prefix
                prefix = torch.full((batch,), max(1, length // 2), dtype=torch.long)
            else:
                prefix = torch.randint(1, length, (total,), generator=generator)[start:stop]
            prefix = prefix.to(tokens.device)
            # Loss only where the next token lies beyond the prefix.
            position = torch.arange(length, device=tokens.device)[None, :]
            targets = targets.masked_fill(position < prefix[:, None] - 1, -100)
            return inputs, targets, prefix if self.uses_prefix_mask else None
        return self._mask_tokens(tokens[:, :-1], generator, (start, stop, total))

    def _mask_tokens(self, tokens: Tensor, generator: torch.Generator | None,
                     rows: tuple[int, int, int] | None = None):
        """BERT (Devlin et al. 2019, section 3.1): pick `mask_prob` of positions; of those 80%
        become [MASK], 10% a random token, 10% stay; the loss is on the picked positions."""
        device = tokens.device
        start, stop, total = rows or (0, tokens.shape[0], tokens.shape[0])
        shape = (total, *tokens.shape[1:])
        draws = torch.rand(shape, generator=generator)[start:stop].to(device)
        action = torch.rand(shape, generator=generator)[start:stop].to(device)
        random_tokens = torch.randint(N_SPECIAL, self.vocab_size, shape,
                                      generator=generator)[start:stop].to(device)
        picked = draws < self.mask_prob
        inputs = torch.where(picked & (action < 0.8), torch.full_like(tokens, self.mask_id),
                             tokens)
        inputs = torch.where(picked & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
        targets = tokens.masked_fill(~picked, -100)
        return inputs, targets, None

    def _loss(self, tokens: Tensor, generator: torch.Generator | None,
              rows: tuple[int, int, int] | None = None) -> tuple[Tensor, int]:
        inputs, targets, prefix = self._prepare(tokens, generator, rows)
        logits = self.model(inputs, prefix_lengths=prefix)
        counted = int((targets != -100).sum())
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(),
                               ignore_index=-100)
        return loss, counted

    def batch_tokens(self, batch: dict) -> int:
        return batch["tokens"][:, :-1].numel()

    def loss(self, batch: dict) -> tuple[Tensor, int]:
        generator = None if self.objective == "causal" else step_generator(
            self.seed, self.global_step, "objective")
        return self._loss(batch["tokens"], generator, batch.get("rows"))

    # ------------------------------------------------------------------------- evaluation
    def _eval_generator(self, batch_idx: int) -> torch.Generator | None:
        # Masked evaluation draws the same masks every time, so evaluations compare; the
        # prefix objective evaluates with a fixed half-length prefix (no randomness).
        if self.objective != "masked":
            return None
        return step_generator(0, batch_idx, "eval-mask")

    def evaluation_loss(self, batch: dict, batch_idx: int) -> tuple[Tensor, int]:
        return self._loss(batch["tokens"], self._eval_generator(batch_idx))

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.repeat_means is not None and dataloader_idx == 0:
            loss, counted = self._split_repeat_loss(batch["tokens"])
        else:
            loss, counted = self.evaluation_loss(batch, batch_idx)
        if counted:
            label = self.eval_labels[dataloader_idx].replace(".", "_")
            self.eval_means[label].update(loss.detach(), weight=counted)

    def repeat_split(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """(the causal loss of each token, whether its input appeared earlier in the same
        document of the window): what copying the continuation of its earlier occurrence can
        predict (the repeated half of an induction sequence), or not. Documents end at eos: a
        symbol met in the previous document predicts nothing."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        losses = F.cross_entropy(self.model(inputs).flatten(0, 1).float(), targets.flatten(),
                                 reduction="none").view_as(targets)
        return losses, seen_in_document(inputs, self.eos_id)

    def _split_repeat_loss(self, tokens: Tensor) -> tuple[Tensor, int]:
        """The causal loss, also recorded on the repeated tokens and the fresh ones."""
        losses, seen = self.repeat_split(tokens)
        for part, where in (("repeat", seen), ("fresh", ~seen)):
            if where.any():
                self.repeat_means[part].update(losses[where].mean(), weight=int(where.sum()))
        return losses.mean(), losses.numel()

    def on_validation_epoch_end(self) -> None:
        results = {}
        for label in self.eval_labels:
            metric = self.eval_means[label.replace(".", "_")]
            # compute() sums the means' parts across processes: all must call it, even one
            # whose share of the windows was empty.
            if metric.update_count or self.trainer.world_size > 1:
                results[f"val/loss@{label}"] = metric.compute()
            metric.reset()
        if not results:
            return
        if self.repeat_means is not None:
            for part, metric in self.repeat_means.items():
                if metric.update_count:
                    results[f"val/loss_{part}"] = metric.compute()
                metric.reset()
        main = results.get("val/loss@1x", next(iter(results.values())))
        results["val/loss"] = main
        results["val/ppl"] = torch.exp(main)
        results[f"val/{self._bits_name()}"] = main / math.log(2) / self.chars_per_token[
            "validation"]
        self.log_evaluation(results, prog_bar=False)
        self.log("val_loss", main, prog_bar=True, logger=False)

    def _bits_name(self) -> str:
        return bits_name(self.config["data"]["tokenizer"])

    def on_test_epoch_start(self) -> None:
        self.test_mean = MeanMetric().to(self.device)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        loss, counted = self._loss(batch["tokens"], self._eval_generator(batch_idx))
        if counted:
            self.test_mean.update(loss.detach(), weight=counted)

    def on_test_epoch_end(self) -> None:
        loss = self.test_mean.compute()
        self.log_evaluation({
            "test/loss": loss, "test/ppl": torch.exp(loss),
            f"test/{self._bits_name()}": loss / math.log(2) / self.chars_per_token["test"],
        })
