"""One interface over the two databases, so each outbox test runs on both."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from buttress.outbox import Outbox, PostgresOutbox, SQLiteOutbox


class Backend:
    """Open outboxes and producer connections on one database."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self.target = target

    def outbox(self, queues: Any = ("q",), now: Callable[[], float] | None = None) -> Outbox:
        if self.kind == "sqlite":
            return SQLiteOutbox(Path(self.target) / "app.db", queues=queues, now=now)
        return PostgresOutbox(self.target, queues=queues, now=now)

    def connect(self) -> Any:
        """A producer connection in autocommit mode (the tests BEGIN explicitly)."""
        if self.kind == "sqlite":
            return sqlite3.connect(Path(self.target) / "app.db", isolation_level=None, timeout=10)
        return psycopg.connect(self.target, autocommit=True)

    @contextmanager
    def transaction(self, conn: Any) -> Iterator[Any]:
        conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def sql(self, text: str) -> str:
        return text if self.kind == "sqlite" else text.replace("?", "%s")


class FakeWallClock:
    """Wall-clock seconds the test moves by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
