"""The table of URI kinds and `load_corpus`, which dispatches a URI through it.

Each kind's module registers its loader with `@corpus_kind("scheme")`; the package imports
every such module, so this table is the one list of kinds (error messages read it too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tzoo.components.errors import ConfigError, unknown_choice

from .corpus import CORPUS_KEY, TASKS, Corpus, corpus_fingerprint
from .splits import Rows, finish_splits

#: (the URI after "KIND:", task, options, seed) -> raw rows per split name.
Loader = Callable[[str, str, dict[str, Any], int], dict[str, Rows]]

LOADERS: dict[str, Loader] = {}
#: A live view of the table's keys, so a kind registered later is listed too.
KINDS = LOADERS.keys()


def corpus_kind(kind: str) -> Callable[[Loader], Loader]:
    """Register the decorated function as the loader of URIs written `kind:...`."""

    def register(loader: Loader) -> Loader:
        if kind in LOADERS:
            raise ValueError(f"corpus kind '{kind}' is registered twice")
        LOADERS[kind] = loader
        return loader

    return register


def load_corpus(
    uri: str, *, task: str, options: Mapping[str, Any] | None = None, seed: int = 0
) -> Corpus:
    """Load the corpus named by `uri` for `task` ("lm" or "translation")."""
    if task not in TASKS:
        raise ConfigError(unknown_choice("task", task, TASKS), key="task")
    opts = dict(options or {})
    kind, sep, rest = uri.partition(":")
    if not sep or kind not in LOADERS:
        raise ConfigError(
            unknown_choice("corpus kind", kind if sep else uri, KINDS)
            + "; write it as KIND:NAME, e.g. 'file:data/input.txt' or 'synthetic:copy'",
            key=CORPUS_KEY,
        )
    raw = LOADERS[kind](rest, task, opts, seed)
    splits = finish_splits(raw, task, uri)
    return Corpus(
        uri=uri,
        task=task,
        splits=splits,
        fingerprint=corpus_fingerprint(uri, task, opts, splits),
        options=opts,
    )
