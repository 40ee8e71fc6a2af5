"""Where :class:`~buttress.integrations.idempotency.IdempotencyMiddleware` keeps its keys.

A key's record goes through two states::

    (absent or expired) --begin--> running(fingerprint, token, locked_until)
    running --complete(token)--> done(fingerprint, status, headers, body)     kept until expiry
    running --release(token)---> absent            (the app failed: the key may be used again)
    running, locked_until passed --begin--> running with a new token   (its server died)

:meth:`begin` is one atomic step (a ``BEGIN IMMEDIATE`` transaction on SQLite, one Lua script on
Redis) answering ``new`` (run the request), ``running`` (409), ``mismatch`` (422, another payload
under this key) or ``done`` with the stored response.  ``complete`` and ``release`` name the token
``begin`` handed out, so a server that lost its lock (it ran past ``lock_timeout`` and another
took the key over) cannot overwrite the newer run's outcome.

SQLite suits one host (its processes share the file); Redis suits several replicas.  Both raise
:class:`IdempotencyStoreUnavailable` when they cannot answer: the middleware then refuses the
request with 503 rather than run it unrecorded.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from buttress import sqlite as house_sqlite
from buttress.errors import ButtressError

__all__ = [
    "Begun",
    "IdempotencyStore",
    "IdempotencyStoreUnavailable",
    "RedisIdempotencyStore",
    "SQLiteIdempotencyStore",
    "StoredResponse",
]


class IdempotencyStoreUnavailable(ButtressError):
    """The store could not record or read a key (``operation``); nothing was run unrecorded."""

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        super().__init__(f"idempotency store unavailable during {operation}: {detail}")


_last_headers: tuple[list[tuple[bytes, bytes]], str] = ([], "[]")


def _headers_json(headers: list[tuple[bytes, bytes]]) -> str:
    """The headers as JSON; an app usually answers with the same headers, so the last list and
    its text are kept (one comparison instead of an encoding)."""
    global _last_headers
    last, text = _last_headers
    if headers != last:
        text = json.dumps([[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers])
        _last_headers = (list(headers), text)
    return text


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as it is replayed: status, raw headers, whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def headers_json(self) -> str:
        return _headers_json(self.headers)

    @staticmethod
    def from_parts(status: int, headers: str, body: bytes) -> StoredResponse:
        pairs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(headers)]
        return StoredResponse(int(status), pairs, bytes(body))


@dataclass(frozen=True, slots=True)
class Begun:
    """What :meth:`IdempotencyStore.begin` found: ``new``, ``running``, ``mismatch`` or ``done``
    (then ``response`` is the stored one)."""

    state: Literal["new", "running", "mismatch", "done"]
    response: StoredResponse | None = None


class IdempotencyStore(Protocol):
    """What the middleware needs from a store (times in wall-clock seconds)."""

    async def begin(
        self, key: str, fingerprint: str, token: str, *, now: float, ttl: float, lock: float
    ) -> Begun: ...

    async def complete(
        self, key: str, token: str, response: StoredResponse, now: float, ttl: float
    ) -> bool: ...

    async def release(self, key: str, token: str) -> None: ...


_SCHEMA = """CREATE TABLE IF NOT EXISTS buttress_idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    token TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL,
    expires REAL NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB
) WITHOUT ROWID"""
_PURGE_EVERY = 1024
# Rows the automatic purge examines each time, in key order from where the last one stopped: twice
# the begins between purges, so the sweep passes over a table of live keys faster than new keys
# arrive, while one purge stays a bounded range read.  (A scan of the whole table would read
# every key kept for a day, on the event loop, every 1,024 requests; an index on ``expires``
# would cost every request's two writes another page each.)
_PURGE_CHUNK = 2 * _PURGE_EVERY
_PURGE_STEP = (
    "SELECT max(key), count(*) FROM (SELECT key FROM buttress_idempotency WHERE key > ? "
    "ORDER BY key LIMIT ?)"
)
_PURGE_RANGE = "DELETE FROM buttress_idempotency WHERE key > ? AND key <= ? AND expires <= ?"
_INSERT_NEW = (
    "INSERT INTO buttress_idempotency (key, fingerprint, token, done, locked_until, expires) "
    "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING"
)
_COMPLETE_SQL = (
    "UPDATE buttress_idempotency SET done = 1, status = ?, headers = ?, body = ?, expires = ? "
    "WHERE key = ? AND token = ? AND done = 0"
)


class SQLiteIdempotencyStore:
    """Keys in a SQLite file (:func:`buttress.sqlite.connect`: WAL, busy timeout), shared by the
    processes of one host.  Each operation is one short local transaction, run on the event loop
    itself: a thread hop would cost more than the write.  Expired keys are deleted every 1024
    ``begin`` calls (a sweep in key order, :data:`_PURGE_CHUNK` keys at a time, so no request
    waits for a scan of the whole table), and by :meth:`purge_expired`."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        try:
            self._conn = house_sqlite.connect(self.path, busy_timeout=busy_timeout)
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as e:
            raise IdempotencyStoreUnavailable("open", str(e)) from None
        self._lock = threading.Lock()
        self._begins = 0
        self._swept_to = ""  # the automatic purge's place in key order ("": the start)

    def _tx(self, operation: str, fn: Any) -> Any:
        with self._lock:
            try:
                with house_sqlite.transaction(self._conn) as c:
                    return fn(c)
            except sqlite3.Error as e:
                raise IdempotencyStoreUnavailable(operation, str(e)) from None

    def _one(self, operation: str, sql: str, params: tuple[Any, ...]) -> int:
        """One statement in autocommit mode (a transaction of its own, so atomic); the number of
        rows it changed.  Half the statements of ``BEGIN IMMEDIATE`` ... ``COMMIT``: the common
        operations need nothing more."""
        with self._lock:
            try:
                return int(self._conn.execute(sql, params).rowcount)
            except sqlite3.Error as e:
                raise IdempotencyStoreUnavailable(operation, str(e)) from None

    async def begin(
        self, key: str, fingerprint: str, token: str, *, now: float, ttl: float, lock: float
    ) -> Begun:
        self._begins += 1
        if self._begins % _PURGE_EVERY == 0:
            self.purge_some(now)
        # The common case in one statement, its own transaction: a key never seen.
        if self._one("begin", _INSERT_NEW, (key, fingerprint, token, now + lock, now + ttl)):
            return Begun("new")

        def step(c: sqlite3.Connection) -> Begun:
            row = c.execute(
                "SELECT fingerprint, done, locked_until, expires, status, headers, body "
                "FROM buttress_idempotency WHERE key = ?",
                (key,),
            ).fetchone()
            if row is None or row[3] <= now:  # gone meanwhile, or expired: a new request
                c.execute(
                    "INSERT OR REPLACE INTO buttress_idempotency (key, fingerprint, token, done, "
                    "locked_until, expires) VALUES (?, ?, ?, 0, ?, ?)",
                    (key, fingerprint, token, now + lock, now + ttl),
                )
                return Begun("new")
            if row[0] != fingerprint:
                return Begun("mismatch")
            if row[1]:
                return Begun("done", StoredResponse.from_parts(row[4], row[5], row[6]))
            if row[2] <= now:  # its server died or hung past the lock: take the key over
                c.execute(
                    "UPDATE buttress_idempotency SET token = ?, locked_until = ? WHERE key = ?",
                    (token, now + lock, key),
                )
                return Begun("new")
            return Begun("running")

        return self._tx("begin", step)  # type: ignore[no-any-return]

    async def complete(
        self, key: str, token: str, response: StoredResponse, now: float, ttl: float
    ) -> bool:
        params = (response.status, response.headers_json(), response.body, now + ttl, key, token)
        return self._one("complete", _COMPLETE_SQL, params) == 1

    async def release(self, key: str, token: str) -> None:
        self._one(
            "release",
            "DELETE FROM buttress_idempotency WHERE key = ? AND token = ? AND done = 0",
            (key, token),
        )

    def purge_expired(self, now: float) -> int:
        """Delete keys expired at ``now``; returns how many."""
        return self._one("purge", "DELETE FROM buttress_idempotency WHERE expires <= ?", (now,))

    def purge_some(self, now: float, limit: int = _PURGE_CHUNK) -> int:
        """Delete the keys expired at ``now`` among the next ``limit`` keys in key order after the
        last call's, wrapping to the start after the last key; returns how many.  ``begin``
        calls it every 1,024 requests: the work of one call is bounded, and successive calls
        sweep the whole table."""

        def step(c: sqlite3.Connection) -> int:
            after = self._swept_to
            last, seen = c.execute(_PURGE_STEP, (after, limit)).fetchone()
            # A short range reached the end: the next call starts from the first key.  (No key
            # after ``after`` at all: ``last`` is NULL and the delete matches nothing.)
            self._swept_to = last if seen == limit else ""
            return int(c.execute(_PURGE_RANGE, (after, last, now)).rowcount)

        return self._tx("purge", step)  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# KEYS[1] the record; ARGV: fingerprint, token, now_ms, ttl_ms, lock_ms.  A hash per key, its
