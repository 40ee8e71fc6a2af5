"""The PostgreSQL drill target: a scratch server copied from a real one, killed and restored.

Like the SQLite drill, it never touches the server it is given: it takes a base backup of it
into a scratch workspace and runs a server there (a Unix socket in the workspace, no TCP port),
archiving its WAL into the workspace with ``archive_timeout = 1s`` (a segment reaches the archive
at least every second, so the archive is never more than about a second behind).  Disruption:

``kill``
    the server is stopped with ``pg_ctl -m immediate`` (no shutdown checkpoint, as a crash) and
    its data directory is removed: only the backups and the WAL archive are left.

The restore copies the newest base backup (or the newest finished before a point in time),
replays the WAL archive to its end (or to the point in time) and promotes; the writer reconnects
on its own.  Everything committed before the last archived segment survives, so the RPO measures
the archive's lag, not the backup interval.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from buttress.errors import ConfigError

from . import sqlite as drsqlite
from .drill import RestoredSnapshot
from .manifest import SENTINEL_TABLE
from .postgres import PgTools, ScratchServer, pg_backup, pg_restore, psycopg_module

__all__ = ["PostgresDrillTarget"]

SERVER_SETTINGS = (
    "-c fsync=off -c archive_mode=on -c archive_timeout=1 -c synchronous_standby_names='' "
    "-c wal_level=replica"
)


class PostgresDrillTarget:
    """A drill on a scratch copy of the server at ``dsn`` inside ``workspace`` (which must exist
    and be reachable by the user that runs PostgreSQL's programs)."""

    disruptions: tuple[str, ...] = ("kill",)

    def __init__(self, dsn: str, workspace: str | Path, *, tools: PgTools) -> None:
        self.psycopg = psycopg_module()
        ws = Path(workspace)
        if not ws.is_dir():
            raise ConfigError("workspace", str(workspace), "is not a directory")
        self.tools = tools
        self.ws = ws
        self.archive = ws / "archive"
        self.backups = ws / "backups"
        self.data = ws / "data"
        for d in (self.archive, self.backups):
            d.mkdir()
        tools.hand_over(ws)
        tools.check_reachable("workspace", ws)
        tools.run("pg_basebackup", "-d", dsn, "-D", str(self.data), "-X", "stream", "-c", "fast")
        params = self.psycopg.conninfo.conninfo_to_dict(dsn)
        self.user = str(params.get("user") or "postgres")
        self.dbname = str(params.get("dbname") or self.user)
        self.server = ScratchServer(tools, self.data, ws)
        self._start()
        with self.psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {SENTINEL_TABLE} "
                "(seq bigint PRIMARY KEY, at timestamptz)"
            )
            conn.execute(f"TRUNCATE {SENTINEL_TABLE}")
        self._writer: Any = None

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.dbname, self.user) + " connect_timeout=2"

    def _start(self) -> None:
        self.server.start(
            settings=f"{SERVER_SETTINGS} -c archive_command='cp %p {self.archive}/%f'"
        )

    # --- the writer's side -----------------------------------------------------------------------

    def write(self, seq: int, at: float) -> None:
        if self._writer is None:
            raise ConfigError("writer", None, "not connected")
        self._writer.execute(
            f"INSERT INTO {SENTINEL_TABLE} VALUES (%s, to_timestamp(%s))", (seq, at)
        )

    def reconnect(self) -> bool:
        old, self._writer = self._writer, None
        if old is not None:
            old.close()
        try:
            conn = self.psycopg.connect(self.dsn, autocommit=True)
            if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                conn.close()
                return False
        except self.psycopg.Error:
            return False
        self._writer = conn
        return True

    # --- the drill's side ------------------------------------------------------------------------

    def backup(self) -> None:
        pg_backup(self.dsn, self.backups, tools=self.tools, name="drill", wal_archive=self.archive)

    def inject(self, disruption: str) -> None:
        self.server.stop()
        shutil.rmtree(self.data)

    def broken(self) -> bool:
        try:
            with self.psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except self.psycopg.Error:
            return True
        return False

    def restore(self, at: float | None) -> RestoredSnapshot:
        chosen = drsqlite.pick_backup(self.backups, "drill", at=at)
        pg_restore(chosen.path, self.data, tools=self.tools, target_time=at, replay_archive=True)
        self._start()
        deadline = time.monotonic() + 120
        while True:  # replaying the archive, then promoting
            try:
                with self.psycopg.connect(self.dsn, autocommit=True) as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        rows = conn.execute(
                            f"SELECT seq, extract(epoch FROM at)::float8 FROM {SENTINEL_TABLE}"
                        ).fetchall()
                        break
            except self.psycopg.Error:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(
                    "backup", chosen.manifest.id, "the restored server never promoted"
                )
            time.sleep(0.02)
        return RestoredSnapshot(
            backup=chosen.manifest.id,
            # Replay reaches the point in time, or at least everything before the backup began.
            snapshot_at=at if at is not None else chosen.manifest.started_at,
            sentinels={int(s): float(a) for s, a in rows},
        )

    def read_sentinels(self) -> set[int]:
        with self.psycopg.connect(self.dsn, autocommit=True) as conn:
            return {int(r[0]) for r in conn.execute(f"SELECT seq FROM {SENTINEL_TABLE}")}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.server.stop()
