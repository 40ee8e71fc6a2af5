"""Real databases for the outbox tests: SQLite files in a temporary directory, and one PostgreSQL
server per session (initdb and pg_ctl from the newest installed version, on a free 127.0.0.1 port,
in a temporary directory, stopped at the end).  PostgreSQL refuses to run as root, so as root the
server runs as ``nobody``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts[-3])
    if not found:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    return found[-1].parent


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The conninfo of a real PostgreSQL server (trust authentication on 127.0.0.1)."""
    pg = _pg_bin()
    base = tempfile.mkdtemp(prefix="buttress-outbox-pg-")
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
    data, port = f"{base}/data", _free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run(
        _as_owner([str(pg / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]),
        check=True,
        **quiet,  # type: ignore[arg-type]
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
    pg_ctl = str(pg / "pg_ctl")
    try:
        subprocess.run(
            _as_owner([pg_ctl, "-D", data, "-o", opts, "-w", "-l", f"{base}/log", "start"]),
            check=True,
            **quiet,  # type: ignore[arg-type]
        )
        yield f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    finally:
        subprocess.run(
            _as_owner([pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"]), check=False, **quiet
        )  # type: ignore[arg-type]
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_db(postgres: str) -> str:
    """A fresh database of this test's own on the session's server."""
    name = f"t{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return postgres.replace("dbname=postgres", f"dbname={name}")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """Each outbox test once on a SQLite file and once on a real PostgreSQL database."""
    from ._backends import Backend

    if request.param == "sqlite":
        return Backend("sqlite", str(tmp_path))
    return Backend("postgres", request.getfixturevalue("pg_db"))
