"""The SQLite drill target: a scratch copy of a database, broken and restored for real.

The drill never touches the database it is given: it copies it (online backup) into a scratch
workspace and breaks the copy.  Disruptions:

``delete``
    the database file and its ``-wal`` / ``-shm`` are unlinked, as a mistaken ``rm`` or a volume
    that went away would.  The writer's guard (:class:`~buttress.dr.guard.FileGuard`, checked
    around every write) refuses writes into the unlinked file, so none is acknowledged and lost.
``corrupt``
    the WAL is checkpointed into the file (otherwise the WAL would undo the damage) and the first
    page, the header and schema, is overwritten with garbage, so every new connection fails.

Detection opens a fresh connection and reads the schema, as a health check would.  The restore
takes the newest backup (or the newest finished before a point in time), replaces the file, and
the writer reconnects on its next attempt.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

from buttress.errors import ConfigError

from . import sqlite as drsqlite
from .drill import RestoredSnapshot
from .guard import FileGuard, GuardedConnection
from .manifest import SENTINEL_TABLE

__all__ = ["SqliteDrillTarget"]

_PAGE = 4096


class SqliteDrillTarget:
    """A drill on a scratch copy of ``source`` inside ``workspace`` (which must exist).

    :param guard: run the writer through the file guard (the default); without it, writes into a
        deleted file are acknowledged and lost, which the drill then reports.
    """

    disruptions: tuple[str, ...] = ("delete", "corrupt")

    def __init__(self, source: str | Path, workspace: str | Path, *, guard: bool = True) -> None:
        ws = Path(workspace)
        if not ws.is_dir():
            raise ConfigError("workspace", str(workspace), "is not a directory")
        self.path = ws / "drill.db"
        self.backups = ws / "backups"
        self.backups.mkdir()
        self.guard = guard
        src = drsqlite.open_existing(source)
        try:
            dest = sqlite3.connect(self.path, isolation_level=None)
            src.backup(dest, pages=-1)
            dest.close()
        finally:
            src.close()
        from buttress.sqlite import connect

        conn = connect(self.path)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SENTINEL_TABLE} "
            "(seq INTEGER PRIMARY KEY, at REAL NOT NULL)"
        )
        conn.execute(f"DELETE FROM {SENTINEL_TABLE}")  # the drill's own sequence starts at 1
        conn.close()
        self._lock = threading.Lock()
        self._writer: GuardedConnection | None = None
        self._open_writer()

    # --- the writer's side -----------------------------------------------------------------------

    def _open_writer(self) -> bool:
        try:
            conn = drsqlite.open_existing(self.path)
            conn.execute("PRAGMA busy_timeout = 1000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            guard = FileGuard(self.path, interval=0.0)
        except (ConfigError, sqlite3.DatabaseError):
            return False
        with self._lock:
            self._writer = GuardedConnection(conn, guard)
        return True

    def write(self, seq: int, at: float) -> None:
        w = self._writer
        if w is None:
            raise ConfigError("writer", None, "not connected")
        sql = f"INSERT INTO {SENTINEL_TABLE} (seq, at) VALUES (?, ?)"
        if self.guard:
            w.write(lambda c: c.execute(sql, (seq, at)))
        else:
            w.conn.execute(sql, (seq, at))

    def reconnect(self) -> bool:
        with self._lock:
            old, self._writer = self._writer, None
        if old is not None:
            old.close()
        return self._open_writer()

    # --- the drill's side ------------------------------------------------------------------------

    def backup(self) -> None:
        drsqlite.backup(self.path, self.backups, name="drill")

    def inject(self, disruption: str) -> None:
        if disruption == "delete":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        with open(self.path, "r+b") as f:
            f.write(os.urandom(_PAGE))
            f.flush()
            os.fsync(f.fileno())

    def broken(self) -> bool:
        if not self.path.exists():
            return True
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            return True
        return False

    def restore(self, at: float | None) -> RestoredSnapshot:
        chosen = drsqlite.pick_backup(self.backups, "drill", at=at)
        drsqlite.restore(chosen.path, self.path, force=True)
        conn = sqlite3.connect(f"{(chosen.path / drsqlite.DATA_FILE).as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute(f"SELECT seq, at FROM {SENTINEL_TABLE}").fetchall()
        finally:
            conn.close()
        return RestoredSnapshot(
            backup=chosen.manifest.id,
            snapshot_at=chosen.manifest.started_at,
            sentinels={int(s): float(a) for s, a in rows},
        )

    def read_sentinels(self) -> set[int]:
        conn = drsqlite.open_existing(self.path)
        try:
            return {int(r[0]) for r in conn.execute(f"SELECT seq FROM {SENTINEL_TABLE}")}
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            old, self._writer = self._writer, None
        if old is not None:
            old.close()
