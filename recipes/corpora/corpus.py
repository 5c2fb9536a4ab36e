"""The loaded corpus: its URI, task, `datasets` splits and a content fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import datasets

TASKS = ("lm", "translation")

#: The config key that every error about the URI itself names.
CORPUS_KEY = "data.corpus"


@dataclass(frozen=True)
class Corpus:
    """A loaded corpus: its URI, task, `datasets` splits and a content fingerprint."""

    uri: str
    task: str
    splits: datasets.DatasetDict
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)

    def texts(self, split: str) -> list[str]:
        """All strings of a split (LM text, or source then target for translation)."""
        ds = self.splits[split]
        if self.task == "lm":
            return list(ds["text"])
        return list(ds["source"]) + list(ds["target"])


def iter_pairs(corpus: Corpus, split: str) -> Iterable[tuple[str, str]]:
    """(source, target) pairs of a translation split, in order."""
    ds = corpus.splits[split]
    return zip(ds["source"], ds["target"], strict=True)


def corpus_fingerprint(
    uri: str, task: str, options: Mapping[str, Any], splits: datasets.DatasetDict
) -> str:
    """sha256 over the URI, task, options and every split's content.

    Built from bytes only (no `hash()`, no `datasets` cache fingerprints), so it is the same in
    every process and on every machine that sees the same data.
    """
    h = hashlib.sha256()
    header = json.dumps([uri, task, options], sort_keys=True, default=str)
    _update(h, header)
    for name in sorted(splits):
        ds = splits[name]
        _update(h, f"split:{name}:{ds.num_rows}")
        for column in sorted(ds.column_names):
            _update(h, f"column:{column}")
            for value in ds[column]:
                _update(h, value)
    return h.hexdigest()


def _update(h: Any, text: str) -> None:
    # Length-prefixed so that ["ab", "c"] and ["a", "bc"] hash differently.
    data = str(text).encode("utf-8")
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)
