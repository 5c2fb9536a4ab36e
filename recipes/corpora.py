"""Corpora: one URI names a text corpus, `load_corpus` turns it into `datasets` splits.

Every corpus the recipes train on comes through here, whatever its origin (the Hub, local
files, the Python standard library, a seeded generator), so that the rest of the data layer
sees one shape:

* task "lm": rows ``{"text": str}``; the batcher joins a split's rows into one token stream.
* task "translation": rows ``{"source": str, "target": str}``.

Split names are "train", "validation" and "test", plus extra held-out sets kept by name
("test_long" for length generalisation, "test_2017_flickr" for Multi30k files, ...).

URI kinds: ``hf:NAME[:CONFIG]``, ``file:PATH_OR_GLOB``, ``builtin:pydoc``,
``builtin:stdlib``, ``synthetic:TASK``, ``numbers:PAIR``. Bad input raises `ConfigError`
with the key ``data.corpus`` (or ``data.options.NAME`` for an option).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import string
import sysconfig
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import datasets
import huggingface_hub
import numpy as np

from tzoo.components.errors import ConfigError, unknown_choice

TASKS = ("lm", "translation")
KINDS = ("hf", "file", "builtin", "synthetic", "numbers")
BUILTINS = ("pydoc", "stdlib")
SYNTHETIC_TASKS = ("copy", "reverse", "recall", "induction", "dyck")
NUMBER_PAIRS = ("en-de", "en-fr", "digits-en")

CORPUS_KEY = "data.corpus"
SYMBOLS = string.ascii_letters  # single characters, so the char tokenizer sees one id each
BRACKETS = ("()", "[]", "{}", "<>")

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


def load_corpus(
    uri: str, *, task: str, options: Mapping[str, Any] | None = None, seed: int = 0
) -> Corpus:
    """Load the corpus named by `uri` for `task` ("lm" or "translation")."""
    if task not in TASKS:
        raise ConfigError(unknown_choice("task", task, TASKS), key="task")
    opts = dict(options or {})
    kind, sep, rest = uri.partition(":")
    if not sep or kind not in _LOADERS:
        raise ConfigError(
            unknown_choice("corpus kind", kind if sep else uri, KINDS)
            + "; write it as KIND:NAME, e.g. 'file:data/input.txt' or 'synthetic:copy'",
            key=CORPUS_KEY,
        )
    raw = _LOADERS[kind](rest, task, opts, seed)
    splits = _finish_splits(raw, task, uri)
    return Corpus(
        uri=uri,
        task=task,
        splits=splits,
        fingerprint=corpus_fingerprint(uri, task, opts, splits),
        options=opts,
    )


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


# --------------------------------------------------------------------------- split plumbing

Rows = dict[str, list[str]]  # column -> values, the input of Dataset.from_dict


def _finish_splits(raw: dict[str, Rows], task: str, uri: str) -> datasets.DatasetDict:
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
        raw["train"], raw["validation"] = _holdout(raw["train"], 0.05)
    # With no test set, the validation set doubles as test (nanoGPT-style data has no test).
    raw.setdefault("test", raw["validation"])
    main = ("train", "validation", "test")
    order = [*main, *sorted(set(raw) - set(main))]
    return datasets.DatasetDict(
        {name: datasets.Dataset.from_dict({c: raw[name][c] for c in columns}) for name in order}
    )


def _holdout(rows: Rows, fraction: float) -> tuple[Rows, Rows]:
    """Split rows by order: the first part trains, the last `fraction` validates."""
    n = len(next(iter(rows.values())))
    if n < 2:
        raise ConfigError(
            "need at least 2 rows to hold out a validation split; give a validation file",
            key=CORPUS_KEY,
        )
    cut = min(n - 1, max(1, round(n * (1 - fraction))))
    return {k: v[:cut] for k, v in rows.items()}, {k: v[cut:] for k, v in rows.items()}


def _split_name(stem: str) -> str | None:
    """The split a file stem names ("valid" -> "validation"), or None."""
    stem = stem.lower()
    if stem in SPLIT_ALIASES:
        return SPLIT_ALIASES[stem]
    return stem if stem.startswith("test_") else None


def _option(options: Mapping[str, Any], name: str, default: Any, kind: type = int) -> Any:
    """Read one option with a type check whose error names the key."""
    value = options.get(name, default)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"expected {kind.__name__}, got {value!r}", key=f"data.options.{name}"
        ) from None


def _train_fraction(options: Mapping[str, Any]) -> float:
    """Option `train_fraction` (default 0.9) for corpora that ship without splits."""
    fraction = _option(options, "train_fraction", 0.9, float)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(
            f"train_fraction must be in (0, 1), got {fraction}", key="data.options.train_fraction"
        )
    return fraction


def _sizes(options: Mapping[str, Any], defaults: dict[str, int]) -> dict[str, int]:
    """Rows per split from option `samples`: an int (train only) or a {split: n} mapping."""
    value = options.get("samples")
    sizes = dict(defaults)
    if isinstance(value, Mapping):
        unknown = set(value) - set(defaults)
        if unknown:
            word = sorted(unknown)[0]
            raise ConfigError(unknown_choice("split", word, defaults), key="data.options.samples")
        sizes.update({k: int(v) for k, v in value.items()})
    elif value is not None:
        sizes["train"] = _option(options, "samples", None)
    for name, n in sizes.items():
        if n < 0 or (name in ("train", "validation") and n == 0):
            raise ConfigError(
                f"split '{name}' needs a positive number of samples, got {n}",
                key="data.options.samples",
            )
    return sizes


# --------------------------------------------------------------------------- hf:


def _load_hf(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """`hf:NAME[:CONFIG]` through `datasets.load_dataset` (needs the Hub or its cache)."""
    name, _, config = rest.partition(":")
    if not name:
        raise ConfigError("write a Hub dataset as 'hf:NAME' or 'hf:NAME:CONFIG'", key=CORPUS_KEY)
    reachable = _hub_reachable()
    try:
        # Offline, go straight to the local datasets cache: left to itself, the Hub client
        # retries for ~25 s before it gives up.
        with contextlib.nullcontext() if reachable else _hub_offline():
            # Looked up on the module at call time so tests can stub the network boundary.
            loaded = datasets.load_dataset(name, config or None)
    except Exception as err:
        if not _is_unreachable(err):
            raise
        why = "" if reachable else (f"{_hub_host()} cannot be reached from this machine and "
                                    "the dataset is not in the local datasets cache; ")
        raise ConfigError(
            f"could not load Hub dataset '{rest}' ({type(err).__name__}: {err}); {why}this "
            "machine may be offline. Download the data and use 'file:PATH' with local files "
            "instead",
            key=CORPUS_KEY,
        ) from err
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({"train": loaded})
    out: dict[str, Rows] = {}
    for split, ds in loaded.items():
        target = _split_name(split) or split
        out[target] = _hf_rows(ds, task, options, rest)
    return out


def _hub_host() -> str:
    return urlparse(huggingface_hub.constants.ENDPOINT).hostname or "huggingface.co"


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub (HF_ENDPOINT) opens within `timeout` seconds."""
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((_hub_host(), port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """`datasets` and `huggingface_hub` in offline mode (cache only) for the duration."""
    flags = [(module, name) for module in (datasets.config, huggingface_hub.constants)
             for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if hasattr(module, name)]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for (module, name), value in zip(flags, saved, strict=True):
            setattr(module, name, value)


def _is_unreachable(err: Exception) -> bool:
    """True for errors that mean "the Hub or the dataset cannot be reached"."""
    if isinstance(err, OSError):  # ConnectionError, FileNotFoundError, requests errors, ...
        return True
    words = ("Connection", "Offline", "NotFound", "Timeout", "HTTP", "Network")
    return any(word in cls.__name__ for cls in type(err).__mro__ for word in words)


def _hf_rows(ds: datasets.Dataset, task: str, options: Mapping[str, Any], name: str) -> Rows:
    """Pick the text (LM) or source/target (translation) columns of one Hub split."""
    columns = ds.column_names

    def need(column: str, key: str) -> None:
        if column not in columns:
            raise ConfigError(
                f"dataset '{name}' has no column '{column}'; columns: {', '.join(columns)}",
                key=f"data.options.{key}",
            )

    if task == "lm":
        column = options.get("text_column", "text")
        need(column, "text_column")
        return {"text": [str(t) for t in ds[column]]}
    if "pair_field" in options or ("translation" in columns and "source_column" not in options):
        pair_field = options.get("pair_field", "translation")
        need(pair_field, "pair_field")
        src, tgt = options.get("source_lang"), options.get("target_lang")
        if not src or not tgt:
            raise ConfigError(
                f"dataset '{name}' stores pairs in '{pair_field}'; set options source_lang and "
                "target_lang (e.g. en, de)",
                key="data.options.source_lang",
            )
        pairs = ds[pair_field]
        return {
            "source": [_clean(p[src]) for p in pairs],
            "target": [_clean(p[tgt]) for p in pairs],
        }
    src_col = options.get("source_column", "source")
    tgt_col = options.get("target_column", "target")
    need(src_col, "source_column")
    need(tgt_col, "target_column")
    return {
        "source": [_clean(t) for t in ds[src_col]],
        "target": [_clean(t) for t in ds[tgt_col]],
    }


# --------------------------------------------------------------------------- file:


def _clean(line: str) -> str:
    """Normalise one sentence: no-break spaces become spaces, trailing blanks go."""
    return str(line).replace("\u00a0", " ").rstrip()


def _resolve_files(pattern: str) -> list[Path]:
    """The files a `file:` path names: a file, every file in a directory, or a glob."""
    if not pattern:
        raise ConfigError(
            "write local data as 'file:PATH' (a file, folder or glob)", key=CORPUS_KEY
        )
    path = Path(pattern).expanduser()
    if any(ch in pattern for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(os.path.expanduser(pattern)))]
        files = [p for p in files if p.is_file()]
        if not files:
            raise ConfigError(f"no files match '{pattern}'", key=CORPUS_KEY)
        return files
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        named = [p for p in files if _split_name(p.stem) is not None]
        # A folder of train/valid/test files may also hold a README: use the split files only.
        files = named or files
        if not files:
            raise ConfigError(f"folder '{path}' has no files", key=CORPUS_KEY)
        return files
    if not path.is_file():
        raise ConfigError(f"file not found: '{path}'", key=CORPUS_KEY)
    return [path]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"file '{path}' is not UTF-8 text ({err})", key=CORPUS_KEY) from None


