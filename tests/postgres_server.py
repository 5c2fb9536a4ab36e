"""A real PostgreSQL server for tests: initdb in a temporary folder, listening on a unix socket
there only (no port to collide on), trust authentication, stopped at the end.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` user (Debian's
package creates it) or `nobody`. Where no server binaries are found, or one cannot start,
`start_server` returns None and the tests that need it skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class Server:
    folder: Path
    pg_ctl: str
    prefix: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://tzoo@/{database}?host={self.folder}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"dbname=postgres user=tzoo host={self.folder}",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run([*self.prefix, self.pg_ctl, "-D", str(self.folder / "data"), "-m",
                        "immediate", "stop"], capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_server() -> tuple[Server | None, str]:
    """(the running server, "") or (None, why not)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        return None, "no PostgreSQL server binaries (Debian: apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "no psycopg (pip install 'psycopg[binary]')"
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="tzoo-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _exists(u)), None)
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            return None, "running as root with no user for the server to run as"
        prefix = [runuser, "-u", user, "--"]
        shutil.chown(folder, user=user)
    data, log = folder / "data", folder / "server.log"
    steps = [
        [*prefix, initdb, "-D", str(data), "-U", "tzoo", "--auth=trust", "-E", "UTF8"],
        [*prefix, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
         f"-c listen_addresses='' -k {folder} -c fsync=off -c max_connections=50", "start"],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=120, cwd=folder)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            shutil.rmtree(folder, ignore_errors=True)
            return None, f"the server did not start: {why[0]}"
    return Server(folder, pg_ctl, prefix), ""


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
