"""Processes of the crash test (run as ``python crash_worker.py ROLE BACKEND TARGET ...``).

* ``producer BACKEND TARGET PRODUCER COUNT``: COUNT transactions, each inserting one order row and
  enqueueing its message (key ``p<PRODUCER>-k<seq % 3>``) in the same transaction.
* ``relay BACKEND TARGET``: a relay whose handler applies the effect through an :class:`Inbox`, in
  one transaction with the dedup record, and counts every handler call (duplicates included).

BACKEND is ``sqlite`` (TARGET: a directory holding app.db and consumer.db) or ``postgres`` (TARGET:
a conninfo; the consumer's tables live in the same database).
"""

from __future__ import annotations

import random
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from buttress import Retry
from buttress.outbox import Inbox, Message, Outbox, PostgresOutbox, Relay, SQLiteOutbox
from buttress.policies.backoff import Backoff
from buttress.sqlite import connect, transaction

QUEUE = "orders"
CONSUMER_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS effects (n {serial}, uid TEXT, key TEXT, producer INTEGER, "
    "seq INTEGER)",
    "CREATE TABLE IF NOT EXISTS calls (uid TEXT)",
)
ORDERS = "CREATE TABLE IF NOT EXISTS orders (producer INTEGER, seq INTEGER)"


def open_outbox(backend: str, target: str) -> Outbox:
    if backend == "sqlite":
        return SQLiteOutbox(Path(target) / "app.db", queues=[QUEUE])
    return PostgresOutbox(target, queues=[QUEUE])


class Consumer:
    """The consumer's database connection, its transactions and its dialect."""

    def __init__(self, backend: str, target: str) -> None:
        self.sqlite = backend == "sqlite"
        if self.sqlite:
            self.conn: Any = connect(Path(target) / "consumer.db")
        else:
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)
        serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if self.sqlite else "BIGSERIAL PRIMARY KEY"
        self.inbox = Inbox("crash-test")
        with self.tx() as c:
            self.inbox.create_table(c)
            for statement in CONSUMER_SCHEMA:
                c.execute(statement.format(serial=serial))

    @contextmanager
    def tx(self) -> Iterator[Any]:
        if self.sqlite:
            with transaction(self.conn) as c:
                yield c
        else:
            with self.conn.transaction():
                yield self.conn

    def sql(self, text: str) -> str:
        return text if self.sqlite else text.replace("?", "%s")


def producer(backend: str, target: str, pid: int, count: int) -> None:
    outbox = open_outbox(backend, target)
    if backend == "sqlite":
        conn: Any = sqlite3.connect(Path(target) / "app.db", timeout=30, isolation_level=None)
        conn.execute(ORDERS)
        begin, commit = "BEGIN IMMEDIATE", "COMMIT"
        insert = "INSERT INTO orders VALUES (?, ?)"
    else:
        import psycopg

        conn = psycopg.connect(target, autocommit=True)
        conn.execute(ORDERS)
        begin, commit = "BEGIN", "COMMIT"
        insert = "INSERT INTO orders VALUES (%s, %s)"
    for seq in range(count):
        conn.execute(begin)
        conn.execute(insert, (pid, seq))
        outbox.enqueue(conn, QUEUE, {"p": pid, "s": seq}, key=f"p{pid}-k{seq % 3}")
        conn.execute(commit)
    print("done", flush=True)


def relay(backend: str, target: str) -> None:
    outbox = open_outbox(backend, target)
    consumer = Consumer(backend, target)
    flaky = random.Random()
    record_call = consumer.sql("INSERT INTO calls VALUES (?)")
    apply = consumer.sql("INSERT INTO effects (uid, key, producer, seq) VALUES (?, ?, ?, ?)")

    def handle(msg: Message) -> None:
        with consumer.tx() as c:
            c.execute(record_call, (msg.uid,))
        if flaky.random() < 0.05:
            raise ConnectionError("the consumer hiccupped")  # retried by the policy
        with consumer.tx() as c:
            if consumer.inbox.first_time(c, msg.uid):
                c.execute(apply, (msg.uid, msg.key, msg.payload["p"], msg.payload["s"]))

    retry = Retry(attempts=1000, backoff=Backoff(base=0.01, cap=0.05), budget=None)
    Relay(outbox, QUEUE, handle, retry=retry, lease=0.6, heartbeat=0.15, batch=20, poll=0.02).run()


if __name__ == "__main__":
    role, backend, target, *rest = sys.argv[1:]
    if role == "producer":
        producer(backend, target, int(rest[0]), int(rest[1]))
    else:
        relay(backend, target)
