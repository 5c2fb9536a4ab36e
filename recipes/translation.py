"""The `Translation` task: an encoder-decoder, or a decoder-only model reading
`source <sep> target` with a causal or a prefix mask (bidirectional over the source).

Validation reports the teacher-forced loss and, on a few batches, greedy-decoded BLEU, chrF and
exact match; the test splits are decoded with beam search. BLEU and chrF are sacreBLEU's own
corpus scores (BLEU: 13a tokenisation; chrF: character order 6, word order 0, beta 2), not
torchmetrics', whose `CHRFScore()` is chrF++ (word order 2) by default and, even with word order
0, averages over all six character orders where sacreBLEU uses the orders a short corpus has.
BLEU is left out where the references are too short for it (`short_references.py`): the run
records it as not applicable, with the reason.
Each run's summary carries the sacreBLEU signature of every BLEU and chrF figure
(`signatures`), so a reader can tell exactly which BLEU it is.
"""

from __future__ import annotations

from collections import defaultdict

import lightning as L
import torch
import torch.nn.functional as F
from sacrebleu.metrics import BLEU, CHRF
from torch import Tensor
from torchmetrics.aggregation import MeanMetric

from tzoo.components import EncoderDecoder, beam_search, generate
from tzoo.components.masks import PrefixMask

from .batches import EvalPairBatches, PairsDataset, TrainPairs
from .data import PreparedData
from .parallel import share_of
from .short_references import bleu_not_applicable
from .task import Task

#: the scores BLEU and chrF are, both sacreBLEU's defaults: one library, one signature each
SCORERS = {"bleu": BLEU, "chrf": CHRF}


