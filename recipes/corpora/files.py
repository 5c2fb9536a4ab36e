"""`file:PATH_OR_GLOB`: local text files (LM) or parallel files (translation).

LM: split-named files (train.txt, valid.txt, test.txt, test_*.txt) become splits; any other
files are joined and cut by characters (option `train_fraction`). Translation: a folder of
`<split>.<lang>` files (options source_lang/target_lang), or `.tsv` / `.jsonl` pair files.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tzoo.components.errors import ConfigError, unknown_choice

from .corpus import CORPUS_KEY
from .loading import corpus_kind
from .options import train_fraction
from .splits import Rows, clean_line, holdout, split_name


@corpus_kind("file")
def load_files(rest: str, task: str, options: dict[str, Any], seed: int) -> dict[str, Rows]:
    if task == "lm":
        return _load_lm_files(rest, options)
    return _load_parallel_files(rest, options)


def resolve_files(pattern: str) -> list[Path]:
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
        named = [p for p in files if split_name(p.stem) is not None]
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


def _load_lm_files(pattern: str, options: Mapping[str, Any]) -> dict[str, Rows]:
    """LM text files: split-named files become splits; anything else is split by characters.

    Each file stays one row (one document), so the batcher sees a split as one stream.
    """
    files = resolve_files(pattern)
    named = {p: split_name(p.stem) for p in files}
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
    fraction = train_fraction(options)
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
    files = resolve_files(pattern)
    per_file = {p: _read_pair_table(p, options) for p in files}
    named = {p: split_name(p.stem) for p in files}
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
    fraction = train_fraction(options)
    train, validation = holdout(rows, 1.0 - fraction)
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
        split = split_name(stem)
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
    return {"source": [clean_line(s) for s in sources], "target": [clean_line(t) for t in targets]}


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
                rows["source"].append(clean_line(record[src_col]))
                rows["target"].append(clean_line(record[tgt_col]))
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
            rows["source"].append(clean_line(cells[0]))
            rows["target"].append(clean_line(cells[1]))
    else:
        raise ConfigError(
            f"cannot read pairs from '{path}'; allowed: a folder of <split>.<lang> files "
            "(with source_lang/target_lang), .tsv, .jsonl",
            key=CORPUS_KEY,
        )
    return rows
