"""The dataset store: named corpora, downloaded once, verified, cached.

A catalogue entry (`catalogue.py`) names a corpus's public source files at pinned URLs (a git
commit, a Hub revision), their sha256 and how they become the files the suite reads. `fetch`
downloads what is missing into the cache (`~/.cache/tzoo/datasets`, or `TZOO_DATA_DIR`),
resumably, and checks every checksum before the files are used; a folder laid out like the
cache (`<root>/<name>/<file>`) can stand in for it, which is how machines without a network run
the studies. Experiments name an entry as `dataset:NAME` (`recipes/corpora/dataset.py`);
`tzoo data` lists, fetches, verifies and locates them (`cli.py`).
"""

from __future__ import annotations

from .cache import FileState, check, data_root, dataset_dir
from .catalogue import CATALOGUE, lookup
from .entry import Dataset, Output, Source
from .fetch import ensure, fetch

__all__ = [
    "CATALOGUE",
    "Dataset",
    "FileState",
    "Output",
    "Source",
    "check",
    "data_root",
    "dataset_dir",
    "ensure",
    "fetch",
    "lookup",
]
