"""A run's data: the corpus, the tokenizer trained on its train split, and their fingerprint.

Preparing data is the slow part of starting a run (reading files, training BPE), and every run
of an experiment usually shares it, so results are memoised per process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .corpora import Corpus, load_corpus
from .tokenization import Tokenizer, tokenizer_for_corpus


@dataclass
class PreparedData:
    corpus: Corpus
    tokenizer: Tokenizer
    #: characters per token of each split, for bits per character
    chars_per_token: dict[str, float]

    @property
    def fingerprint(self) -> str:
        """Data and tokenizer together: runs compare only when this matches."""
        joined = f"{self.corpus.fingerprint}:{self.tokenizer.fingerprint}"
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


_CACHE: dict[str, PreparedData] = {}


def prepare_data(config: dict[str, Any]) -> PreparedData:
    """The corpus named by `data.corpus` for `task.name`, and its tokenizer (memoised)."""
    section, task = config["data"], config["task"]["name"]
    key = json.dumps([section["corpus"], section["options"], section["tokenizer"], task],
                     sort_keys=True, default=str)
    if key not in _CACHE:
        options = dict(section["options"])
        corpus = load_corpus(section["corpus"], task=task, options=options,
                             seed=int(options.get("seed", 0)))
        tokenizer = tokenizer_for_corpus(section["tokenizer"], corpus)
        _CACHE[key] = PreparedData(corpus, tokenizer, _chars_per_token(corpus, tokenizer))
    return _CACHE[key]


def _chars_per_token(corpus: Corpus, tokenizer: Tokenizer) -> dict[str, float]:
    ratios = {}
    for split in corpus.splits:
        if split == "train":  # only evaluation splits report bits per character
            continue
        texts = corpus.texts(split)
        characters = sum(len(t) for t in texts)
        if tokenizer.spec == "byte":  # bits per byte, not per character
            characters = sum(len(t.encode("utf-8")) for t in texts)
        tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))
        ratios[split] = characters / tokens if tokens else 1.0
    return ratios
