"""SQLite files Buttress keeps: one way to open them, one way to change their schema.

:func:`connect` opens a file for many processes at once: autocommit mode (transactions are
explicit), a busy timeout (a writer waits for another process's transaction instead of failing),
WAL (readers never block the writer) and ``synchronous = NORMAL``.  :func:`migrate` brings a file's
schema up to date: the schema version lives in ``PRAGMA user_version``, and the code holds an
ordered list of migrations, the first taking a file from version 0 to 1.  The missing ones are
applied in one ``BEGIN IMMEDIATE`` transaction (all or none), so two processes opening an old file
at the same time migrate it once.  A file whose version is beyond the list was written by a newer
Buttress and is refused with :class:`NewerSchema` rather than misread.

:class:`Database` holds one connection behind a lock, for the stores that share a connection between
threads.  Standard library only.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from buttress.errors import ConfigError

__all__ = [
    "Database",
    "Migration",
    "NewerSchema",
    "NotADatabase",
    "check_version",
    "connect",
    "migrate",
    "schema_version",
    "transaction",
    "where",
]

Migration = str | Callable[[sqlite3.Connection], None]
"""One step of a schema: SQL (one or more statements) or a function given the connection, run
inside the migration's transaction."""


class NotADatabase(ConfigError):
    """The file exists but is not a SQLite database (``detail``: SQLite's words)."""

    def __init__(self, path: str, detail: str) -> None:
        self.detail = detail
        super().__init__("path", path, f"not a usable SQLite database ({detail})")


class NewerSchema(ConfigError):
    """The file's schema version is newer than this code knows: written by a newer Buttress."""

    def __init__(self, path: str, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            "path",
            path,
            f"its schema version is {found}, newer than this version of Buttress knows ({known}); "
            "it was written by a newer Buttress: upgrade to open it",
        )


def connect(
    path: str | Path,
    *,
    busy_timeout: float = 10.0,
    read_only: bool = False,
    page_size: int | None = None,
) -> sqlite3.Connection:
    """Open ``path`` in autocommit mode, shared between threads (guard it with a lock).

    :param busy_timeout: seconds to wait for another connection's transaction.
    :param read_only: open with ``mode=ro`` (the file must exist); no journal mode is set.
    :param page_size: page size for a new file (an existing file keeps its own).

    A writable connection is switched to WAL with ``synchronous = NORMAL``; an in-memory database
    (``:memory:``) stays in its memory journal.  Raises :class:`~buttress.errors.ConfigError`
    naming ``path`` when it is a directory or refuses WAL mode, :class:`NotADatabase` when it is not
    a SQLite database.
    """
    p = str(path)
    if Path(p).is_dir():
        raise ConfigError("path", p, "is a directory; give the SQLite store file")
    target = f"{Path(p).resolve().as_uri()}?mode=ro" if read_only else p
    conn = sqlite3.connect(
        target, uri=read_only, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if read_only:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        if page_size is not None:
            conn.execute(f"PRAGMA page_size = {int(page_size)}")
        mode = _switch_to_wal(conn, busy_timeout)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise NotADatabase(p, str(e)) from None
    if mode != "wal" and p != ":memory:":
        conn.close()
        raise ConfigError("path", p, f"SQLite refused WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """``PRAGMA journal_mode = WAL``, waiting up to ``busy_timeout`` for other connections.

    Switching a new file's journal needs its exclusive lock, and when several processes open the
    same new file at once SQLite may answer ``SQLITE_BUSY`` at once, without calling the busy
    handler (measured: 2 of 160 opens by four processes racing for a new file failed with
    "database is locked" despite a 5 s busy timeout).  So the busy timeout is honoured here."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as e:
            busy = getattr(e, "sqlite_errorcode", None) in (
                sqlite3.SQLITE_BUSY,
                sqlite3.SQLITE_LOCKED,
            )
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception) on an autocommit
    connection: the write lock is taken up front, so the transaction never fails half-way for
    want of it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's ``PRAGMA user_version`` (0 for a new file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection, migrations: Sequence[Migration], path: str) -> int:
    """The file's schema version; :class:`NewerSchema` when it is beyond ``migrations``."""
    found = schema_version(conn)
    if found > len(migrations):
        raise NewerSchema(path, found, len(migrations))
    return found


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], path: str) -> int:
    """Apply the migrations the file lacks, in one transaction; returns how many were applied.

    ``migrations[i]`` takes the schema from version ``i`` to ``i + 1``.  The version is read again
    once the write lock is held, so a migration another process has just applied is not repeated.
    Raises :class:`NewerSchema` for a file newer than ``migrations``.
    """
    if check_version(conn, migrations, path) == len(migrations):
        return 0  # up to date: no write lock taken
    with transaction(conn):
        start = check_version(conn, migrations, path)
        for step in migrations[start:]:
            if isinstance(step, str):
                for statement in _statements(step):
                    conn.execute(statement)
            else:
                step(conn)
        conn.execute(f"PRAGMA user_version = {len(migrations)}")
    return len(migrations) - start


def _statements(script: str) -> Iterator[str]:
    """The complete statements of ``script`` (``executescript`` would commit the transaction)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


def where(select: str, *conditions: tuple[str, object]) -> tuple[str, list[Any]]:
    """``select`` with a ``WHERE`` clause of the ``conditions`` that apply, and its arguments.

    Each condition is ``(sql, value)``: left out when ``value`` is ``None`` or ``False`` (a filter
    not asked for); otherwise joined with ``AND``, and ``value`` bound to the condition's ``?``
    (a condition without one, such as ``"state != 'resolved'"`` with a flag, binds nothing)."""
    kept = [(sql, value) for sql, value in conditions if value is not None and value is not False]
    args = [value for sql, value in kept if "?" in sql]
    if not kept:
        return select, args
    return f"{select} WHERE {' AND '.join(sql for sql, _ in kept)}", args


class Database:
    """One connection to a SQLite file, shared by threads under one lock.

    Subclasses open it with :meth:`_open`, read with :meth:`_rows` and write with :meth:`_write`;
    :meth:`close` and the context manager are here.
    """

    path: str
    _conn: sqlite3.Connection

    def _open(
        self, conn: sqlite3.Connection, check: Callable[[sqlite3.Connection], object] | None = None
    ) -> None:
        """Keep ``conn``, after ``check`` (a migration, a version check) accepts it; a connection
        that fails the check is closed, not kept."""
        if check is not None:
            try:
                check(conn)
            except BaseException:
                conn.close()
                raise
        self._lock = threading.Lock()
        self._conn = conn

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        """Every row ``sql`` reads, under the lock."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _write(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``fn`` in one write transaction; the caller holds the lock."""
        with transaction(self._conn) as c:
            fn(c)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
