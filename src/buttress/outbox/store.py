"""Where outbox messages live: a table in the application's own database (SQLite or PostgreSQL).

The producer writes a message with :meth:`Outbox.enqueue` on *its own* connection, inside the
transaction of the business write, so both commit or neither does.  Relays and the admin commands
use the outbox's own connection (one per :class:`Outbox` object, behind a lock).

One row per message.  A relay *claims* rows: it writes its name, a lease end and a new **fence**
(the row's claim counter) in one statement; every later write about the row (acknowledge, retry
later, dead-letter, renew the lease) names that fence and requires the lease to be unexpired, so a
worker whose lease ran out, and who was perhaps replaced, changes nothing: its write matches no
row.  A row is claimable when it is not dead, due, not under a live lease, and the oldest live row
of its key (rows with no key are never held back).  So at most one message per key is in flight,
and the next one becomes claimable only once the previous one is acknowledged (deleted) or
dead-lettered.

Times are wall-clock seconds (``time.time`` by default, ``now`` in tests): every relay of one
outbox must share a clock to well within a lease.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from buttress import sqlite as house_sqlite
from buttress.errors import ConfigError

from .codec import NOT_JSON, decode, encode, new_uid
from .errors import NotInTransaction, NotSerialisable, StoreUnavailable, UnknownQueue
from .sql import (
    ACK,
    CLAIM,
    CLAIM_IDS,
    COLUMNS,
    DEAD,
    LATER,
    POSTGRES_SCHEMA,
    RELEASE,
    RENEW,
    SCAN,
    SQLITE_SCHEMA,
    STATUS,
)

__all__ = ["Message", "Outbox", "PostgresOutbox", "QueueStatus", "SQLiteOutbox"]

Clock = Callable[[], float]


class _MessageFields(NamedTuple):
    id: int
    uid: str
    queue: str
    key: str | None
    body: str
    created: float
    attempts: int
    claims: int
    fence: int
    last_error: str | None = None


class Message(_MessageFields):
    """One message as a relay took it.  ``uid`` is unique across outboxes (random, 96 bits): what a
    consumer's :class:`~buttress.outbox.Inbox` remembers.
    ``fence`` is the claim's fencing token; ``attempts`` the failed deliveries so far.  ``body`` is
    the payload as stored (compact JSON text); :attr:`payload` decodes it.

    A named tuple rather than a frozen dataclass: a relay makes one per message, and a tuple is
    built several times faster."""

    @cached_property
    def payload(self) -> Any:
        """The payload, decoded from :attr:`body` on first access (a handler that forwards the
        JSON text as it is never pays for decoding it)."""
        return decode(self.body)


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One queue at one moment: ``pending`` (live, including ``in_flight`` under a lease),
    ``dead`` letters, and the creation time of the oldest live message (``None``: empty)."""

    queue: str
    pending: int
    in_flight: int
    dead: int
    oldest: float | None

    def age(self, now: float) -> float:
        """Seconds the oldest live message has waited (0 when there is none)."""
        return 0.0 if self.oldest is None else max(0.0, now - self.oldest)


class _SomeLost(Exception):
    """A batch of fenced writes matched fewer rows than it named (some lease was lost)."""


