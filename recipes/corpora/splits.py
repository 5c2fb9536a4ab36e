"""Split rules: what a loader returns (`Rows` per split name) and how it becomes a corpus.

Split names are "train", "validation" and "test", plus extra held-out sets kept by name
("test_long" for length generalisation, "test_2017_flickr" for Multi30k files, ...).
"""

from __future__ import annotations

import datasets

from tzoo.components.errors import ConfigError

from .corpus import CORPUS_KEY

Rows = dict[str, list[str]]  # column -> values, the input of Dataset.from_dict

# File stems (and Hub split names) that name a split, and the split they mean.
SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "validation",
    "val": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "test_2016": "test",
    "test_2016_flickr": "test",
}


def split_name(stem: str) -> str | None:
    """The split a file stem names ("valid" -> "validation"), or None."""
    stem = stem.lower()
    if stem in SPLIT_ALIASES:
        return SPLIT_ALIASES[stem]
    return stem if stem.startswith("test_") else None


def clean_line(line: str) -> str:
    """Normalise one sentence: no-break spaces become spaces, trailing blanks go."""
    return str(line).replace("\u00a0", " ").rstrip()


def finish_splits(raw: dict[str, Rows], task: str, uri: str) -> datasets.DatasetDict:
    """Check the raw splits, fill in validation/test, and wrap them as a DatasetDict."""
    columns = ("text",) if task == "lm" else ("source", "target")
    raw = {name: rows for name, rows in raw.items() if rows and rows[columns[0]]}
    if "train" not in raw:
        raise ConfigError(
            f"corpus '{uri}' has no training data (empty corpus or no 'train' split; "
            f"splits found: {', '.join(sorted(raw)) or 'none'})",
            key=CORPUS_KEY,
        )
    if "validation" not in raw:
        raw["train"], raw["validation"] = holdout(raw["train"], 0.05)
    # With no test set, the validation set doubles as test (nanoGPT-style data has no test).
    raw.setdefault("test", raw["validation"])
    main = ("train", "validation", "test")
    order = [*main, *sorted(set(raw) - set(main))]
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_dict({c: raw[name][c] for c in columns}) for name in order}
    )


def holdout(rows: Rows, fraction: float) -> tuple[Rows, Rows]:
    """Split rows by order: the first part trains, the last `fraction` validates."""
    n = len(next(iter(rows.values())))
    if n < 2:
        raise ConfigError(
            "need at least 2 rows to hold out a validation split; give a validation file",
            key=CORPUS_KEY,
        )
    cut = min(n - 1, max(1, round(n * (1 - fraction))))
    return {k: v[:cut] for k, v in rows.items()}, {k: v[cut:] for k, v in rows.items()}