def score_signatures() -> dict[str, str]:
    """sacreBLEU's signature of each score `corpus_scores` computes, e.g. 'bleu':
    'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0'. (sacreBLEU knows the
    number of references only after scoring: one sentence of one reference, as here.)"""
    signatures = {}
    for name, scorer in SCORERS.items():
        metric = scorer()
        metric.corpus_score(["a"], [["a"]])
        signatures[name] = str(metric.get_signature())
    return signatures


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (0–100, as sacreBLEU prints them) and exact match (0–100); no
    BLEU where `bleu_not_applicable(references)` says why it would mean nothing."""
    if not hypotheses:
        return {}
    bleu = SCORERS["bleu"]().corpus_score(hypotheses, [references]).score
    chrf = SCORERS["chrf"]().corpus_score(hypotheses, [references]).score
    exact = sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
    scores = {"bleu": float(bleu), "chrf": float(chrf),
              "exact_match": 100 * exact / len(hypotheses)}
    if bleu_not_applicable(references):
        del scores["bleu"]
    return scores


class PairsData(L.LightningDataModule):
    """Training batches and, per evaluation split, batches in a fixed order."""

    def __init__(self, config: dict, data: PreparedData, *, seed: int, start_step: int = 0,
                 model: torch.nn.Module | None = None):
        super().__init__()
        self.config, self.seed, self.start_step = config, seed, start_step
        tokenizer = data.tokenizer
        self.pad_id = tokenizer.pad_id
        max_len = int(config["data"]["max_len"])
        # Training leaves out pairs longer than data.max_len; evaluation keeps every pair
        # (cut to fit), so a test set's score is over the whole test set.
        self.pairs = {split: PairsDataset(data.corpus.splits[split], tokenizer, max_len=max_len,
                                          truncate=split != "train")
                      for split in data.corpus.splits}
        self.test_splits = [s for s in self.pairs if s == "test" or s.startswith("test_")]

    def train_dataloader(self):
        return TrainPairs(
            self.pairs["train"], batch_size=int(self.config["data"]["batch_size"]),
            pad_id=self.pad_id, seed=self.seed, start_step=self.start_step,
            total_steps=int(self.config["train"]["steps"]), share=share_of(self.trainer),
        ).loader()

    def _eval(self, split: str, *, capped: bool):
        # Every process evaluates every batch under data parallelism: corpus BLEU and chrF
        # need all hypotheses in one place, and the loss means agree across processes.
        # Capped evaluation reads batches in corpus order, so the subset is not biased towards
        # short sentences; a full pass sorts by length to waste less on padding.
        return EvalPairBatches(self.pairs[split], batch_size=int(self.config["data"]["batch_size"]),
                               pad_id=self.pad_id, sort=not capped).loader()

    def val_dataloader(self):
        return self._eval("validation", capped=True)

    def test_dataloader(self):
        capped = self.config["eval"]["test_batches"] is not None
        return [self._eval(split, capped=capped) for split in self.test_splits]


class Translation(Task):
    def __init__(self, config: dict, data: PreparedData, model_config, *, seed: int = 0,
                 task_supplies_prefix: bool = False):
        super().__init__(config, model_config, seed=seed,
                         task_supplies_prefix=task_supplies_prefix)
        self.tokenizer = data.tokenizer
        self.pad_id, self.bos_id = self.tokenizer.pad_id, self.tokenizer.bos_id
        self.eos_id, self.sep_id = self.tokenizer.eos_id, self.tokenizer.sep_id
        self.encoder_decoder = isinstance(self.model, EncoderDecoder)
        self.uses_prefix_mask = isinstance(self.model.mask, PrefixMask)
        self.smoothing = float(config["task"]["label_smoothing"])
        self.eval_config = config["eval"]
        self.test_splits: list[str] = []
        self.samples: list[dict[str, str]] = []
        #: "val/bleu" etc. -> why the split's references leave BLEU undefined
        self.undefined: dict[str, str] = {}

    def attach(self, datamodule: PairsData) -> None:
        self.test_splits = datamodule.test_splits

    def not_applicable(self, datamodule: PairsData) -> dict[str, str]:
        return dict(self.undefined)

    def summary_fields(self, datamodule: PairsData) -> dict:
        # Pairs longer than data.max_len: left out of training, cut to fit in evaluation.
        return {
            "not_applicable": self.not_applicable(datamodule),
            "samples": self.samples,
            "dropped_pairs": {split: pairs.dropped for split, pairs in datamodule.pairs.items()},
            "truncated_pairs": {split: pairs.truncated
                                for split, pairs in datamodule.pairs.items()},
            "signatures": self.signatures(),
        }

    def signatures(self) -> dict[str, str]:
        """The sacreBLEU signature of each BLEU and chrF metric this run records."""
        splits = ["val", *(self.test_splits if self.eval_config["test"] else [])]
        return {f"{split}/{name}": signature for split in splits
                for name, signature in score_signatures().items()}

    # ------------------------------------------------------------------------- teacher forcing
    def _joined(self, source: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder-only layout: `source <sep> target[1:]` per row, right-padded; returns
        (inputs, targets with -100 outside the target part, prefix lengths)."""
        rows, labels, prefixes = [], [], []
        for src, tgt in zip(source, target, strict=True):
            src, tgt = src[src != self.pad_id], tgt[tgt != self.pad_id][1:]  # drop bos
            sep = src.new_tensor([self.sep_id])
            sequence = torch.cat((src, sep, tgt))
            label = torch.cat((torch.full_like(src, -100), src.new_tensor([-100]), tgt))
            # Position i predicts token i+1, so inputs drop the last token and labels the first:
            # the separator's label is the first target token.
            rows.append(sequence[:-1])
            labels.append(label[1:])
            prefixes.append(src.numel() + 1)
        pad = torch.nn.utils.rnn.pad_sequence
        inputs = pad(rows, batch_first=True, padding_value=self.pad_id)
        labels = pad(labels, batch_first=True, padding_value=-100)
        return inputs, labels, torch.tensor(prefixes, device=source.device)

    def _logits_and_labels(self, batch: dict) -> tuple[Tensor, Tensor]:
        source, target = batch["source"], batch["target"]
        if self.encoder_decoder:
            logits = self.model(source, target[:, :-1], source_padding=source != self.pad_id)
            labels = target[:, 1:].masked_fill(target[:, 1:] == self.pad_id, -100)
            return logits, labels
        inputs, labels, prefix = self._joined(source, target)
        logits = self.model(inputs, prefix_lengths=prefix if self.uses_prefix_mask else None)
        return logits, labels

    def _loss(self, batch: dict, smoothing: float) -> tuple[Tensor, int]:
        logits, labels = self._logits_and_labels(batch)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                               label_smoothing=smoothing)
        return loss, int((labels != -100).sum())

    def batch_tokens(self, batch: dict) -> int:
        return int((batch["source"] != self.pad_id).sum() + (batch["target"] != self.pad_id).sum())

    def loss(self, batch: dict) -> tuple[Tensor, int]:
        return self._loss(batch, self.smoothing)

    # ------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def translate(self, batch: dict, *, beam_size: int = 1) -> list[str]:
        """Decoded target strings for a batch, in batch order."""
        max_new = int(self.eval_config["max_new_tokens"])
        common = {"max_new_tokens": max_new, "eos_id": self.eos_id, "pad_id": self.pad_id}
        source = batch["source"]
        if self.encoder_decoder:
            padding = source != self.pad_id
            if beam_size > 1:
                out = beam_search(self.model, source=source, source_padding=padding,
                                  bos_id=self.bos_id, beam_size=beam_size, **common)
            else:
                out = generate(self.model, source=source, source_padding=padding,
                               bos_id=self.bos_id, **common)
            return [self.tokenizer.decode(row.tolist()) for row in out]
        # Decoder-only: prompts of equal length decode together, so no row needs left padding.
        prompts = [torch.cat((s[s != self.pad_id], s.new_tensor([self.sep_id]))) for s in source]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, prompt in enumerate(prompts):
            groups[prompt.numel()].append(i)
        texts = [""] * len(prompts)
        for length, rows in groups.items():
            prompt = torch.stack([prompts[i] for i in rows])
            prefix = torch.full((len(rows),), length, device=source.device) \
                if self.uses_prefix_mask else None
            if beam_size > 1:
                out = beam_search(self.model, prompt, prefix_lengths=prefix, beam_size=beam_size,
                                  **common)
            else:
                out = generate(self.model, prompt, prefix_lengths=prefix, **common)
            for i, row in zip(rows, out, strict=True):
                texts[i] = self.tokenizer.decode(row.tolist())
        return texts

    # ------------------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self.val_mean = MeanMetric().to(self.device)
        self.hypotheses: list[str] = []
        self.references: list[str] = []
        self.sources: list[str] = []

    def evaluation_loss(self, batch: dict, batch_idx: int) -> tuple[Tensor, int]:
        return self._loss(batch, 0.0)  # no label smoothing: the loss itself

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, counted = self.evaluation_loss(batch, batch_idx)
        self.val_mean.update(loss.detach(), weight=counted)
        if batch_idx < int(self.eval_config["decode_batches"]):
            self.hypotheses += self.translate(batch)
            self.references += batch["target_text"]
            self.sources += batch["source_text"]

    def on_validation_epoch_end(self) -> None:
        loss = self.val_mean.compute()
        results = {"val/loss": loss, "val/ppl": torch.exp(loss)}
        results.update(self._scores("val", self.hypotheses, self.references))
        self.log_evaluation(results)
        self.log("val_loss", loss, prog_bar=True, logger=False)
        count = int(self.eval_config["samples"])
        self.samples = [
            {"source": s, "reference": r, "hypothesis": h}
            for s, r, h in list(zip(self.sources, self.references, self.hypotheses,
                                    strict=True))[:count]
        ]

    def on_test_epoch_start(self) -> None:
        self.test_outputs: dict[int, tuple[list[str], list[str]]] = defaultdict(
            lambda: ([], []))
        self.test_means: dict[int, MeanMetric] = {}

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        limit = self.eval_config["test_batches"]
        if limit is not None and batch_idx >= int(limit):
            return
        loss, counted = self._loss(batch, 0.0)
        mean = self.test_means.setdefault(dataloader_idx, MeanMetric().to(self.device))
        mean.update(loss.detach(), weight=counted)
        hypotheses, references = self.test_outputs[dataloader_idx]
        hypotheses += self.translate(batch, beam_size=int(self.eval_config["beam_size"]))
        references += batch["target_text"]

    def on_test_epoch_end(self) -> None:
        results = {}
        for index, (hypotheses, references) in self.test_outputs.items():
            split = self.test_splits[index] if index < len(self.test_splits) else f"test{index}"
            results[f"{split}/loss"] = self.test_means[index].compute()
            results.update(self._scores(split, hypotheses, references))
        self.log_evaluation(results, add_dataloader_idx=False)

    def _scores(self, split: str, hypotheses: list[str], references: list[str]) -> dict:
        """The split's corpus scores as `split/name`, noting why BLEU is left out if it is."""
        reason = bleu_not_applicable(references) if references else None
        if reason:
            self.undefined[f"{split}/bleu"] = reason
        return {f"{split}/{name}": value
                for name, value in corpus_scores(hypotheses, references).items()}
