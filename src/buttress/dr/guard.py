"""The runtime guard: notice a SQLite file deleted or replaced under a running application.

An open SQLite connection holds the file's inode, not its name.  When the file is deleted (or a
restore, a careless ``cp`` or a deploy script renames another file over it), the connection keeps
reading and writing the old inode: commits succeed, the application acknowledges them, and they
vanish with the last descriptor.  Nothing in SQLite reports it.

:class:`FileGuard` remembers the file's identity (``st_dev``, ``st_ino``) when the application
opens it and compares it with the path's current identity:

* on a cadence (``interval`` seconds, from a background thread once :meth:`FileGuard.start` is
  called), so the application is told (``on_lost`` callbacks, a ``buttress_dr_file_lost`` event)
  even while it is not writing;
* around each write made through :class:`GuardedConnection`: before it (refuse a write when the
  guard has already tripped, or its last check is older than ``interval``) and after the commit,
  so a write that may have landed in the lost file is reported as failed, never acknowledged.

Once tripped the guard stays tripped: the connection is pointed at a file that no longer exists,
and the way out is to reopen (after a restore) with a new guard.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, Rejected

from . import events as ev

__all__ = ["DatabaseFileLost", "FileGuard", "GuardedConnection", "file_identity"]

T = TypeVar("T")


class DatabaseFileLost(Rejected):
    """The database file was deleted or replaced: writes are refused.  ``reason`` says which."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"SQLite file {path} {reason}; writes refused", policy="dr_guard")


def file_identity(path: str | Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path``, ``None`` when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class FileGuard:
    """Watches one database file's identity (see the module docstring).

    :param path: the database file, as the application opened it.
    :param interval: seconds between checks (the background cadence, and the longest a write
        relies on an earlier check); ``0`` checks before every write.
    :param on_lost: called once, with the reason, when the guard trips (from the thread that
        noticed; keep it short).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        interval: float = 1.0,
        on_lost: Callable[[str], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not interval >= 0:
            raise ConfigError("interval", interval, "must be >= 0 seconds")
        identity = file_identity(path)
        if identity is None:
            raise ConfigError("path", str(path), "no such file to guard")
        self.path = str(path)
        self.identity = identity
        self.interval = float(interval)
        self.clock = clock
        self.lost: str | None = None
        self._callbacks = [on_lost] if on_lost is not None else []
        self._last_check = clock.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """Compare the path's identity with the remembered one now; the reason when lost."""
        if self.lost is not None:
            return self.lost
        now = self.clock.monotonic()
        current = file_identity(self.path)
        reason = None
        if current is None:
            reason = "was deleted"
        elif current != self.identity:
            reason = "was replaced by another file"
        with self._lock:
            self._last_check = now
            if reason is None or self.lost is not None:
                return self.lost
            self.lost = reason
        self._tell(reason)
        return reason

    def _tell(self, reason: str) -> None:
        em = ev.emitter()
        if em.active:
            em.emit(ev.DatabaseFileLost("dr", self.path, self.clock.monotonic(), self.path, reason))
        for cb in self._callbacks:
            cb(reason)

    def ensure(self) -> None:
        """Raise :class:`DatabaseFileLost` when tripped; check first when the last check is older
        than ``interval``."""
        if self.lost is None and self.clock.monotonic() - self._last_check >= self.interval:
            self.check()
        if self.lost is not None:
            raise DatabaseFileLost(self.path, self.lost)

    def start(self) -> FileGuard:
        """Check every ``interval`` seconds from a daemon thread until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"buttress-guard:{self.path}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(max(self.interval, 0.01)):
            if self.check() is not None:
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class GuardedConnection:
    """A SQLite connection whose writes go through a :class:`FileGuard`.

    :meth:`write` runs ``fn`` in one ``BEGIN IMMEDIATE`` transaction, refusing it when the guard
    has tripped, and checks the file's identity again after the commit: a commit that may have gone
    into a deleted or replaced file raises :class:`DatabaseFileLost` instead of returning, so the
    caller never acknowledges it.  The connection must be in autocommit mode
    (``isolation_level=None``), as :func:`buttress.sqlite.connect` opens it.
    """

    def __init__(self, conn: sqlite3.Connection, guard: FileGuard) -> None:
        self.conn = conn
        self.guard = guard
        self._lock = threading.Lock()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            self.guard.ensure()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            if self.guard.check() is not None:
                raise DatabaseFileLost(self.guard.path, f"{self.guard.lost} (this write is lost)")
            return out

    def close(self) -> None:
        self.guard.stop()
        self.conn.close()
