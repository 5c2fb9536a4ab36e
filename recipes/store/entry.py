"""What a catalogue entry says: each file of a dataset, where it comes from, its checksum.

A `Dataset` is a folder of `Output` files (the layout the `file:` loader reads), each built
from one or more downloaded `Source` files: copied as they are, gunzipped, or (for Hub parquet
shards) written back out as the text lines they hold. Every byte that reaches an output is
checked against a pinned sha256: the output's own, or, where nobody has published one, those
of all its sources (`Output.pinned`; a test holds the catalogue to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

#: how an output is made from its sources
BUILDS = ("copy", "gunzip", "parquet-lines")


@dataclass(frozen=True)
class Source:
    """One file to download, at a URL that can never change (a commit, a Hub revision)."""

    url: str
    #: None only where no checksum is published; the output built from it must then be pinned
    sha256: str | None
    size: int | None = None

    @property
    def filename(self) -> str:
        return PurePosixPath(urlparse(self.url).path).name

    @property
    def host(self) -> str:
        return urlparse(self.url).hostname or ""


@dataclass(frozen=True)
class Output:
    """One file of the prepared dataset, at `name` inside the dataset's folder."""

    name: str
    sources: tuple[Source, ...]
    build: str = "copy"
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.build not in BUILDS:
            raise ValueError(f"unknown build '{self.build}'; allowed: {', '.join(BUILDS)}")
        if self.build != "parquet-lines" and len(self.sources) != 1:
            raise ValueError(f"a '{self.build}' output has exactly one source")
        if self.build == "copy" and self.sha256 and self.sources[0].sha256 not in (
                None, self.sha256):
            raise ValueError(f"{self.name}: a copied file has its source's checksum")

    @property
    def pinned(self) -> bool:
        """Whether every byte of the output is checked against a published checksum."""
        return self.sha256 is not None or all(s.sha256 for s in self.sources)


@dataclass(frozen=True)
class Dataset:
    """A named corpus: its files, where they come from, and what it may be used for."""

    name: str
    title: str
    #: "lm" or "translation": the task the corpus is read for
    task: str
    outputs: tuple[Output, ...]
    license: str
    citation: str
    #: where the files come from, in words (repository and commit, Hub revision)
    origin: str
    #: how the files become the suite's splits
    splits: str
    #: what the `file:` loader reads, relative to the folder ("" = the whole folder)
    corpus: str = ""
    #: `data.options` the corpus needs unless the experiment says otherwise
    options: Mapping[str, Any] = field(default_factory=dict)
    #: bytes on disk once prepared, where the outputs' sizes are not all known
    approx_size: int | None = None
    #: anything a user should know about checking it (e.g. checksums nobody published)
    note: str = ""

    @property
    def size(self) -> int | None:
        """Bytes of the prepared files (exact where every output's size is known)."""
        sizes = [o.size for o in self.outputs]
        return sum(sizes) if all(s is not None for s in sizes) else self.approx_size  # type: ignore[arg-type]

    @property
    def download_size(self) -> int | None:
        sizes = [s.size for o in self.outputs for s in o.sources]
        return sum(sizes) if all(s is not None for s in sizes) else None  # type: ignore[arg-type]