class Outbox(ABC):
    """The outbox over one database; see :class:`SQLiteOutbox` and :class:`PostgresOutbox`.

    Every method but :meth:`enqueue` uses the outbox's own connection; database errors become
    :class:`~buttress.outbox.StoreUnavailable` naming the operation.
    """

    placeholder = "?"
    _errors: tuple[type[BaseException], ...] = ()

    def __init__(self, queues: Iterable[str], now: Clock, create: bool) -> None:
        names = [queues] if isinstance(queues, str) else list(queues)
        for q in names:
            if not isinstance(q, str) or not q:
                raise ConfigError("queues", q, "must be non-empty strings")
        if not names and create:
            raise ConfigError("queues", names, "must name at least one queue")
        self.queues = frozenset(names)
        self.now = now
        self._lock = threading.Lock()
        self._insert = self._sql(
            "INSERT INTO buttress_outbox (uid, queue, key, payload, created, available) "
            "VALUES (?, ?, ?, ?, ?, ?)"
        )

    # -- the dialect (overridden) --------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    @abstractmethod
    def _tx(self, operation: str) -> AbstractContextManager[Any]:
        """A transaction on the outbox's own connection, under its lock; database errors become
        :class:`StoreUnavailable` naming ``operation``."""

    @abstractmethod
    def _check_transaction(self, conn: Any) -> None:
        """Refuse a producer connection of the wrong kind, or outside a transaction."""

    @abstractmethod
    def _inserted_id(self, conn: Any, params: tuple[Any, ...]) -> int:
        """Insert one message on the producer's connection; its id."""

    @abstractmethod
    def close(self) -> None:
        """Close the outbox's own connection."""

    # -- producer ------------------------------------------------------------------------------

    def enqueue(
        self, conn: Any, queue: str, payload: Any, *, key: str | None = None, delay: float = 0.0
    ) -> int:
        """Write one message on ``conn``, the caller's connection, inside the caller's open
        transaction; returns its id.  It becomes visible to relays when that transaction commits
        and disappears if it rolls back.

        :param key: the ordering key: messages of one key are delivered one at a time, in id
            order; ``None``: no ordering.
        :param delay: seconds before the first delivery attempt.

        Refuses (nothing written) an unknown queue (:class:`UnknownQueue`), a payload JSON
        cannot hold (:class:`NotSerialisable`), a connection outside a transaction
        (:class:`NotInTransaction`); a database error becomes :class:`StoreUnavailable`.
        """
        if queue not in self.queues:
            raise UnknownQueue(queue, self.queues)
        if key is not None and not isinstance(key, str):
            raise ConfigError("key", key, "must be a string or None")
        try:
            body = encode(payload)
        except NOT_JSON as e:
            raise NotSerialisable(queue, str(e)) from None
        self._check_transaction(conn)
        now = self.now()
        try:
            return self._inserted_id(conn, (new_uid(), queue, key, body, now, now + delay))
        except self._errors as e:
            raise StoreUnavailable("enqueue", str(e)) from None

    def enqueue_many(
        self, conn: Any, queue: str, payloads: Iterable[Any], *, key: str | None = None
    ) -> int:
        """:meth:`enqueue` for many messages of one key (or none), in one ``executemany``, in id
        order; returns how many.  Nothing is written unless every payload serialises."""
        if queue not in self.queues:
            raise UnknownQueue(queue, self.queues)
        if key is not None and not isinstance(key, str):
            raise ConfigError("key", key, "must be a string or None")
        now = self.now()
        try:
            bodies = [encode(p) for p in payloads]
        except NOT_JSON as e:
            raise NotSerialisable(queue, str(e)) from None
        uids = os.urandom(12 * len(bodies)).hex()  # one system call for the whole batch
        rows = [
            (uids[24 * i : 24 * i + 24], queue, key, body, now, now)
            for i, body in enumerate(bodies)
        ]
        self._check_transaction(conn)
        try:
            conn.cursor().executemany(self._insert.removesuffix(" RETURNING id"), rows)
        except self._errors as e:
            raise StoreUnavailable("enqueue", str(e)) from None
        return len(rows)

    # -- relay ---------------------------------------------------------------------------------

    def claim(self, queue: str, owner: str, limit: int, lease: float) -> list[Message]:
        """Take up to ``limit`` due messages of ``queue``, oldest first, under a lease of
        ``lease`` seconds for ``owner``; each gets a new fence.  Of a key, only messages from its
        oldest live one on: PostgreSQL takes that one alone, SQLite a run of them (to be
        delivered in order; see :class:`~buttress.outbox.Relay`)."""
        self._known(queue)
        now = self.now()
        with self._tx("claim") as c:
            return self._claim_rows(c, (queue, owner, limit, now, now + lease))

    @abstractmethod
    def _claim_rows(self, c: Any, what: tuple[str, str, int, float, float]) -> list[Message]:
        """Claim in transaction ``c``: ``(queue, owner, limit, now, lease_until)``; the claimed
        messages in id order."""

    def ack(self, held: Sequence[tuple[int, int]]) -> list[bool]:
        """Delete delivered messages, each given as ``(id, fence)``; ``False`` where the fence
        is stale or the lease expired (the message stays, to be delivered again)."""
        return self._batch("ack", held, self._sql(ACK), ())

    def renew(self, held: Sequence[tuple[int, int]], lease: float) -> list[bool]:
        """Extend the leases still held to ``now + lease``; ``False`` where one was lost."""
        return self._batch("renew", held, self._sql(RENEW), (self.now() + lease,))

    def release(self, held: Sequence[tuple[int, int]]) -> list[bool]:
        """Give messages back untried (no attempt counted), due at once; ``False`` where the
        lease was already lost."""
        return self._batch("release", held, self._sql(RELEASE), ())

    def _batch(
        self, operation: str, held: Sequence[tuple[int, int]], sql: str, before: tuple[Any, ...]
    ) -> list[bool]:
        """One fenced statement per held message, with ``executemany`` in one transaction: when
        every statement matched its row (the usual case) that is all.  Otherwise the transaction
        is rolled back and redone in two round trips: read which are still held (fence and
        lease), then write those (whose ``WHERE`` repeats the check; nothing can change in
        between, the transaction holds the write lock on SQLite and the rows' locks on
        PostgreSQL)."""
        if not held:
            return []
        now = self.now()
        try:
            with self._tx(operation) as c:
                cur = c.cursor()
                cur.executemany(sql, [(*before, i, f, now) for i, f in held])
                if cur.rowcount == len(held):
                    return [True] * len(held)
                raise _SomeLost()  # roll back: which ones were lost is read below
        except _SomeLost:
            pass
        marks = ", ".join("?" * len(held))
        check = self._sql(
            f"SELECT id, fence FROM buttress_outbox WHERE id IN ({marks}) AND lease_until >= ?"
            + ("" if self.placeholder == "?" else " FOR UPDATE")
        )
        with self._tx(operation) as c:
            live = set(c.execute(check, (*(i for i, _ in held), now)).fetchall())
            ok = [(i, f) in live for i, f in held]
            rows = [(*before, i, f, now) for (i, f), good in zip(held, ok, strict=True) if good]
            if rows:
                c.cursor().executemany(sql, rows)
        return ok

    def retry_later(
        self, msg: Message, delay: float, error: str, *, count_attempt: bool = True
    ) -> bool:
        """Give the message back, due again in ``delay`` seconds; ``False`` when fenced off."""
        now = self.now()
        params = (int(count_attempt), now + delay, error[:2000], msg.id, msg.fence, now)
        return self._each("retry", self._sql(LATER), [params])[0]

    def dead_letter(self, msg: Message, error: str) -> bool:
        """Move the message to the dead-letter queue; ``False`` when fenced off."""
        now = self.now()
        params = (now, error[:2000], msg.id, msg.fence, now)
        return self._each("dead-letter", self._sql(DEAD), [params])[0]

    # -- admin ---------------------------------------------------------------------------------

    def known_queues(self) -> set[str]:
        """Every queue declared in this database (by any outbox object that opened it)."""
        with self._tx("status") as c:
            return {r[0] for r in c.execute("SELECT name FROM buttress_outbox_queues")}

    def status(self) -> list[QueueStatus]:
        """Every declared queue's counts, by name."""
        with self._tx("status") as c:
            names = {r[0] for r in c.execute("SELECT name FROM buttress_outbox_queues")}
            rows = c.execute(self._sql(STATUS), (self.now(),)).fetchall()
        found: dict[str, list[Any]] = {q: [0, 0, 0, None] for q in names}
        for queue, dead, count, oldest, leased in rows:
            entry = found.setdefault(queue, [0, 0, 0, None])
            if dead:
                entry[2] = count
            else:
                entry[0], entry[1], entry[3] = count, int(leased or 0), oldest
        return [QueueStatus(q, *found[q]) for q in sorted(found)]

    def dead_letters(self, queue: str, limit: int = 100) -> list[Message]:
        """The oldest ``limit`` dead letters of ``queue``."""
        self._known_in_db(queue)
        sql = self._sql(
            f"SELECT {COLUMNS} FROM buttress_outbox WHERE queue = ? AND dead = 1 "
            "ORDER BY id LIMIT ?"
        )
        with self._tx("dlq") as c:
            return [Message._make(r) for r in c.execute(sql, (queue, limit)).fetchall()]

    def requeue(self, queue: str, ids: Sequence[int] | None = None) -> int:
        """Make dead letters of ``queue`` (all, or those ``ids``) live again, due now, with their
        attempts reset; returns how many.

        They go to the back of their keys' lines, under new ids (same uid, so an inbox still
        knows them): the messages of their keys that went on meanwhile may be in flight or
        delivered already, and a revived message must neither overtake the live ones nor run
        beside them."""
        self._known_in_db(queue)
        where = "WHERE queue = ? AND dead = 1"
        params: list[object] = [queue]
        if ids is not None:
            if not ids:
                return 0
            where += f" AND id IN ({', '.join('?' for _ in ids)})"
            params += list(ids)
        copy = self._sql(
            "INSERT INTO buttress_outbox (uid, queue, key, payload, created, available) "
            f"SELECT uid, queue, key, payload, created, ? FROM buttress_outbox {where} ORDER BY id"
        )
        with self._tx("requeue") as c:
            n = int(c.execute(copy, (self.now(), *params)).rowcount)
            c.execute(self._sql(f"DELETE FROM buttress_outbox {where}"), params)
        return n

    def purge(self, queue: str, ids: Sequence[int] | None = None) -> int:
        """Delete dead letters of ``queue`` (all, or those ``ids``); returns how many.  Live
        messages are never purged."""
        self._known_in_db(queue)
        sql = "DELETE FROM buttress_outbox WHERE queue = ? AND dead = 1"
        return self._bulk("purge", sql, (queue,), ids)

    # -- helpers -------------------------------------------------------------------------------

    def _known(self, queue: str) -> None:
        if queue not in self.queues:
            raise UnknownQueue(queue, self.queues)

    def _known_in_db(self, queue: str) -> None:
        known = self.known_queues()
        if queue not in known:
            raise UnknownQueue(queue, known)

    def _bulk(
        self, operation: str, sql: str, params: tuple[Any, ...], ids: Sequence[int] | None
    ) -> int:
        if ids is not None:
            if not ids:
                return 0
            sql += f" AND id IN ({', '.join('?' for _ in ids)})"
            params = (*params, *ids)
        with self._tx(operation) as c:
            return int(c.execute(self._sql(sql), params).rowcount)

    def _each(self, operation: str, sql: str, rows: list[tuple[Any, ...]]) -> list[bool]:
        with self._tx(operation) as c:
            return [c.execute(sql, row).rowcount == 1 for row in rows]

    def _setup(self, c: Any, exists: bool, schema: str, create: bool, where: str) -> None:
        """Create the tables when missing (or refuse, without ``create``), declare this object's
        queues; in a transaction."""
        if not exists:
            if not create:
                raise StoreUnavailable("open", f"{where} holds no outbox (buttress_outbox)")
            for statement in _split(schema):
                c.execute(statement)
        if not self.queues:
            self.queues = frozenset(
                r[0] for r in c.execute("SELECT name FROM buttress_outbox_queues")
            )
        for q in sorted(self.queues):
            c.execute(
                self._sql(
                    "INSERT INTO buttress_outbox_queues (name) VALUES (?) ON CONFLICT DO NOTHING"
                ),
                (q,),
            )


