"""Corpora: one URI names a text corpus, `load_corpus` turns it into `datasets` splits.

Every corpus the recipes train on comes through here, whatever its origin (the Hub, local
files, the Python standard library, a seeded generator), so that the rest of the data layer
sees one shape:

* task "lm": rows ``{"text": str}``; the batcher joins a split's rows into one token stream.
* task "translation": rows ``{"source": str, "target": str}``.

Split names are "train", "validation" and "test", plus extra held-out sets kept by name
("test_long" for length generalisation, "test_2017_flickr" for Multi30k files, ...).

URI kinds, one module each: ``dataset:NAME`` (dataset: a named corpus from the catalogue,
downloaded once and verified), ``hf:NAME[:CONFIG]`` (hub), ``file:PATH_OR_GLOB`` (files),
``builtin:pydoc`` and ``builtin:stdlib`` (builtin), ``synthetic:TASK`` (synthetic),
``numbers:PAIR`` (numbers). A new kind is a module whose loader is decorated with
`corpus_kind("scheme")`, plus its name in the import below. Bad input raises `ConfigError`
with the key ``data.corpus`` (or ``data.options.NAME`` for an option).
"""

from __future__ import annotations

# Importing a kind's module registers its loader in LOADERS.
from . import builtin, dataset, files, hub, numbers, synthetic  # noqa: F401
from .builtin import BUILTINS
from .corpus import CORPUS_KEY, TASKS, Corpus, corpus_fingerprint, iter_pairs
from .loading import KINDS, LOADERS, Loader, corpus_kind, is_generated, load_corpus
from .numbers import NUMBER_PAIRS
from .splits import SPLIT_ALIASES, Rows
from .synthetic import BRACKETS, SYMBOLS, SYNTHETIC_TASKS

__all__ = [
    "BRACKETS",
    "BUILTINS",
    "CORPUS_KEY",
    "KINDS",
    "LOADERS",
    "NUMBER_PAIRS",
    "SPLIT_ALIASES",
    "SYMBOLS",
    "SYNTHETIC_TASKS",
    "TASKS",
    "Corpus",
    "Loader",
    "Rows",
    "corpus_fingerprint",
    "corpus_kind",
    "is_generated",
    "iter_pairs",
    "load_corpus",
]
