"""Token files: a language-modelling corpus tokenized once into memory-mapped arrays of ids.

The in-memory path (`load_corpus`, then `LMStream.from_split`) holds every split as Python
strings, a `datasets` table and a list of ints, and hashes every row in Python: fine for
Tiny Shakespeare, impossible for WikiText-103 (~540 MB of text, ~15 GB as a list of ints).
For an LM corpus given as split files (`train.txt`, `valid.txt`, `test.txt`, ...: a `file:`
folder or a `dataset:` entry), this module instead streams each file in pieces, trains the
tokenizer on the training files' pieces, and writes each split's ids to `<split>.bin` (uint16,
or uint32 for vocabularies over 65,536; nanoGPT's `train.bin` format), memory-mapped for each
read of a batch's windows (`MappedTokens`): a run's resident memory no longer grows with the
corpus, and every later run with the same corpus and tokenizer starts from the files.

Nothing changes but the representation: the pieces are exactly those `BPETokenizer.encode`
cuts a whole document into, so the ids, the tokenizer (trained on the same pieces in the same
order), the characters per token and the corpus fingerprint are the ones the in-memory path
computes for the same files; runs and reports cannot tell the two apart.

Layout, under `$TZOO_TOKEN_DIR` (default `~/.cache/tzoo/tokens`, beside the dataset cache):

    <key>/tokenizer.json, <key>/<split>.bin, <key>/meta.json (written last: the files are whole)
    fingerprints.json     corpus fingerprints by the files' (path, size, mtime): a second run
                          finds its token files without reading the corpus again
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from tzoo.components.errors import ConfigError

from .corpora import CORPUS_KEY
from .corpora.files import resolve_files
from .corpora.splits import split_name
from .store.cache import cache_folder
from .tokenization import (
    N_SPECIAL,
    UNK_ID,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
)

ROOT_VARIABLE = "TZOO_TOKEN_DIR"
#: `data.token_files: auto` uses token files from this many bytes of split files on
AUTO_BYTES = 64 * 1024 * 1024
FORMAT = 1
#: characters per piece: `BPETokenizer`'s own, so the pieces are the ones it would cut
PIECE = BPETokenizer._CHUNK
#: pieces encoded per batch (about 4 MB of text)
BATCH = 64
#: characters read from a file at a time
READ = 1 << 20


@dataclass(frozen=True)
class TokenCorpus:
    """What a run records of a corpus kept in token files (its text is never loaded)."""

    uri: str
    task: str
    fingerprint: str
    options: dict[str, Any]
    split_names: tuple[str, ...]


@dataclass(frozen=True)
class TokenFiles:
    corpus: TokenCorpus
    tokenizer: Tokenizer
    #: split -> (path of the .bin file, numpy dtype, number of tokens)
    splits: dict[str, tuple[Path, str, int]]
    chars_per_token: dict[str, float]

    def mapped(self, split: str) -> MappedTokens:
        """A split's ids in its token file (read window by window, never loaded whole)."""
        path, dtype, count = self.splits[split]
        return MappedTokens(path, np.dtype(dtype), count)


class MappedTokens:
    """A token file, mapped afresh for every read and unmapped after it.

    A mapping kept open would collect, in the resident set, every page a window has touched
    (whole large folios of page cache at each fault: tens of MB per batch), until it held the
    file; nanoGPT remaps its train.bin for every batch for the same reason. A mapping costs
    microseconds, and the resident set stays at what one batch touches.
    """

    def __init__(self, path: Path, dtype: np.dtype, count: int):
        self.path, self.dtype, self.count = path, dtype, count

    def __len__(self) -> int:
        return self.count

    def read(self, index: Any) -> np.ndarray:
        """The ids at `index` (a slice or an integer array), as int64."""
        with self.path.open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if hasattr(mapped, "madvise"):
                mapped.madvise(mmap.MADV_RANDOM)  # windows are short: no read-ahead
            ids = np.frombuffer(mapped, dtype=self.dtype, count=self.count)
            out = ids[index].astype(np.int64)  # a copy: nothing refers to the mapping after
            del ids
        finally:
            mapped.close()
        return out


def token_root() -> Path:
    """The folder token files are kept in (TZOO_TOKEN_DIR, else the user's cache)."""
    return cache_folder(ROOT_VARIABLE, "tokens")