# expiry Redis's own (PEXPIRE), so no purge is needed.
_BEGIN = """
local r = redis.call('HMGET', KEYS[1], 'fp', 'done', 'locked', 'status', 'headers', 'body')
local now = tonumber(ARGV[3])
if not r[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2], 'done', '0',
             'locked', now + tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'new'}
end
if r[1] ~= ARGV[1] then return {'mismatch'} end
if r[2] == '1' then return {'done', r[4], r[5], r[6]} end
if tonumber(r[3]) <= now then
  redis.call('HSET', KEYS[1], 'token', ARGV[2], 'locked', now + tonumber(ARGV[5]))
  return {'new'}
end
return {'running'}
"""
# KEYS[1]; ARGV: token, status, headers, body, ttl_ms
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'done') == '1' then return 0 end
redis.call('HSET', KEYS[1], 'done', '1', 'status', ARGV[2], 'headers', ARGV[3], 'body', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] and redis.call('HGET', KEYS[1], 'done') == '0'
then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisIdempotencyStore:
    """Keys in Redis, for several replicas behind one load balancer: ``client`` is a
    ``redis.asyncio.Redis`` (used from the serving event loop), ``prefix`` namespaces the keys.
    Each operation is one Lua script, so two replicas racing for a key get one ``new``."""

    def __init__(self, client: Any, *, prefix: str = "buttress:idem:") -> None:
        try:
            import redis.exceptions
        except ImportError:  # pragma: no cover - exercised only without the extra
            from buttress.errors import MissingExtra

            raise MissingExtra("RedisIdempotencyStore", "redis", "redis") from None
        self._errors = (redis.exceptions.RedisError, OSError)
        self.client = client
        self.prefix = prefix
        self._begin = client.register_script(_BEGIN)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    async def _run(self, operation: str, script: Any, key: str, args: list[Any]) -> Any:
        try:
            return await script(keys=[self.prefix + key], args=args)
        except self._errors as e:
            raise IdempotencyStoreUnavailable(operation, str(e) or type(e).__name__) from None

    async def begin(
        self, key: str, fingerprint: str, token: str, *, now: float, ttl: float, lock: float
    ) -> Begun:
        args = [fingerprint, token, int(now * 1000), max(1, int(ttl * 1000)), int(lock * 1000)]
        r = await self._run("begin", self._begin, key, args)
        state = r[0].decode() if isinstance(r[0], bytes) else r[0]
        if state == "done":
            headers = r[2].decode("latin-1") if isinstance(r[2], bytes) else r[2]
            return Begun("done", StoredResponse.from_parts(int(r[1]), headers, r[3]))
        return Begun("new" if state == "new" else "mismatch" if state == "mismatch" else "running")

    async def complete(
        self, key: str, token: str, response: StoredResponse, now: float, ttl: float
    ) -> bool:
        args = [token, response.status, response.headers_json(), response.body, int(ttl * 1000)]
        return bool(await self._run("complete", self._complete, key, args))

    async def release(self, key: str, token: str) -> None:
        await self._run("release", self._release, key, [token])
