"""Real servers for the health tests: redis-server and PostgreSQL subprocesses.

Every server listens on a free port of 127.0.0.1 and is stopped when its fixture ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from buttress.ports import free_port

from .servers import find_postgres_bin, find_redis_server, wait_port

PG_PASSWORD = "s3cret-Pa55word"


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port, without persistence."""
    port = free_port()
    proc = subprocess.Popen(
        [
            find_redis_server(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield RedisServer(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class PostgresServer:
    port: int
    password: str

    def dsn(self, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://postgres:{pw}@127.0.0.1:{self.port}/postgres"


def _as_postgres_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as 'nobody' when the tests run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "nobody", "--", *cmd]
    return cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL (the newest installed) in a temporary directory; password
    authentication over TCP."""
    pg_bin = find_postgres_bin()
    base = tempfile.mkdtemp(prefix="buttress-pg-")
    data = os.path.join(base, "data")
    pwfile = os.path.join(base, "pw")
    with open(pwfile, "w") as f:
        f.write(PG_PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "nobody")
        shutil.chown(pwfile, "nobody")
    port = free_port()
    subprocess.run(
        _as_postgres_user(
            [
                str(pg_bin / "initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = str(pg_bin / "pg_ctl")
    subprocess.run(
        _as_postgres_user(
            [pg_ctl, "-D", data, "-o", opts, "-w", "-t", "30", "-l", f"{base}/log", "start"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield PostgresServer(port, PG_PASSWORD)
    finally:
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", data, "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(base, ignore_errors=True)