def _load_file(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    if task == "lm":
        return _load_lm_files(rest, options)
    return _load_parallel_files(rest, options)


def _load_lm_files(pattern: str, options: Mapping[str, Any]) -> dict[str, Rows]:
    """LM text files: split-named files become splits; anything else is split by characters.

    Each file stays one row (one document), so the batcher sees a split as one stream.
    """
    files = _resolve_files(pattern)
    named = {p: _split_name(p.stem) for p in files}
    if all(named.values()):
        out: dict[str, Rows] = {}
        for p, split in named.items():
            text = _read(p)
            if not text.strip():
                raise ConfigError(f"file '{p}' is empty", key=CORPUS_KEY)
            out.setdefault(split, {"text": []})["text"].append(text)
        if "train" not in out:
            raise ConfigError(
                f"no training file among {', '.join(p.name for p in files)}; name one "
                "train.txt (splits: train, valid/validation, test, test_*)",
                key=CORPUS_KEY,
            )
        return out
    texts = []
    for p in files:
        text = _read(p)
        texts.append(text if text.endswith("\n") or not text else text + "\n")
    text = "".join(texts)
    if not text.strip():
        names = ", ".join(f"'{p}'" for p in files)
        raise ConfigError(f"empty corpus: {names} contain no text", key=CORPUS_KEY)
    fraction = _train_fraction(options)
    # nanoGPT's Tiny Shakespeare split: the first 90% of characters train, the rest validate.
    cut = int(len(text) * fraction)
    return {"train": {"text": [text[:cut]]}, "validation": {"text": [text[cut:]]}}


def _load_parallel_files(pattern: str, options: Mapping[str, Any]) -> dict[str, Rows]:
    """Translation files: `<split>.<lang>` pairs, `.tsv` (two columns) or `.jsonl` rows."""
    if "{split}" in pattern or "{lang}" in pattern:
        return _load_lang_pairs(Path(pattern).parent, Path(pattern).name, options)
    path = Path(pattern).expanduser()
    if path.is_dir() and not any(
        p.suffix in (".tsv", ".jsonl") for p in path.iterdir() if p.is_file()
    ):
        return _load_lang_pairs(path, "{split}.{lang}", options)
    files = _resolve_files(pattern)
    per_file = {p: _read_pair_table(p, options) for p in files}
    named = {p: _split_name(p.stem) for p in files}
    if all(named.values()):
        out: dict[str, Rows] = {}
        for p, rows in per_file.items():
            split = out.setdefault(named[p], {"source": [], "target": []})
            split["source"] += rows["source"]
            split["target"] += rows["target"]
        return out
    rows = {"source": [], "target": []}
    for part in per_file.values():
        rows["source"] += part["source"]
        rows["target"] += part["target"]
    if not rows["source"]:
        raise ConfigError(f"empty corpus: no pairs in '{pattern}'", key=CORPUS_KEY)
    fraction = _train_fraction(options)
    train, validation = _holdout(rows, 1.0 - fraction)
    return {"train": train, "validation": validation}


def _load_lang_pairs(folder: Path, template: str, options: Mapping[str, Any]) -> dict[str, Rows]:
    """Find `<split>.<lang>` files for source_lang/target_lang in `folder` and pair them."""
    src, tgt = options.get("source_lang"), options.get("target_lang")
    if not folder.is_dir():
        raise ConfigError(f"folder not found: '{folder}'", key=CORPUS_KEY)
    # The template, e.g. "{split}.{lang}", becomes a regex with named groups.
    regex = re.escape(template).replace(r"\{split\}", r"(?P<split>[\w-]+?)")
    regex = regex.replace(r"\{lang\}", r"(?P<lang>[\w-]+)")
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        m = re.fullmatch(regex, p.name)
        if p.is_file() and m and "split" in m.groupdict():
            found.setdefault(m["split"], {})[m.groupdict().get("lang", "")] = p
    langs = sorted({lang for by_lang in found.values() for lang in by_lang})
    if not src or not tgt:
        raise ConfigError(
            f"parallel files in '{folder}' need options source_lang and target_lang; "
            f"languages found: {', '.join(langs) or 'none'}",
            key="data.options.source_lang",
        )
    for key, lang in (("source_lang", src), ("target_lang", tgt)):
        if lang not in langs:
            raise ConfigError(
                unknown_choice("language", lang, langs) + f" (files in '{folder}')",
                key=f"data.options.{key}",
            )
    out: dict[str, Rows] = {}
    for stem, by_lang in found.items():
        split = _split_name(stem)
        if split is None or src not in by_lang or tgt not in by_lang:
            continue
        out[split] = _read_pair(by_lang[src], by_lang[tgt])
    if "train" not in out:
        raise ConfigError(
            f"no train.{src}/train.{tgt} pair in '{folder}'; splits found: "
            f"{', '.join(sorted(found)) or 'none'}",
            key=CORPUS_KEY,
        )
    return out


def _read_pair(src_path: Path, tgt_path: Path) -> Rows:
    """Two line-aligned files; unequal line counts are an error naming both files."""
    sources = _read(src_path).splitlines()
    targets = _read(tgt_path).splitlines()
    if len(sources) != len(targets):
        raise ConfigError(
            f"parallel files differ in length: '{src_path}' has {len(sources)} lines, "
            f"'{tgt_path}' has {len(targets)}",
            key=CORPUS_KEY,
        )
    if not sources:
        raise ConfigError(f"parallel files '{src_path}' and '{tgt_path}' are empty", key=CORPUS_KEY)
    return {"source": [_clean(s) for s in sources], "target": [_clean(t) for t in targets]}


def _read_pair_table(path: Path, options: Mapping[str, Any]) -> Rows:
    """A `.tsv` (source<TAB>target per line) or `.jsonl` file of pairs."""
    rows: Rows = {"source": [], "target": []}
    lines = [line for line in _read(path).splitlines() if line.strip()]
    if not lines:
        raise ConfigError(f"file '{path}' is empty", key=CORPUS_KEY)
    if path.suffix == ".jsonl":
        src_col = options.get("source_column", "source")
        tgt_col = options.get("target_column", "target")
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                rows["source"].append(_clean(record[src_col]))
                rows["target"].append(_clean(record[tgt_col]))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ConfigError(
                    f"'{path}' line {number}: expected a JSON object with '{src_col}' and "
                    f"'{tgt_col}' ({type(err).__name__}: {err})",
                    key=CORPUS_KEY,
                ) from None
    elif path.suffix == ".tsv":
        for number, line in enumerate(lines, 1):
            cells = line.split("\t")
            if len(cells) != 2:
                raise ConfigError(
                    f"'{path}' line {number}: expected 2 tab-separated columns, got {len(cells)}",
                    key=CORPUS_KEY,
                )
            rows["source"].append(_clean(cells[0]))
            rows["target"].append(_clean(cells[1]))
    else:
        raise ConfigError(
            f"cannot read pairs from '{path}'; allowed: a folder of <split>.<lang> files "
            "(with source_lang/target_lang), .tsv, .jsonl",
            key=CORPUS_KEY,
        )
    return rows


# --------------------------------------------------------------------------- builtin:


def _load_builtin(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
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
    max_files = _option(options, "max_files", 300)
    max_chars = _option(options, "max_chars", 3_000_000)
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


# --------------------------------------------------------------------------- synthetic:


def _load_synthetic(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """Diagnostic tasks from a seeded generator: the same seed and options give the same data."""
    if rest not in SYNTHETIC_TASKS:
        raise ConfigError(unknown_choice("synthetic task", rest, SYNTHETIC_TASKS), key=CORPUS_KEY)
    if rest == "induction" and task != "lm":
        raise ConfigError(
            "synthetic:induction is an LM task; for translation use one of: copy, dyck, "
            "recall, reverse",
            key=CORPUS_KEY,
        )
    vocab = _option(options, "vocab", 16)
    if not 2 <= vocab <= len(SYMBOLS):
        raise ConfigError(
            f"vocab must be between 2 and {len(SYMBOLS)} (one letter per symbol), got {vocab}",
            key="data.options.vocab",
        )
    length = _option(options, "length", 16)
    long_length = _option(options, "long_length", 2 * length)
    if length < 2 or long_length < length:
        raise ConfigError(
            f"need length >= 2 and long_length >= length, got {length} and {long_length}",
            key="data.options.length",
        )
    # `min_length` draws each example's length from [min_length, length]: with a varying
    # period, a copy cannot be found at a fixed offset, only by content (real induction).
    min_length = _option(options, "min_length", length)
    if not 1 <= min_length <= length:
        raise ConfigError(f"need 1 <= min_length <= length, got {min_length} and {length}",
                          key="data.options.min_length")
    sizes = _sizes(
        options, {"train": 10_000, "validation": 500, "test": 500, "test_long": 500}
    )
    make = _SYNTHETIC[rest]
    out: dict[str, Rows] = {}
    for index, (split, n) in enumerate(sizes.items()):
        # One generator per split, seeded by (seed, split index): splits do not depend on
        # each other's sizes, so growing train leaves validation unchanged.
        rng = np.random.default_rng([seed, index, SYNTHETIC_TASKS.index(rest)])
        n_symbols = long_length if split == "test_long" else length
        if min_length == length:
            pairs = [make(rng, vocab, n_symbols, options) for _ in range(n)]
        else:
            shortest = length + 1 if split == "test_long" and long_length > length else min_length
            lengths = rng.integers(shortest, n_symbols + 1, size=n)
            pairs = [make(rng, vocab, int(k), options) for k in lengths]
        if task == "lm":
            joiner = "" if rest == "induction" else "="
            out[split] = {"text": [s + joiner + t for s, t in pairs]}
        else:
            out[split] = {"source": [s for s, _ in pairs], "target": [t for _, t in pairs]}
    return out


def _symbols(rng: np.random.Generator, vocab: int, n: int) -> str:
    return "".join(SYMBOLS[i] for i in rng.integers(0, vocab, size=n))


def _copy(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    s = _symbols(rng, vocab, n)
    return s, s


def _reverse(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    s = _symbols(rng, vocab, n)
    return s, s[::-1]


def _induction(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    # LM text = s + s: the second half is predictable only by copying from the first.
    s = _symbols(rng, vocab, n)
    return s, s


def _recall(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    """Associative recall: "a1b2c3" + query "b" -> "2". `length` counts characters, so
    length // 2 distinct keys (letters) with digit values."""
    n_pairs = max(1, n // 2)
    if n_pairs > vocab:
        raise ConfigError(
            f"recall with length {n} needs {n_pairs} distinct keys but vocab is {vocab}; "
            f"use length <= {2 * vocab} (long_length too) or a larger vocab",
            key="data.options.length",
        )
    keys = rng.choice(vocab, size=n_pairs, replace=False)
    values = rng.integers(0, 10, size=n_pairs)
    query = int(rng.integers(0, n_pairs))
    source = "".join(f"{SYMBOLS[k]}{v}" for k, v in zip(keys, values, strict=True))
    return source + SYMBOLS[keys[query]], str(values[query])


def _dyck(rng: np.random.Generator, vocab: int, n: int, options: Mapping[str, Any]) -> tuple:
    """A length-n prefix of a balanced string over `brackets` types; target closes it."""
    kinds = _option(options, "brackets", 2)
    if not 1 <= kinds <= len(BRACKETS):
        raise ConfigError(
            f"brackets must be between 1 and {len(BRACKETS)}, got {kinds}",
            key="data.options.brackets",
        )
    stack: list[int] = []
    prefix = []
    for i in range(n):
        last = i == n - 1
        # Close with probability 1/2 when something is open, but never empty the stack on the
        # last symbol: the target (the closing sequence) must not be empty.
        if stack and not (last and len(stack) == 1) and rng.random() < 0.5:
            prefix.append(BRACKETS[stack.pop()][1])
        else:
            k = int(rng.integers(0, kinds))
            stack.append(k)
            prefix.append(BRACKETS[k][0])
    closing = "".join(BRACKETS[k][1] for k in reversed(stack))
    return "".join(prefix), closing


_SYNTHETIC: dict[str, Callable[..., tuple[str, str]]] = {
    "copy": _copy,
    "reverse": _reverse,
    "recall": _recall,
    "induction": _induction,
    "dyck": _dyck,
}


# --------------------------------------------------------------------------- numbers:


def _load_numbers(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    """Number words via num2words; train/validation/test from disjoint values in
    [0, max_value], test_long from (max_value, long_max_value] for length generalisation."""
    from num2words import num2words

    if rest not in NUMBER_PAIRS:
        raise ConfigError(unknown_choice("number pair", rest, NUMBER_PAIRS), key=CORPUS_KEY)
    max_value = _option(options, "max_value", 9999)
    long_max = _option(options, "long_max_value", 10 * max_value + 9)
    sizes = _sizes(options, {"train": 8000, "validation": 500, "test": 500, "test_long": 500})
    short_total = sizes["train"] + sizes["validation"] + sizes["test"]
    if short_total > max_value + 1:
        raise ConfigError(
            f"train+validation+test = {short_total} numbers do not fit in [0, {max_value}]; "
            "raise max_value or lower samples",
            key="data.options.max_value",
        )
    if sizes["test_long"] > long_max - max_value:
        raise ConfigError(
            f"test_long needs {sizes['test_long']} numbers in ({max_value}, {long_max}]; "
            "raise long_max_value",
            key="data.options.long_max_value",
        )
    rng = np.random.default_rng([seed, 7])
    short = rng.permutation(max_value + 1)
    # Validation and test first, so their values do not change when train grows.
    values = {
        "validation": short[: sizes["validation"]],
        "test": short[sizes["validation"] : sizes["validation"] + sizes["test"]],
        "train": short[sizes["validation"] + sizes["test"] : short_total],
        "test_long": max_value + 1 + rng.choice(long_max - max_value, sizes["test_long"], False),
    }
    src_lang, tgt_lang = rest.split("-")

    def say(n: int, lang: str) -> str:
        return str(n) if lang == "digits" else num2words(n, lang=lang)

    out: dict[str, Rows] = {}
    for split in ("train", "validation", "test", "test_long"):
        numbers = [int(v) for v in values[split]]
        src = [say(n, src_lang) for n in numbers]
        tgt = [say(n, tgt_lang) for n in numbers]
        if task == "lm":
            out[split] = {"text": [s + " = " + t for s, t in zip(src, tgt, strict=True)]}
        else:
            out[split] = {"source": src, "target": tgt}
    return out


_LOADERS: dict[str, Callable[[str, str, dict[str, Any], int], dict[str, Rows]]] = {
    "hf": _load_hf,
    "file": _load_file,
    "builtin": _load_builtin,
    "synthetic": _load_synthetic,
    "numbers": _load_numbers,
}


def iter_pairs(corpus: Corpus, split: str) -> Iterable[tuple[str, str]]:
    """(source, target) pairs of a translation split, in order."""
    ds = corpus.splits[split]
    return zip(ds["source"], ds["target"], strict=True)
