"""`dataset:NAME`: a corpus from the catalogue of named datasets (`tzoo data list`).

The files are fetched into the cache on first use (or read from a prepared folder, see
`TZOO_DATA_DIR`), every sha256 is checked, and the folder is then read exactly as `file:` reads
it, with the entry's own options (Multi30k's languages) unless the experiment sets them.
"""

from __future__ import annotations

from typing import Any

from tzoo.components.errors import ConfigError
from tzoo.recipes.store import ensure, lookup

from .corpus import CORPUS_KEY
from .files import load_files
from .loading import corpus_kind
from .splits import Rows


@corpus_kind("dataset")
def load_dataset(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    if not rest:
        raise ConfigError("write a named dataset as 'dataset:NAME'; `tzoo data list` shows "
                          "them", key=CORPUS_KEY)
    entry = lookup(rest, key=CORPUS_KEY)
    if entry.task != task:
        raise ConfigError(f"dataset '{entry.name}' is a {entry.task} corpus and this experiment's "
                          f"task is {task}", key=CORPUS_KEY)
    try:
        folder = ensure(entry)
    except ConfigError as error:
        raise error.located(key=CORPUS_KEY) from None
    path = folder / entry.corpus if entry.corpus else folder
    return load_files(str(path), task, {**entry.options, **options}, seed)
