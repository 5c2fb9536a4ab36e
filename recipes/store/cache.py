"""Where datasets live, and whether the files there are the ones the catalogue pins.

Layout, shared by the download cache and any prepared folder standing in for it:

    <root>/<dataset>/<file>                 what the loaders read (e.g. multi30k/train.en)
    <root>/<dataset>/.sha256.json           checksums of files built from verified sources
                                            whose own checksum nobody publishes
    <root>/.downloads/<dataset>/<file>.part downloads under way (never under a final name)
    <root>/.locks/<dataset>.lock            one process fetches a dataset at a time

`<root>` is `TZOO_DATA_DIR` when set, else `$XDG_CACHE_HOME/tzoo/datasets` (by default
`~/.cache/tzoo/datasets`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .entry import Dataset, Output

ROOT_VARIABLE = "TZOO_DATA_DIR"
#: checksums this suite computed itself, from verified sources, for unpinned outputs
MANIFEST = ".sha256.json"
#: a file's state: "ok" (checksum matches), "missing", "corrupt" (checksum differs),
#: "unchecked" (present, but no checksum is known for it)
STATES = ("ok", "missing", "corrupt", "unchecked")


def cache_folder(variable: str, leaf: str) -> Path:
    """The folder the environment `variable` names, else `$XDG_CACHE_HOME/tzoo/<leaf>` (by
    default `~/.cache/tzoo/<leaf>`): where the suite keeps what it downloads or derives."""
    configured = os.environ.get(variable)
    if configured:
        return Path(configured).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "tzoo" / leaf


def data_root() -> Path:
    """The folder datasets are cached in (or prepared in, when TZOO_DATA_DIR says so)."""
    return cache_folder(ROOT_VARIABLE, "datasets")


def dataset_dir(entry: Dataset, root: Path | None = None) -> Path:
    return (root or data_root()) / entry.name


def downloads_dir(entry: Dataset, root: Path) -> Path:
    return root / ".downloads" / entry.name


@dataclass(frozen=True)
class FileState:
    output: Output
    path: Path
    status: str
    #: the checksum found, where it was computed
    got: str | None = None
    #: the checksum expected (the catalogue's, or the manifest's), where one is known
    expected: str | None = None
    #: the file's size, when it is not the size the catalogue gives
    wrong_size: int | None = None

    def describe(self) -> str:
        """What is wrong with the file, in words (expected and found)."""
        if self.status == "missing":
            return f"{self.path} is missing"
        if self.status == "unchecked":
            return f"{self.path}: no checksum is known for it, so it was not checked"
        if self.wrong_size is not None:
            return (f"{self.path} has {self.wrong_size:,} bytes, expected "
                    f"{self.output.size:,} (sha256 {self.expected})")
        if self.status == "corrupt":
            return f"{self.path}: sha256 expected {self.expected}, got {self.got}"
        return f"{self.path}: ok"


def sha256_of(path: Path) -> str:
    """sha256 of a file, memoised by (path, size, mtime) so each file is read once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


_DIGESTS: dict[tuple[str, int, int], str] = {}


def read_manifest(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def expected_sha256(output: Output, folder: Path) -> str | None:
    """The catalogue's checksum, else the one recorded when the file was built here."""
    return output.sha256 or read_manifest(folder).get(output.name)


def check(entry: Dataset, root: Path | None = None, *, verify: bool = True) -> list[FileState]:
    """The state of every file of `entry`; `verify=False` checks presence and size only."""
    folder = dataset_dir(entry, root)
    states = []
    for output in entry.outputs:
        path = folder / output.name
        expected = expected_sha256(output, folder)
        if not path.is_file():
            states.append(FileState(output, path, "missing", expected=expected))
            continue
        size = path.stat().st_size
        if output.size is not None and size != output.size:
            # A wrong size is a wrong file: no need to read it to know.
            states.append(FileState(output, path, "corrupt", None, expected, size))
            continue
        if not verify:
            states.append(FileState(output, path, "ok" if expected else "unchecked", None,
                                    expected))
            continue
        got = sha256_of(path)
        if expected is None:
            states.append(FileState(output, path, "unchecked", got))
        else:
            states.append(FileState(output, path, "ok" if got == expected else "corrupt", got,
                                    expected))
    return states


def summary(states: list[FileState]) -> str:
    """One word for a dataset: cached, not cached, partial, corrupt or unchecked."""
    statuses = {s.status for s in states}
    if "corrupt" in statuses:
        return "corrupt"
    if statuses == {"missing"}:
        return "no"
    if "missing" in statuses:
        return "partial"
    return "unchecked" if "unchecked" in statuses else "yes"
