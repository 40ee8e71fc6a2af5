"""Durable work: a transactional outbox, relays under fenced leases, and a consumer inbox.

::

    outbox = SQLiteOutbox("app.db", queues=["reserve"])
    with conn:                                       # the application's own transaction
        conn.execute("INSERT INTO orders ...")
        outbox.enqueue(conn, "reserve", {"order": 42}, key="sku-7")
    Relay(outbox, "reserve", deliver).start()        # delivers, retries, dead-letters

See ``docs/outbox.md``.  PostgreSQL needs ``psycopg`` (``buttress[outbox]``).
"""

from __future__ import annotations

from .errors import (
    NotInTransaction,
    NotSerialisable,
    OutboxError,
    PermanentError,
    StoreUnavailable,
    UnknownQueue,
)
from .events import MessageDeadLettered, MessageDelivered, MessageFenced, MessageRetryScheduled
from .inbox import Inbox
from .options import RelayOptions
from .relay import Relay
from .store import Message, Outbox, PostgresOutbox, QueueStatus, SQLiteOutbox

__all__ = [
    "Inbox",
    "Message",
    "MessageDeadLettered",
    "MessageDelivered",
    "MessageFenced",
    "MessageRetryScheduled",
    "NotInTransaction",
    "NotSerialisable",
    "Outbox",
    "OutboxError",
    "PermanentError",
    "PostgresOutbox",
    "QueueStatus",
    "Relay",
    "RelayOptions",
    "SQLiteOutbox",
    "StoreUnavailable",
    "UnknownQueue",
]
