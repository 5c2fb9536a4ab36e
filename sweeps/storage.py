"""Where the studies live: Optuna's own storages, chosen by the sweep's `storage:` value.

* unset: a journal file, runs/<sweep>/study.journal (JournalStorage + JournalFileBackend:
  append-only with a file lock, so several processes, even on several machines sharing the
  folder, can work on one study);
* a path: a journal file there (relative to the current directory, like `runs_dir`);
* a URL: an Optuna database (`sqlite:///sweep.db` for one machine, or any SQLAlchemy URL:
  `postgresql://user:password@host/db` for several machines, with the `postgresql` extra's
  driver). A server that does not answer is given `CONNECT_TIMEOUT_S` to, not forever.

The admission lock serialises "count the trials, then ask for one" across the processes of a
sweep, so N workers never start more trials than asked for. It is a lock file beside the
storage (Optuna's NFS-safe open-lock), or on PostgreSQL, which has no shared folder, an
advisory lock of the server's (released by the server if its holder dies); on another remote
database the count is only approximate (at most one extra trial per worker).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

# Optuna is imported where a storage is opened, not here: naming a storage (and reading a
# sweep's study.json snapshot, see results.py) needs none of it, and it is slow to import.

JOURNAL = "study.journal"
#: seconds a database server has to accept the connection before the sweep gives up
CONNECT_TIMEOUT_S = 10
#: seconds after which a lock file left by a killed process is broken
LOCK_GRACE_S = 30


@dataclass(frozen=True)
class StorageSpec:
    """A resolved `storage:` value: a journal file or a database URL."""

    journal: Path | None = None
    url: str | None = None

    @property
    def label(self) -> str:
        """For messages and study.json: a database password is never shown."""
        if self.journal is not None:
            return str(self.journal)
        return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", self.url or "")

    @property
    def lock_path(self) -> Path | None:
        if self.journal is not None:
            return self.journal
        if self.url and self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            return Path(self.url.removeprefix("sqlite:///"))
        return None

    def open(self) -> optuna.storages.BaseStorage:
        import optuna
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        if self.journal is not None:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(self.journal)))
        assert self.url is not None
        kwargs = {}
        if self.url.startswith("sqlite"):
            if self.lock_path is not None:
                self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            # SQLite locks the whole file per write; wait for the other workers' writes.
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        elif self.url.startswith(("postgresql", "mysql")):
            # libpq and the MySQL drivers wait for an unreachable host as long as the OS
            # does (minutes); a wrong URL should be a clear error in seconds.
            kwargs["engine_kwargs"] = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
                                       "pool_pre_ping": True}
        return optuna.storages.RDBStorage(_with_driver(self.url), **kwargs)


def _with_driver(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy's default for it changed (psycopg2
    before 2.1, psycopg 3 since); name the one the `postgresql` extra installs."""
    if url.startswith("postgresql://"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def resolve_storage(value: str | None, runs_dir: Path) -> StorageSpec:
    if value is None:
        return StorageSpec(journal=runs_dir / JOURNAL)
    if "://" in value:
        return StorageSpec(url=value)
    return StorageSpec(journal=Path(value))


#: the advisory lock's key on PostgreSQL (any 64-bit number the suite alone uses)
ADVISORY_KEY = 0x747A6F6F  # "tzoo"
_ENGINES: dict[str, object] = {}


@contextlib.contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    import sqlalchemy

    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = sqlalchemy.create_engine(
            _with_driver(url), poolclass=sqlalchemy.pool.NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"),
                           {"key": ADVISORY_KEY})
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"),
                               {"key": ADVISORY_KEY})
            connection.commit()


@contextlib.contextmanager
def admission_lock(spec: StorageSpec) -> Iterator[None]:
    """Hold the sweep's lock (none for a remote database other than PostgreSQL)."""
    from optuna.storages.journal import JournalFileOpenLock

    if spec.url is not None and spec.url.startswith("postgresql"):
        with _advisory_lock(spec.url):
            yield
        return
    path = spec.lock_path
    if path is None:
        yield
        return
    lock = JournalFileOpenLock(f"{path}.admit", grace_period=LOCK_GRACE_S)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
