"""Real PostgreSQL clusters for the DR and failover tests, on loopback, always stopped.

``initdb`` runs once per session (about 2 s); each cluster is a copy of that template, so a
primary, a standby and a restored copy cost a start each.  The programs refuse root: they run as
the ``postgres`` user, under a temporary directory that user owns.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from buttress.dr.postgres import PgTools
from buttress.ports import free_port

TOOLS = PgTools.find()
USER = "postgres"


def run(*cmd: str) -> None:
    subprocess.run(TOOLS.cmd(*cmd), check=True, capture_output=True, timeout=120)


class Cluster:
    """One server: ``data`` under ``base``, listening on 127.0.0.1:``port``."""

    def __init__(self, base: Path, name: str) -> None:
        self.base = base
        self.name = name
        self.data = base / name
        self.port = free_port()
        self.running = False

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres connect_timeout=2"

    def configure(self, **settings: object) -> None:
        with open(self.data / "postgresql.auto.conf", "a") as f:
            for k, v in settings.items():
                f.write(f"{k} = '{v}'\n")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1"
        run("pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-t", "60",
            "-l", f"{self.base}/{self.name}.log", "start")  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            subprocess.run(
                TOOLS.cmd("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"),
                capture_output=True,
                check=False,
            )
            self.running = False

    def promote(self) -> None:
        run("pg_ctl", "-D", str(self.data), "-w", "promote")


class Clusters:
    """Makes clusters from one ``initdb`` template; stops them all on exit."""

    def __init__(self, base: Path, template: Path) -> None:
        self.base = base
        self.template = template
        self.made: list[Cluster] = []

    def primary(self, name: str = "primary", **settings: object) -> Cluster:
        c = Cluster(self.base, name)
        subprocess.run(["cp", "-a", str(self.template), str(c.data)], check=True)
        c.configure(fsync="off", wal_level="replica", max_wal_senders=5, **settings)
        self.made.append(c)
        return c

    def standby_of(self, primary: Cluster, name: str = "standby") -> Cluster:
        c = Cluster(self.base, name)
        run("pg_basebackup", "-d", primary.dsn, "-D", str(c.data), "-X", "stream", "-c", "fast")
        # Settings copied from the primary: a standby that keeps synchronous_standby_names would,
        # once promoted, wait for a standby of its own on every commit (FIELD-NOTES).
        c.configure(
            synchronous_standby_names="",
            archive_mode="off",
            primary_conninfo=f"host=127.0.0.1 port={primary.port} user={USER} "
            f"application_name={name}",
        )
        (c.data / "standby.signal").touch()
        TOOLS.hand_over(c.data)
        self.made.append(c)
        return c

    def stop_all(self) -> None:
        for c in reversed(self.made):
            c.stop("immediate")


@contextmanager
def clusters() -> Iterator[Clusters]:
    base = Path(tempfile.mkdtemp(prefix="buttress-dr-pg-"))
    try:
        TOOLS.hand_over(base)
        template = base / "template"
        run("initdb", "-D", str(template), "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8")
        made = Clusters(base, template)
        try:
            yield made
        finally:
            made.stop_all()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def wait_until(predicate, timeout: float = 10.0, step: float = 0.01) -> float:  # type: ignore[no-untyped-def]
    """Poll until ``predicate()`` is true; the monotonic time it became true."""
    end = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > end:
            raise TimeoutError(f"{predicate} still false after {timeout} s")
        time.sleep(step)
