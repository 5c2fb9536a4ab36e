"""Turning downloaded sources into a dataset's files: copy, gunzip, or parquet rows to lines.

Each build writes to a temporary file beside the downloads, hashing what it writes, and
returns that file and its sha256; the caller checks the checksum and moves it into place.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Sequence
from pathlib import Path

from .entry import Output


def build_output(output: Output, sources: Sequence[Path], target: Path) -> str:
    """Write `output` to `target` from its downloaded `sources`; return the sha256 written."""
    if output.build == "gunzip":
        with gzip.open(sources[0], "rb") as src, _HashingWriter(target) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        return out.hexdigest
    if output.build == "parquet-lines":
        return _parquet_lines(sources, target)
    with sources[0].open("rb") as src, _HashingWriter(target) as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return out.hexdigest


def _parquet_lines(sources: Sequence[Path], target: Path) -> str:
    """The text file a Hub parquet export of a line-per-row dataset came from.

    The Hub's WikiText rows are the original file's lines, newline kept, except that
    whitespace-only lines (" \\n" in the files) became "" (the `datasets` loading script that
    made them kept a line only if `line.strip()`); they are written back as " \\n". The
    validation and test files built this way are checked against WikiText-2's published ones.
    """
    import pyarrow.parquet as pq  # only this build needs it (a `datasets` dependency)

    with _HashingWriter(target) as out:
        for source in sources:
            table = pq.ParquetFile(source)
            for batch in table.iter_batches(batch_size=65536, columns=["text"]):
                lines = [text if text else " \n" for text in batch.column(0).to_pylist()]
                out.write("".join(lines).encode("utf-8"))
    return out.hexdigest


class _HashingWriter:
    """A binary file that hashes what is written to it."""

    def __init__(self, path: Path):
        self.path = path
        self._digest = hashlib.sha256()

    def __enter__(self) -> _HashingWriter:
        self._file = self.path.open("wb")
        return self

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._file.write(data)

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()
