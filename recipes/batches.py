"""Deterministic, step-indexed batches for the Lightning recipes.

The training batch of step `s` is a pure function of `(seed, s)`: its random numbers come
from a generator seeded with `step_seed(seed, s)`, never from state carried over from earlier
steps. A run resumed at step k (the runner passes `start_step=k`) therefore sees exactly the
batches an uninterrupted run would have seen from step k on.

Under data parallelism (`parallel.py`) the batch of step s is still drawn whole from (seed, s);
each process takes its `Share` of the rows, one micro-batch per accumulation step, and
evaluation splits its windows between the processes.

Everything is tensor indexing in the main process: use the `.loader()` methods (or any
DataLoader with num_workers=0); worker processes would only duplicate the step sequence.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from tzoo.components.errors import ConfigError
from tzoo.recipes.parallel import WHOLE, Share
from tzoo.recipes.tokenization import Tokenizer


def step_seed(seed: int, step: int, salt: str = "") -> int:
    """A 63-bit seed for step `step`, from sha256 (not `hash()`, which varies per process)."""
    digest = hashlib.sha256(f"tzoo:{salt}:{int(seed)}:{int(step)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _generator(seed: int, step: int, salt: str) -> torch.Generator:
    return torch.Generator().manual_seed(step_seed(seed, step, salt))


def _steps(start_step: int, total_steps: int | None) -> Iterable[int]:
    return itertools.count(start_step) if total_steps is None else range(start_step, total_steps)


class StepBatches(IterableDataset):
    """Training batches indexed by step: subclasses define `batch_at(step, rows)`, a pure
    function of (seed, step) (`rows`: a slice of the step's global batch, all of it by
    default); iteration yields this process's `share` of the batches of steps start_step,
    start_step+1, ..., `share.accumulate` micro-batches per step. A sliced batch says which
    rows it holds, `"rows": (start, stop, global batch size)`, so a task draws its per-row
    randomness for the whole batch and keeps its rows (the same draws as on one device).

    `len()` is the whole run's micro-batches, not the ones left: on resume Lightning restores
    the batch index within the epoch (= the step × accumulate, as a run is one epoch) and ends
    the epoch at len(loader), so the number left would end the epoch early and replay the
    batches from `start_step` in a second epoch.
    """

    def __init__(self, *, batch_size: int, seed: int, start_step: int, total_steps: int | None,
                 share: Share = WHOLE):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}", key="data.batch_size")
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.total_steps = total_steps
        self.share = share

    def batch_at(self, step: int, rows: slice | None = None) -> dict[str, Any]:
        """The batch of training step `step` (only `rows` of it, if given)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.share.check(self.batch_size)
        whole = self.share.parts == 1
        for step in _steps(self.start_step, self.total_steps):
            for micro in range(self.share.accumulate):
                if whole:
                    yield self.batch_at(step)
                    continue
                rows = self.share.rows(self.batch_size, micro)
                batch = self.batch_at(step, rows)
                batch["rows"] = (rows.start, rows.stop, self.batch_size)
                yield batch

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError(f"{type(self).__name__} without total_steps is infinite")
        return self.total_steps * self.share.accumulate

    def loader(self) -> DataLoader:
        """A DataLoader that passes the ready-made batches through unchanged."""
        return DataLoader(self, batch_size=None, num_workers=0)


# --------------------------------------------------------------------------- language modeling