def split_files(uri: str, task: str, mode: Any) -> dict[str, list[Path]] | None:
    """The files of each split, when `uri` is an LM corpus that token files can hold (split
    files with at least train and validation) and `mode` (`data.token_files`) asks for them."""
    if task != "lm" or mode is False:
        return None
    files = _corpus_files(uri)
    splits: dict[str, list[Path]] = {}
    for path in files or []:
        name = split_name(path.stem)
        if name is None:
            splits = {}
            break
        splits.setdefault(name, []).append(path)
    if "train" not in splits or "validation" not in splits:
        if mode is True:
            raise ConfigError(
                "data.token_files: true needs split files (train.txt and valid.txt, plus "
                f"test.txt or test_*.txt) from a file: folder or a dataset: name; '{uri}' has "
                "none", key="data.token_files")
        return None
    if mode == "auto" and sum(p.stat().st_size for ps in splits.values() for p in ps) < AUTO_BYTES:
        return None
    splits.setdefault("test", splits["validation"])  # as the in-memory path does
    return splits


def _corpus_files(uri: str) -> list[Path] | None:
    kind, _, rest = uri.partition(":")
    if kind == "dataset":
        from .store import ensure, lookup

        entry = lookup(rest, key=CORPUS_KEY)
        if entry.task != "lm":
            return None  # the loader says what is wrong
        try:
            folder = ensure(entry)
        except ConfigError as error:
            raise error.located(key=CORPUS_KEY) from None
        rest = str(folder / entry.corpus if entry.corpus else folder)
    elif kind != "file":
        return None
    return resolve_files(rest)


def prepare(uri: str, task: str, options: Mapping[str, Any], spec: str,
            splits: dict[str, list[Path]], echo=print) -> TokenFiles:
    """The token files of this corpus and tokenizer: found, or written now (once)."""
    root = token_root()
    fingerprint = _fingerprint(uri, task, options, splits, root)
    folder = root / hashlib.sha256(f"{fingerprint}:{spec}".encode()).hexdigest()[:24]
    corpus = TokenCorpus(uri, task, fingerprint, dict(options), tuple(sorted(splits)))
    found = _read(folder, corpus, spec)
    if found is not None:
        return found
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot write token files under {root} ({err}); point "
                          f"{ROOT_VARIABLE} at a folder you can write",
                          key="data.token_files") from None
    with FileLock(str(folder) + ".lock"):
        found = _read(folder, corpus, spec)  # another process may have written them
        if found is None:
            started = time.monotonic()
            echo(f"tokenizing {uri} into {folder} (once for every run with {spec})")
            _write(folder, corpus, spec, splits)
            echo(f"  done in {time.monotonic() - started:.0f} s")
            found = _read(folder, corpus, spec)
    assert found is not None
    return found


# ------------------------------------------------------------------------- reading the text


def file_pieces(path: Path, size: int = PIECE, read: int = READ) -> Iterator[str]:
    """A file's text (universal newlines, as `Path.read_text`) in the pieces that
    `tokenization._pieces(text, size)` cuts it into, read `read` characters at a time."""
    buffer, start, eof = "", 0, False
    try:
        with path.open(encoding="utf-8") as f:
            while True:
                while not eof and len(buffer) - start <= size:
                    chunk = f.read(read)
                    eof = not chunk
                    buffer = buffer[start:] + chunk
                    start = 0
                if len(buffer) - start <= size:  # the rest fits one piece: the last one
                    if start < len(buffer):
                        yield buffer[start:]
                    return
                newline = buffer.rfind("\n", start, start + size)
                end = newline + 1 if newline > start else start + size
                yield buffer[start:end]
                start = end
    except UnicodeDecodeError as err:
        raise ConfigError(f"file '{path}' is not UTF-8 text ({err})", key=CORPUS_KEY) from None


def _fingerprint(uri: str, task: str, options: Mapping[str, Any],
                 splits: dict[str, list[Path]], root: Path) -> str:
    """`corpus_fingerprint` of the corpus the file loader would make of these files, computed
    from the files as a stream; remembered by their (path, size, mtime) for later runs."""
    stats = [(name, [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in paths]) for name, paths in sorted(splits.items())]
    key = hashlib.sha256(json.dumps([uri, task, options, stats], sort_keys=True,
                                    default=str).encode()).hexdigest()
    index_path = root / "fingerprints.json"
    index = _load_json(index_path)
    if key in index:
        return index[key]
    h = hashlib.sha256()
    _update(h, json.dumps([uri, task, options], sort_keys=True, default=str).encode())
    for name, paths in sorted(splits.items()):
        _update(h, f"split:{name}:{len(paths)}".encode())
        _update(h, b"column:text")
        for path in paths:
            _hash_text(h, path)
    fingerprint = h.hexdigest()
    try:
        root.mkdir(parents=True, exist_ok=True)
        _write_json(index_path, {**_load_json(index_path), key: fingerprint})
    except OSError:
        pass  # only a shortcut for the next run
    return fingerprint


