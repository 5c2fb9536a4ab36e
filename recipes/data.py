"""A run's data: the corpus, the tokenizer trained on its train split, and their fingerprint.

Preparing data is the slow part of starting a run (reading files, training BPE), and every run
of an experiment usually shares it, so results are memoised per process. A large LM corpus of
split files goes to token files instead (`token_files.py`, `data.token_files`), memory-mapped
and shared by every process and every later run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from . import token_files
from .batches import LMStream
from .corpora import Corpus, load_corpus
from .tokenization import Tokenizer, tokenizer_for_corpus


@dataclass
class PreparedData:
    corpus: Corpus | token_files.TokenCorpus
    tokenizer: Tokenizer
    #: characters per token of each split, for bits per character
    chars_per_token: dict[str, float]
    #: an LM corpus kept in token files (`data.token_files`): its splits are read from there
    tokens: token_files.TokenFiles | None = None

    def lm_stream(self, split: str) -> LMStream:
        """A split of an LM corpus as one stream of ids (memory-mapped from token files)."""
        if self.tokens is not None:
            return LMStream(self.tokens.mapped(split))
        return LMStream.from_split(self.corpus.splits[split], self.tokenizer)

    @property
    def fingerprint(self) -> str:
        """Data and tokenizer together: runs compare only when this matches."""
        joined = f"{self.corpus.fingerprint}:{self.tokenizer.fingerprint}"
        return hashlib.sha256(joined.encode()).hexdigest()[:16]


_CACHE: dict[str, PreparedData] = {}


def prepare_data(config: dict[str, Any]) -> PreparedData:
    """The corpus named by `data.corpus` for `task.name`, and its tokenizer (memoised)."""
    section, task = config["data"], config["task"]["name"]
    mode = section.get("token_files", "auto")
    key = json.dumps([section["corpus"], section["options"], section["tokenizer"], task, mode],
                     sort_keys=True, default=str)
    if key not in _CACHE:
        options = dict(section["options"])
        splits = token_files.split_files(section["corpus"], task, mode)
        if splits is not None:
            found = token_files.prepare(section["corpus"], task, options, section["tokenizer"],
                                        splits)
            _CACHE[key] = PreparedData(found.corpus, found.tokenizer, found.chars_per_token,
                                       found)
            return _CACHE[key]
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