class LMStream:
    """A split as one 1-D sequence of token ids, documents separated by `eos_id`: a LongTensor
    in memory, or a token file (`token_files.MappedTokens`: anything with `len()` and
    `read(index) -> int64 array`), of which only the windows a batch asks for are read."""

    def __init__(self, tokens: torch.Tensor | Any):
        if isinstance(tokens, torch.Tensor):
            self.tokens: torch.Tensor | None = tokens.long().flatten()
            self.source = None
        else:
            self.tokens = None
            self.source = tokens

    @classmethod
    def from_split(cls, split: datasets.Dataset, tokenizer: Tokenizer) -> LMStream:
        """Tokenize a split's "text" rows and join them, each followed by eos."""
        texts = list(split["text"])
        parts = []
        for ids in tokenizer.encode_batch(texts):
            parts.append(torch.tensor(ids, dtype=torch.long))
            parts.append(torch.tensor([tokenizer.eos_id], dtype=torch.long))
        tokens = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
        return cls(tokens)

    def __len__(self) -> int:
        return self.tokens.numel() if self.tokens is not None else len(self.source)

    def gather(self, index: torch.Tensor) -> torch.Tensor:
        """The ids at `index` (any shape), as int64."""
        if self.tokens is not None:
            return self.tokens[index]
        return torch.from_numpy(self.source.read(index.numpy()))

    def window(self, start: int, length: int) -> torch.Tensor:
        """`length` consecutive ids from `start`, as int64."""
        if self.tokens is not None:
            return self.tokens[start : start + length]
        return torch.from_numpy(self.source.read(slice(start, start + length)))

    def check(self, context: int, what: str = "split") -> None:
        """Fail early, with the sizes, when no window of context+1 tokens fits."""
        if context < 1:
            raise ConfigError(f"context must be >= 1, got {context}", key="data.context")
        if len(self) < context + 1:
            raise ConfigError(
                f"the {what} has {len(self)} tokens, fewer than context+1 = {context + 1}; "
                "use a shorter context or a bigger corpus",
                key="data.context",
            )


class TrainWindows(StepBatches):
    """Random training windows: yields {"tokens": (batch, context+1)} for each step.

    Step s draws its window starts from `step_seed(seed, s)` alone, so `batch_at(s)` equals
    the s-th batch of any iterator, however it was started.
    """

    def __init__(
        self,
        stream: LMStream,
        *,
        context: int,
        batch_size: int,
        seed: int = 0,
        start_step: int = 0,
        total_steps: int | None = None,
        share: Share = WHOLE,
    ):
        stream.check(context, "training split")
        super().__init__(batch_size=batch_size, seed=seed, start_step=start_step,
                         total_steps=total_steps, share=share)
        self.stream = stream
        self.context = context
        self._offsets = torch.arange(context + 1)

    def batch_at(self, step: int, rows: slice | None = None) -> dict[str, torch.Tensor]:
        """The batch of training step `step` (only `rows` of it, if given)."""
        n_starts = len(self.stream) - self.context  # last start leaves room for context+1
        g = _generator(self.seed, step, "lm")
        starts = torch.randint(0, n_starts, (self.batch_size,), generator=g)
        if rows is not None:
            starts = starts[rows]
        return {"tokens": self.stream.gather(starts[:, None] + self._offsets)}


class EvalWindows(Dataset):
    """Contiguous evaluation windows of context+1 tokens, in order.

    Window i covers tokens [i*context, (i+1)*context]: consecutive windows share one boundary
    token, so every token after the first is predicted exactly once. `context` may be a
    multiple of the training context (evaluation at 2x, 4x length). With `share`, this process
    evaluates every `share.world`-th window from its rank on: the processes together cover
    the same windows one process would (a weighted mean over them is the same loss).
    """

    def __init__(
        self,
        stream: LMStream,
        *,
        context: int,
        batch_size: int = 32,
        max_batches: int | None = None,
        share: Share = WHOLE,
    ):
        stream.check(context, "evaluation split")
        self.stream = stream
        self.context = context
        self.batch_size = batch_size
        n = (len(stream) - 1) // context
        self.n_windows = n if max_batches is None else min(n, max_batches * batch_size)
        self.windows = range(share.rank, self.n_windows, share.world)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self.windows):
            raise IndexError(i)
        start = self.windows[i] * self.context
        return {"tokens": self.stream.window(start, self.context + 1)}

    def loader(self) -> DataLoader:
        """Batches of `batch_size` windows, in order."""
        return DataLoader(self, batch_size=self.batch_size, shuffle=False, num_workers=0)


# --------------------------------------------------------------------------- translation


