"""A throw-away PostgreSQL 15 cluster for the test session (initdb + pg_ctl in a temp dir).

Skips only when the server binaries are absent (CI installs postgresql-15). PostgreSQL
refuses to run as root, so under root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.live_server import free_port

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin")]


def pg_bin() -> Path | None:
    for candidate in PG_BIN_DIRS:
        if (candidate / "initdb").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresCluster:
    host: str
    port: int
    user: str
    # How to stop and start it again (chaos tests): the command prefix, pg_ctl, data dir,
    # server options and log file.
    control: tuple[list[str], Path, Path, str, Path] | None = field(default=None, repr=False)

    def stop(self) -> None:
        assert self.control is not None
        prefix, pg_ctl, data, _, _ = self.control
        subprocess.run([*prefix, str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"],
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        assert self.control is not None
        prefix, pg_ctl, data, options, log = self.control
        subprocess.run([*prefix, str(pg_ctl), "-D", str(data), "-o", options, "-w", "-t", "60",
                        "-l", str(log), "start"], check=True, capture_output=True)  # fmt: skip

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    def admin_dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/postgres"


def _runner() -> tuple[list[str], int | None]:
    if os.geteuid() != 0:
        return [], None
    try:
        uid = pwd.getpwnam("postgres").pw_uid
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL")
    return ["runuser", "-u", "postgres", "--"], uid


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    bindir = pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL 15 is not installed (CI installs postgresql-15)")
    prefix, uid = _runner()
    root = Path(tempfile.mkdtemp(prefix="loket-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if uid is not None:
        os.chown(root, uid, -1)
        os.chown(sockets, uid, -1)
    user = "loket_test"
    port = free_port()
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
         "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=on"
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-t", "60",
         "-l", str(root / "log"), "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield PostgresCluster(
            "127.0.0.1", port, user, (prefix, bindir / "pg_ctl", data, options, root / "log")
        )
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


async def create_database(cluster: PostgresCluster) -> str:
    """A fresh, empty database in the cluster; returns its SQLAlchemy URL."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(cluster.admin_dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return cluster.url(name)
