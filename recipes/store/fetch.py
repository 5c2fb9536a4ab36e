"""Getting a dataset into the cache: what is missing is downloaded, built, checked, moved in.

`ensure` is what loading a `dataset:` corpus calls: it returns the dataset's folder when every
file is there and verified, downloads what is missing, and fails in seconds, with the command
that would fetch it, when the files are missing and the network is not there. A corrupt file is
never used; `fetch` (`tzoo data fetch`) replaces it once a verified copy is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from tzoo.components.errors import ConfigError

from .build import build_output
from .cache import (
    MANIFEST,
    ROOT_VARIABLE,
    FileState,
    check,
    data_root,
    dataset_dir,
    downloads_dir,
    read_manifest,
)
from .entry import Dataset, Output, Source
from .http import DownloadError, download, megabytes, reachable

Echo = Callable[[str], None]
#: set to 1 to never touch the network (a missing dataset is then an error at once)
OFFLINE_VARIABLE = "TZOO_OFFLINE"


def ensure(entry: Dataset, root: Path | None = None, *, echo: Echo | None = None) -> Path:
    """The dataset's folder, every file verified; fetches whatever is missing first."""
    echo = echo or _stderr
    root = root or data_root()
    states = check(entry, root)
    _refuse_corrupt(entry, states, root)
    if any(s.status == "missing" for s in states):
        fetch(entry, root, echo=echo)
    else:
        _warn_unchecked(states, echo)
    return dataset_dir(entry, root)


def fetch(entry: Dataset, root: Path | None = None, *, echo: Echo | None = None) -> Path:
    """Download, build and verify every file of `entry` that is missing or corrupt."""
    echo = echo or _stderr
    root = root or data_root()
    folder = dataset_dir(entry, root)
    todo = _to_do(check(entry, root))
    if not todo:
        echo(f"{entry.name}: in {folder}, every checksum verified")
        return folder
    _refuse_offline(entry, todo, root)
    _check_writable(root)
    lock = FileLock(str(root / ".locks" / f"{entry.name}.lock"))
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        echo(f"{entry.name}: another process is fetching it; waiting")
        lock.acquire()
    try:
        todo = _to_do(check(entry, root))  # the other process may have done the work
        started = time.monotonic()
        size = sum(o.size or 0 for o in todo) or entry.size
        echo(f"{entry.name}: fetching {len(todo)} file(s), {megabytes(size)}, into {folder}")
        for output in todo:
            _fetch_output(entry, output, root, echo)
        shutil.rmtree(downloads_dir(entry, root), ignore_errors=True)
        echo(f"{entry.name}: done in {time.monotonic() - started:.1f} s, every checksum "
             "verified")
    finally:
        lock.release()
    return folder


def _to_do(states: list[FileState]) -> list[Output]:
    return [s.output for s in states if s.status in ("missing", "corrupt")]


def _fetch_output(entry: Dataset, output: Output, root: Path, echo: Echo) -> None:
    """Download the output's sources, build it beside them, check it, move it into place."""
    folder, downloads = dataset_dir(entry, root), downloads_dir(entry, root)
    if output.build == "copy":  # the download is the file: no second copy on disk
        source = output.sources[0]
        part = downloads / f"{output.name}.part"
        echo(f"  {output.name} ({megabytes(source.size)}) from {source.url}")
        download(source.url, part, sha256=source.sha256 or output.sha256, size=source.size,
                 echo=echo)
        _move_into(part, folder / output.name)
        return
    sources = [_fetch_source(source, downloads, echo) for source in output.sources]
    target = downloads / f"{output.name}.building"
    echo(f"  {output.name}: {output.build} from {', '.join(p.name for p in sources)}")
    try:
        got = build_output(output, sources, target)
    except OSError as err:
        target.unlink(missing_ok=True)
        raise DownloadError(f"cannot write {target} ({type(err).__name__}: {err}); free some "
                            "space there, or point TZOO_DATA_DIR at a folder with room") from None
    if output.sha256 is not None and got != output.sha256:
        target.unlink()
        raise DownloadError(
            f"checksum mismatch for {output.name} built from "
            f"{', '.join(s.url for s in output.sources)}: expected sha256 {output.sha256}, "
            f"got {got}. The file was removed; the sources "
            "matched their checksums, so the way it is built no longer fits them")
    if output.sha256 is None:  # every source was verified: record what they made
        _record(folder, output.name, got)
    _move_into(target, folder / output.name)


def _fetch_source(source: Source, downloads: Path, echo: Echo) -> Path:
    """A verified download of `source` in the downloads folder (kept until the dataset is done)."""
    path = downloads / source.filename
    if path.is_file():  # downloaded and verified by an earlier, interrupted fetch
        return path
    echo(f"  {source.filename} ({megabytes(source.size)}) from {source.url}")
    part = downloads / f"{source.filename}.part"
    download(source.url, part, sha256=source.sha256, size=source.size, echo=echo)
    os.replace(part, path)
    return path


def _move_into(path: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, final)  # atomic: the final name only ever holds a verified file


def _record(folder: Path, name: str, sha256: str) -> None:
    """Add a checksum to the folder's manifest (written whole, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {**read_manifest(folder), name: sha256}
    temporary = folder / f"{MANIFEST}.tmp"
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, folder / MANIFEST)


def _refuse_corrupt(entry: Dataset, states: list[FileState], root: Path) -> None:
    corrupt = [s for s in states if s.status == "corrupt"]
    if corrupt:
        raise ConfigError(
            f"dataset '{entry.name}' in {root}{_configured(root)} has a corrupt file: "
            f"{'; '.join(s.describe() for s in corrupt)}. It was not used; "
            f"`tzoo data fetch {entry.name}` downloads it again and replaces it")


def _refuse_offline(entry: Dataset, todo: list[Output], root: Path) -> None:
    """Offline and missing: say so at once, with the command that would fetch it."""
    if os.environ.get(OFFLINE_VARIABLE, "") not in ("", "0"):
        why = f"{OFFLINE_VARIABLE} is set"
    else:
        urls = {s.host: s.url for o in todo for s in o.sources}
        unreachable = [host for host, url in urls.items() if not reachable(url)]
        if not unreachable:
            return
        why = f"{', '.join(unreachable)} cannot be reached from this machine"
    missing = ", ".join(o.name for o in todo)
    raise ConfigError(
        f"dataset '{entry.name}' is not in {root}{_configured(root)} (missing: {missing}) and "
        f"cannot be downloaded: {why}. On a machine with the internet, `tzoo data fetch "
        f"{entry.name}` downloads it ({megabytes(entry.size)}); copy its folder here, or "
        f"point {ROOT_VARIABLE} at a folder that holds it")


def _check_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".locks").mkdir(exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=root, prefix=".write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"the dataset cache {root}{_configured(root)} cannot be written "
            f"({type(err).__name__}: {err.strerror or err}); point {ROOT_VARIABLE} at a folder "
            "you can write") from None


def _warn_unchecked(states: list[FileState], echo: Echo) -> None:
    for state in states:
        if state.status == "unchecked":
            echo(f"warning: {state.describe()} (no manifest: not fetched by `tzoo data "
                 "fetch`); used as it is")


def _configured(root: Path) -> str:
    return f" ({ROOT_VARIABLE})" if os.environ.get(ROOT_VARIABLE) else ""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

