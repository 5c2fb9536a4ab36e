"""One file over HTTP(S): resumed where a dropped connection left it, then checked.

The bytes go to a `.part` file that is never the final name. A dropped connection or a server
error is retried (with a growing pause) from where the partial file ends, with an HTTP Range
request; a server that ignores Range answers with the whole file, which then restarts the
partial one. A partial file left by a killed process resumes the same way on the next call.
When the transfer is complete its size and sha256 are checked; a mismatch removes the file.
"""

from __future__ import annotations

import errno
import hashlib
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from tzoo.components.errors import ConfigError

#: statuses worth asking again for (the server is busy or failed, not the request)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: a full disk (or quota, or the size limit of the process)
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
CHUNK = 1 << 16
USER_AGENT = "tzoo-data/0.1 (transformer-zoo dataset fetch)"


class DownloadError(ConfigError):
    """A download that cannot complete: the message says what, where, and what to do."""


class _Dropped(Exception):
    """The transfer stopped in a way that another attempt may get past."""


def megabytes(n: int | None) -> str:
    return "unknown size" if n is None else f"{n / 1e6:,.1f} MB"


def download(url: str, part: Path, *, sha256: str | None, size: int | None = None,
             retries: int = 5, pause: float = 1.0, timeout: tuple[float, float] = (10, 60),
             echo: Callable[[str], None] | None = None) -> str:
    """Download `url` into `part` (resuming what is there), check it, and return its sha256.

    On a size or checksum mismatch the file is removed and a DownloadError says which file,
    the checksum expected and the one found.
    """
    echo = echo or _stderr
    part.parent.mkdir(parents=True, exist_ok=True)
    with requests.Session() as session:
        # identity: the bytes as stored, so Content-Length and Range count what is written
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        for attempt in range(1, retries + 1):
            try:
                _transfer(session, url, part, timeout, size)
                break
            except _Dropped as why:
                have = part.stat().st_size if part.exists() else 0
                if attempt == retries:
                    raise DownloadError(
                        f"downloading {url} failed {retries} times (last: {why}); "
                        f"{megabytes(have)} are kept in {part}, and running the command again "
                        "resumes from there") from None
                wait = pause * 2 ** (attempt - 1)
                echo(f"  {part.name}: {why}; trying again in {wait:g} s from "
                     f"{megabytes(have)} (attempt {attempt + 1} of {retries})")
                time.sleep(wait)
    return check_download(part, url, sha256=sha256, size=size)


def check_download(path: Path, url: str, *, sha256: str | None, size: int | None) -> str:
    """sha256 of a finished download; a wrong size or checksum removes it and says so."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    got = digest.hexdigest()
    actual = path.stat().st_size
    if (sha256 is not None and got != sha256) or (size is not None and actual != size):
        path.unlink(missing_ok=True)
        expected = f"sha256 {sha256}" if sha256 else "(no checksum)"
        sizes = f" ({size:,} bytes expected, {actual:,} received)" if size not in (None,
                                                                                    actual) else ""
        raise DownloadError(
            f"checksum mismatch for {path.name} downloaded from {url}: expected {expected}, "
            f"got sha256 {got}{sizes}. The file was removed; run the command again to download "
            "it afresh (if it fails the same way, the source has changed)")
    return got


def _transfer(session: requests.Session, url: str, part: Path,
              timeout: tuple[float, float], size: int | None) -> None:
    """One attempt: append to `part` from where it ends (or restart it), to the end."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:  # longer than the file can be: not a prefix of it
        part.unlink()
        offset = 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        response = session.get(url, headers=headers, stream=True, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as err:
        raise _Dropped(f"no connection ({_short(err)})") from None
    with response:
        status = response.status_code
        if status == 416 and offset:  # the partial file is not a prefix the server knows
            part.unlink()
            raise _Dropped("the server cannot resume this partial file; starting again")
        if status in RETRY_STATUSES or status >= 500:
            raise _Dropped(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise DownloadError(f"HTTP {status} {response.reason} for {url}: the pinned source "
                                "cannot be downloaded (nothing was written)")
        start = _resumed_at(response) if status == 206 else 0
        if start != offset:  # a whole file (Range ignored) or an unexpected range
            part.unlink(missing_ok=True)
            if start:
                raise _Dropped(f"the server resumed at byte {start}, not {offset}")
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else size
        _check_room(part, (total or 0) - offset)
        received = offset
        try:
            with part.open("ab" if offset else "wb") as f, _bar(part.name, total, offset) as bar:
                for chunk in response.iter_content(CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except requests.RequestException as err:
            raise _Dropped(f"connection dropped after {megabytes(received)} "
                           f"({_short(err)})") from None
        except OSError as err:
            if err.errno in NO_ROOM:
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"no room to write {part} ({err.strerror}) after {megabytes(received)} of "
                    f"{megabytes(total)}; the partial file was removed. Free some space there, "
                    "or point TZOO_DATA_DIR at a folder with room") from None
            raise DownloadError(f"cannot write {part} ({type(err).__name__}: {err}); "
                                "point TZOO_DATA_DIR at a folder you can write") from None
    if total is not None and received < total:
        raise _Dropped(f"connection closed after {megabytes(received)} of {megabytes(total)}")


def _resumed_at(response: requests.Response) -> int:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else -1


def _check_room(part: Path, needed: int) -> None:
    """Refuse at once a download the disk cannot hold (the write would fail later anyway)."""
    free = shutil.disk_usage(part.parent).free
    if needed > free:
        name = part.name.removesuffix(".part")
        raise DownloadError(f"no room for {name}: it needs {megabytes(needed)} and "
                            f"{part.parent} has {megabytes(free)} free; free some space there, "
                            "or point TZOO_DATA_DIR at a folder with room")


def _bar(label: str, total: int | None, initial: int) -> tqdm:
    # A bar on a terminal; in a log file, the fetch's own start and end lines suffice.
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"  {label}", leave=False, file=sys.stderr, mininterval=0.5,
                disable=not sys.stderr.isatty())


def _short(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text[:160]}" if text else type(err).__name__


def reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens within `timeout` seconds."""
    parsed = urlparse(url)
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((parsed.hostname or "", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
