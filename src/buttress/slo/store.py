"""The embedded SLI store: good/total event counts per SLI per minute, in SQLite.

One table, ``sli_minutes(sli, minute, good, total)`` keyed by ``(sli, minute)``, where ``minute`` is
``floor(unix_seconds / 60)``.  Writes add to the row (an upsert), so any number of processes can
record into the same file: the database runs in WAL mode (readers never block the writer), every
write is one ``BEGIN IMMEDIATE`` transaction, and a busy database is waited for (``busy_timeout``,
default 10 s) instead of failing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SLIStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sli_minutes (
    sli    TEXT    NOT NULL,
    minute INTEGER NOT NULL,
    good   INTEGER NOT NULL,
    total  INTEGER NOT NULL,
    PRIMARY KEY (sli, minute)
) WITHOUT ROWID
"""
_UPSERT = (
    "INSERT INTO sli_minutes (sli, minute, good, total) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (sli, minute) DO UPDATE SET good = good + excluded.good, "
    "total = total + excluded.total"
)


class SLIStore:
    """A SQLite file of per-minute good/total counts.

    :param path: the database file (created if missing).
    :param busy_timeout: seconds a writer waits for another process's transaction (default 10).

    Thread-safe: one connection per store, guarded by a lock.  Open one store per process.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        if busy_timeout < 0:
            raise ConfigError("busy_timeout", busy_timeout, "must be >= 0")
        self.path = str(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and self.path != ":memory:":
            raise ConfigError("path", self.path, f"SQLite refused WAL mode (got {mode})")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._lock:
            self._write(lambda c: c.execute(_SCHEMA))

    def _write(self, fn: Any) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            fn(c)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def add(self, rows: Iterable[tuple[str, int, int, int]]) -> None:
        """Add ``(sli, minute, good, total)`` rows in one transaction (counts add up)."""
        batch = list(rows)
        if not batch:
            return
        with self._lock:
            self._write(lambda c: c.executemany(_UPSERT, batch))

    def add_counts(self, counts: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Add ``{(sli, minute): (good, total)}`` in one transaction."""
        self.add((k[0], k[1], v[0], v[1]) for k, v in counts.items())

    def slis(self) -> list[str]:
        """Names of every SLI with data."""
        with self._lock:
            return [
                r[0]
                for r in self._conn.execute("SELECT DISTINCT sli FROM sli_minutes ORDER BY sli")
            ]

    def rows(self, sli: str, start_minute: int, end_minute: int) -> list[tuple[int, int, int]]:
        """``(minute, good, total)`` for ``start_minute <= minute < end_minute``, in order."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT minute, good, total FROM sli_minutes WHERE sli = ? AND minute >= ? "
                "AND minute < ? ORDER BY minute",
                (sli, start_minute, end_minute),
            )
            return cur.fetchall()

    def series(
        self, sli: str, start_minute: int, end_minute: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Dense ``(good, total)`` arrays for minutes ``[start_minute, end_minute)`` (zeros if no
        data)."""
        from ._np import numpy

        np_ = numpy()
        n = max(0, end_minute - start_minute)
        good = np_.zeros(n, dtype=np_.int64)
        total = np_.zeros(n, dtype=np_.int64)
        rows = self.rows(sli, start_minute, end_minute)
        if rows:
            arr = np_.asarray(rows, dtype=np_.int64)
            idx = arr[:, 0] - start_minute
            good[idx] = arr[:, 1]
            total[idx] = arr[:, 2]
        return good, total

    def bounds(self, sli: str) -> tuple[int, int] | None:
        """First and last minute with data for ``sli``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT MIN(minute), MAX(minute) FROM sli_minutes WHERE sli = ?", (sli,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SLIStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SLIStore({self.path!r})"
