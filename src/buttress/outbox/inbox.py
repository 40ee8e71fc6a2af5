"""The consumer's side: an inbox of message ids already applied, so that a message delivered
twice (at-least-once delivery) changes the consumer's data once.

Record the id *in the transaction that applies the effect*::

    with conn:                                   # one transaction
        if inbox.first_time(conn, message.uid):  # inserts the id, or finds it there
            apply(conn, message.payload)         # the effect, committed with the id

A repeat finds the id and skips the effect; a crash before commit leaves neither.  Two deliveries
racing each other are settled by the table's primary key: one inserts, the other waits for it
and then finds the id (SQLite serialises writers; PostgreSQL waits on the uncommitted key).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from buttress.errors import ConfigError

__all__ = ["Inbox"]

_TABLE = (
    "CREATE TABLE IF NOT EXISTS buttress_inbox (consumer TEXT NOT NULL, uid TEXT NOT NULL, "
    "seen {real} NOT NULL, PRIMARY KEY (consumer, uid))"
)
_INSERT = "INSERT INTO buttress_inbox (consumer, uid, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"


class Inbox:
    """Deduplication for the consumer ``consumer`` (several consumers may share one table), on a
    ``sqlite3`` or psycopg connection; the dialect is read from the connection."""

    def __init__(self, consumer: str) -> None:
        if not isinstance(consumer, str) or not consumer:
            raise ConfigError("consumer", consumer, "must be a non-empty string")
        self.consumer = consumer

    @staticmethod
    def _sqlite(conn: Any) -> bool:
        return isinstance(conn, sqlite3.Connection)

    def create_table(self, conn: Any) -> None:
        """Create ``buttress_inbox`` if it is missing (call it from your migration)."""
        conn.execute(_TABLE.format(real="REAL" if self._sqlite(conn) else "DOUBLE PRECISION"))

    def first_time(self, conn: Any, uid: str) -> bool:
        """Record ``uid`` on ``conn``, in the caller's transaction; ``True`` when it was not there
        (apply the effect), ``False`` when it was (skip it)."""
        sql = _INSERT if self._sqlite(conn) else _INSERT.replace("?", "%s")
        return int(conn.execute(sql, (self.consumer, uid, time.time())).rowcount) == 1

    def forget_before(self, conn: Any, when: float) -> int:
        """Delete ids recorded before ``when`` (wall-clock seconds): safe once no message that
        old can still be delivered.  Returns how many."""
        sql = "DELETE FROM buttress_inbox WHERE consumer = ? AND seen < ?"
        if not self._sqlite(conn):
            sql = sql.replace("?", "%s")
        return int(conn.execute(sql, (self.consumer, when)).rowcount)