class PairsDataset(Dataset):
    """Tokenized translation pairs: source = ids + [eos], target = [bos] + ids + [eos].

    A pair whose source or target (with those extra tokens) is longer than `max_len` is
    dropped (`dropped` counts them), or, with `truncate=True` (evaluation splits, so a test
    set stays the whole test set), cut to fit (`truncated` counts them): the model reads and
    is scored on the cut ids, while BLEU and chrF compare its output with the full reference
    text.
    """

    def __init__(
        self, split: datasets.Dataset, tokenizer: Tokenizer, *, max_len: int | None = None,
        truncate: bool = False,
    ):
        sources, targets = list(split["source"]), list(split["target"])
        src_ids = tokenizer.encode_batch(sources)
        tgt_ids = tokenizer.encode_batch(targets)
        self.source_text: list[str] = []
        self.target_text: list[str] = []
        self.sources: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.dropped = self.truncated = 0
        eos, bos = tokenizer.eos_id, tokenizer.bos_id
        for s_text, t_text, s, t in zip(sources, targets, src_ids, tgt_ids, strict=True):
            if max_len is not None and (len(s) + 1 > max_len or len(t) + 2 > max_len):
                if not truncate:
                    self.dropped += 1
                    continue
                self.truncated += 1
                s, t = s[: max_len - 1], t[: max(0, max_len - 2)]
            self.source_text.append(s_text)
            self.target_text.append(t_text)
            self.sources.append(torch.tensor([*s, eos], dtype=torch.long))
            self.targets.append(torch.tensor([bos, *t, eos], dtype=torch.long))

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "source": self.sources[i],
            "target": self.targets[i],
            "source_text": self.source_text[i],
            "target_text": self.target_text[i],
        }


def collate_pairs(examples: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Pad a list of `PairsDataset` items into {"source": (B,S), "target": (B,T), texts}."""
    pad = torch.nn.utils.rnn.pad_sequence
    return {
        "source": pad([e["source"] for e in examples], batch_first=True, padding_value=pad_id),
        "target": pad([e["target"] for e in examples], batch_first=True, padding_value=pad_id),
        "source_text": [e["source_text"] for e in examples],
        "target_text": [e["target_text"] for e in examples],
    }


class TrainPairs(StepBatches):
    """Shuffled training batches of pairs, step-indexed like `TrainWindows`.

    Epoch e = step // steps_per_epoch is a permutation seeded by (seed, e); step s takes its
    slice. Each epoch visits every pair once (the last partial batch is dropped), and
    `batch_at(s)` depends on (seed, s) only.
    """

    def __init__(
        self,
        pairs: PairsDataset,
        *,
        batch_size: int,
        pad_id: int,
        seed: int = 0,
        start_step: int = 0,
        total_steps: int | None = None,
        share: Share = WHOLE,
    ):
        if len(pairs) == 0:
            raise ConfigError(
                f"no training pairs left ({pairs.dropped} dropped as longer than max_len)",
                key="data.max_len",
            )
        super().__init__(batch_size=batch_size, seed=seed, start_step=start_step,
                         total_steps=total_steps, share=share)
        self.pairs = pairs
        self.batch_size = min(batch_size, len(pairs))
        self.pad_id = pad_id
        self.steps_per_epoch = len(pairs) // self.batch_size
        self._perm: tuple[int, torch.Tensor] | None = None  # cache: (epoch, permutation)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = _generator(self.seed, epoch, "pairs-epoch")
            self._perm = (epoch, torch.randperm(len(self.pairs), generator=g))
        return self._perm[1]

    def batch_at(self, step: int, rows: slice | None = None) -> dict[str, Any]:
        """The collated batch of training step `step` (only `rows` of it, if given: padded to
        the longest of those rows)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        start = within * self.batch_size
        idx = self._permutation(epoch)[start : start + self.batch_size]
        if rows is not None:
            idx = idx[rows]
        return collate_pairs([self.pairs[int(i)] for i in idx], self.pad_id)


class EvalPairBatches(Dataset):
    """Evaluation batches of pairs, deterministic, grouped by source length.

    Sorting by length keeps padding small; each batch carries "index" (positions in the
    `PairsDataset`) so predictions can be put back in corpus order before scoring.
    """

    def __init__(self, pairs: PairsDataset, *, batch_size: int, pad_id: int, sort: bool = True):
        order = list(range(len(pairs)))
        if sort:
            order.sort(key=lambda i: (pairs.sources[i].numel(), i))
        self.pairs = pairs
        self.pad_id = pad_id
        self.batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict[str, Any]:
        idx = self.batches[b]
        batch = collate_pairs([self.pairs[i] for i in idx], self.pad_id)
        batch["index"] = torch.tensor(idx, dtype=torch.long)
        return batch

    def loader(self) -> DataLoader:
        return DataLoader(self, batch_size=None, shuffle=False, num_workers=0)