def _update(h: Any, data: bytes) -> None:
    # Length-prefixed, as corpora.corpus._update does.
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _hash_text(h: Any, path: Path) -> None:
    """One row (a whole file's text) into `h`, as `_update` would hash it, without holding
    the text: its UTF-8 length first, then its bytes."""
    has_cr = False
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            if b"\r" in block:
                has_cr = True
                break
    if not has_cr:  # the bytes are the text's UTF-8 (decoding errors surface when tokenizing)
        h.update(path.stat().st_size.to_bytes(8, "little"))
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return
    length = sum(len(piece.encode("utf-8")) for piece in file_pieces(path))
    h.update(length.to_bytes(8, "little"))
    for piece in file_pieces(path):
        h.update(piece.encode("utf-8"))


# ------------------------------------------------------------------------- writing, reading


def _write(folder: Path, corpus: TokenCorpus, spec: str, splits: dict[str, list[Path]]) -> None:
    def training_pieces() -> Iterator[str]:
        for path in splits["train"]:
            yield from file_pieces(path)

    tokenizer = build_tokenizer(spec, training_pieces())
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    encode = _encoder(tokenizer)
    meta: dict[str, Any] = {"format": FORMAT, "corpus": corpus.fingerprint,
                            "tokenizer": tokenizer.fingerprint, "spec": spec,
                            "dtype": np.dtype(dtype).name, "splits": {}}
    for name, paths in splits.items():
        target = folder / f"{name}.bin"
        temporary = target.with_suffix(".bin.tmp")
        tokens = characters = 0
        with temporary.open("wb") as out:
            for path in paths:
                text_seen = False
                for batch in _batches(file_pieces(path)):
                    characters += sum(len(p.encode("utf-8")) if spec == "byte" else len(p)
                                      for p in batch)
                    text_seen = text_seen or any(p.strip() for p in batch)
                    ids = encode(batch).astype(dtype, copy=False)
                    tokens += ids.size
                    out.write(ids.tobytes())
                if not text_seen:
                    raise ConfigError(f"file '{path}' is empty", key=CORPUS_KEY)
                out.write(np.array([tokenizer.eos_id], dtype=dtype).tobytes())
        os.replace(temporary, target)
        meta["splits"][name] = {"tokens": tokens + len(paths), "text_tokens": tokens,
                                "characters": characters}
    tokenizer.save(folder / "tokenizer.json")
    _write_json(folder / "meta.json", meta)


def _read(folder: Path, corpus: TokenCorpus, spec: str) -> TokenFiles | None:
    meta = _load_json(folder / "meta.json")
    if meta.get("format") != FORMAT or meta.get("corpus") != corpus.fingerprint:
        return None
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    if tokenizer.fingerprint != meta.get("tokenizer"):
        return None
    splits, ratios = {}, {}
    for name, info in meta["splits"].items():
        path = folder / f"{name}.bin"
        if not path.is_file() or path.stat().st_size != info["tokens"] * np.dtype(
                meta["dtype"]).itemsize:
            return None
        splits[name] = (path, meta["dtype"], int(info["tokens"]))
        if name != "train":
            ratios[name] = info["characters"] / info["text_tokens"] if info["text_tokens"] \
                else 1.0
    return TokenFiles(corpus, tokenizer, splits, ratios)


def _encoder(tokenizer: Tokenizer) -> Callable[[list[str]], np.ndarray]:
    """The ids of a batch of pieces, joined: `tokenizer.encode_batch`, with the character
    and byte tokenizers' per-character Python loops done as numpy table lookups (~50x faster;
    the tests hold both to the tokenizer's own ids)."""
    if isinstance(tokenizer, CharTokenizer):
        table = np.full(max(map(ord, tokenizer.chars), default=0) + 2, UNK_ID, dtype=np.int64)
        for char in tokenizer.chars:
            table[ord(char)] = tokenizer.encode(char)[0]
        limit = len(table) - 1  # every code point past the last known one is unknown

        def chars(batch: list[str]) -> np.ndarray:
            points = np.frombuffer("".join(batch).encode("utf-32-le"), dtype=np.uint32)
            return table[np.minimum(points, limit)]

        return chars
    if isinstance(tokenizer, ByteTokenizer):
        return lambda batch: np.frombuffer("".join(batch).encode("utf-8"),
                                           dtype=np.uint8).astype(np.int64) + N_SPECIAL
    return lambda batch: np.fromiter(
        (i for row in tokenizer.encode_batch(batch) for i in row), dtype=np.int64)


def _batches(pieces: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for piece in pieces:
        batch.append(piece)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)