class SQLiteOutbox(Outbox):
    """The outbox in a SQLite file, the application's own (``path``), opened with
    :func:`buttress.sqlite.connect` (WAL, busy timeout).  Its tables (``buttress_outbox*``) are
    created on first opening, in one transaction; the file's ``PRAGMA user_version`` is left to
    the application.

    The producer's connection is any ``sqlite3`` connection to the same file, in a transaction
    (with the default ``isolation_level`` the module opens one before the first write).
    """

    _errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path,
        *,
        queues: Iterable[str],
        now: Clock | None = None,
        busy_timeout: float = 10.0,
        create: bool = True,
    ) -> None:
        import time

        super().__init__(queues, now or time.time, create)
        self.path = str(path)
        if not create and not Path(self.path).is_file():
            raise StoreUnavailable("open", f"{self.path} does not exist")
        try:
            self._conn = house_sqlite.connect(self.path, busy_timeout=busy_timeout)
        except sqlite3.Error as e:
            raise StoreUnavailable("open", str(e)) from None
        with self._tx("open") as c:
            found = c.execute("SELECT 1 FROM sqlite_master WHERE name = 'buttress_outbox'")
            self._setup(c, found.fetchone() is not None, SQLITE_SCHEMA, create, self.path)

    @contextmanager
    def _tx(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                with house_sqlite.transaction(self._conn) as c:
                    yield c
            except sqlite3.Error as e:
                raise StoreUnavailable(operation, str(e)) from None

    def _claim_rows(self, c: Any, what: tuple[str, str, int, float, float]) -> list[Message]:
        # One scan in id order (the rowid: no index to maintain on enqueue), stopping once
        # ``limit`` are found.  A key's rows are taken as a run from its oldest live row: the
        # first live row that cannot be taken (due later, leased elsewhere) blocks the key's later
        # rows; dead rows block nothing.  Claims are serialised (BEGIN IMMEDIATE), so no other
        # relay can hold an earlier row of a key taken here; the relay delivers a run in order
        # and gives back the rest of it after a failure.
        # The scan reads the rows whole, so the claim itself is a plain UPDATE (no RETURNING): the
        # transaction holds the write lock, nothing changes in between, and each claimed row's
        # new fence and claim count are its old ones plus one.
        queue, owner, limit, now, until = what
        taken: list[Message] = []
        blocked: set[str] = set()
        scan = c.execute(SCAN, (queue,))
        for mid, uid, key, body, created, attempts, claims, fence, error, available, leased in scan:
            if key is not None and key in blocked:
                continue
            if available <= now and (leased is None or leased < now):
                row = (mid, uid, queue, key, body, created, attempts, claims + 1, fence + 1, error)
                taken.append(_new_message(Message, row))
                if len(taken) >= limit:
                    break
            elif key is not None:
                blocked.add(key)
        scan.close()
        if taken:
            marks = ", ".join("?" * len(taken))
            c.execute(CLAIM_IDS.format(ids=marks), (owner, until, *(m.id for m in taken)))
        return taken

    def _check_transaction(self, conn: Any) -> None:
        if not isinstance(conn, sqlite3.Connection):
            raise ConfigError("conn", conn, "must be a sqlite3.Connection to the outbox's file")
        if conn.isolation_level is None and not conn.in_transaction:
            raise NotInTransaction()

    def _inserted_id(self, conn: Any, params: tuple[Any, ...]) -> int:
        return int(conn.execute(self._insert, params).lastrowid)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresOutbox(Outbox):
    """The outbox in a PostgreSQL database (psycopg 3): ``conninfo`` for the outbox's own
    connection (relays, admin).  The producer's connection is any psycopg connection to the same
    database, in a transaction.  Claims lock their rows with ``FOR UPDATE SKIP LOCKED``, so relays
    never wait for one another.

    Ids come from an identity column: two transactions enqueueing for the same key concurrently
    are ordered by id, not by commit.  Producers that need commit order for a key serialise on the
    business row (``SELECT ... FOR UPDATE``), which they usually do already.
    """

    placeholder = "%s"

    def __init__(
        self, conninfo: str, *, queues: Iterable[str], now: Clock | None = None, create: bool = True
    ) -> None:
        import time

        try:
            import psycopg
        except ImportError:  # pragma: no cover - exercised only without the extra
            from buttress.errors import MissingExtra

            raise MissingExtra("buttress.outbox.PostgresOutbox", "outbox", "psycopg") from None
        super().__init__(queues, now or time.time, create)
        self._errors = (psycopg.Error,)
        self._transaction_idle = psycopg.pq.TransactionStatus.IDLE
        try:
            self._conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as e:
            raise StoreUnavailable("open", str(e)) from None
        self._claim = self._sql(CLAIM)
        self._insert += " RETURNING id"
        with self._tx("open") as c:
            c.execute("SELECT pg_advisory_xact_lock(4242018)")  # one creator at a time
            found = c.execute("SELECT to_regclass('buttress_outbox')").fetchone()[0]
            self._setup(c, found is not None, POSTGRES_SCHEMA, create, "the database")

    @contextmanager
    def _tx(self, operation: str) -> Iterator[Any]:
        with self._lock:
            try:
                with self._conn.transaction():
                    yield self._conn
            except self._errors as e:
                raise StoreUnavailable(operation, str(e).strip()) from None

    def _claim_rows(self, c: Any, what: tuple[str, str, int, float, float]) -> list[Message]:
        queue, owner, limit, now, until = what
        rows = c.execute(self._claim, (owner, until, queue, now, now, limit)).fetchall()
        return sorted(map(Message._make, rows), key=_by_id)  # RETURNING has no order

    def _check_transaction(self, conn: Any) -> None:
        info = getattr(conn, "info", None)
        if info is None or not hasattr(info, "transaction_status"):
            raise ConfigError("conn", conn, "must be a psycopg connection to the outbox's database")
        if conn.autocommit and info.transaction_status == self._transaction_idle:
            raise NotInTransaction()

    def _inserted_id(self, conn: Any, params: tuple[Any, ...]) -> int:
        return int(conn.execute(self._insert, params).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_by_id = itemgetter(0)
_new_message = tuple.__new__  # Message(*row) without the named tuple's Python __new__


def _split(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
