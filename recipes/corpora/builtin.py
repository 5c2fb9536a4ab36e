"""`builtin:pydoc` and `builtin:stdlib`: LM text that ships with CPython, so it needs no
download (the help() topics in English, or a sample of the standard library's sources)."""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError, unknown_choice

from .corpus import CORPUS_KEY
from .loading import corpus_kind
from .options import option
from .splits import Rows

BUILTINS = ("pydoc", "stdlib")


@corpus_kind("builtin")
def load_builtin(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    if rest not in BUILTINS:
        raise ConfigError(unknown_choice("builtin corpus", rest, BUILTINS), key=CORPUS_KEY)
    if task != "lm":
        raise ConfigError(
            f"'builtin:{rest}' is an LM corpus; task '{task}' needs one of: file:, hf:, "
            "numbers:, synthetic:",
            key=CORPUS_KEY,
        )
    docs = _pydoc_docs() if rest == "pydoc" else _stdlib_docs(options)
    return _split_by_order(docs)


def _split_by_order(docs: list[str]) -> dict[str, Rows]:
    """Every 20th document (by sorted order) validates, the next one tests: 90/5/5."""
    out: dict[str, Rows] = {"train": {"text": []}, "validation": {"text": []}, "test": {"text": []}}
    for i, doc in enumerate(docs):
        split = {18: "validation", 19: "test"}.get(i % 20, "train")
        out[split]["text"].append(doc)
    return out


def _pydoc_docs() -> list[str]:
    """English prose shipped with CPython: the help() topics, sorted by topic name."""
    from pydoc_data.topics import topics

    return [topics[name] for name in sorted(topics)]


def _stdlib_docs(options: Mapping[str, Any]) -> list[str]:
    """Python sources of the standard library, a deterministic, evenly spread sample."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "__pycache__"}
    paths = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")]
        paths += [Path(folder, n) for n in names if n.endswith(".py")]
    paths.sort(key=lambda p: p.relative_to(root).as_posix())
    max_files = option(options, "max_files", 300)
    max_chars = option(options, "max_chars", 3_000_000)
    if max_files is not None and len(paths) > max_files:
        # Evenly spaced over the sorted list, so the sample spans many packages.
        paths = [paths[i * len(paths) // max_files] for i in range(max_files)]
    docs, total = [], 0
    for p in paths:
        text = p.read_text(encoding="utf-8", errors="replace")
        if max_chars is not None and total + len(text) > max_chars:
            continue  # skip big files rather than stop, so late packages still appear
        docs.append(text)
        total += len(text)
    return docs
