"""The app behind the idempotency tests: ``POST /orders`` records one execution per run in a
SQLite file (so executions are counted across processes), can be slow (``?sleep=``) or fail
(``?status=``), and answers 201 with the order and the process id.  ``app()`` builds it behind
:class:`IdempotencyMiddleware`; as a uvicorn factory it reads ``IDEM_EXEC_DB`` and ``IDEM_REDIS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from typing import Any
from urllib.parse import parse_qs

from buttress.integrations.idempotency import IdempotencyMiddleware
from buttress.integrations.idempotency_stores import RedisIdempotencyStore, SQLiteIdempotencyStore


def orders_app(exec_db: str) -> Any:
    db = sqlite3.connect(exec_db, isolation_level=None, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT, body TEXT, pid INTEGER)")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        query = parse_qs(scope["query_string"].decode())
        key = dict(scope["headers"]).get(b"idempotency-key", b"").decode()
        if scope["method"] == "POST":  # GETs (readiness polls) are not executions
            db.execute("INSERT INTO runs VALUES (?, ?, ?)", (key, body.decode(), os.getpid()))
        # ?sleep= (part of the request's fingerprint) or X-Sleep (not: a repeat of a slow
        # request may then be quick)
        slept = dict(scope["headers"]).get(b"x-sleep", b"").decode()
        await asyncio.sleep(float(slept or query.get("sleep", ["0"])[0]))
        if "raise" in query:
            raise RuntimeError("the handler crashed")
        status = int(query.get("status", ["201"])[0])
        runs = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        out = json.dumps({"order": json.loads(body or b"{}"), "pid": os.getpid(), "run": runs})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"x-run", str(runs).encode())],
            }
        )
        await send({"type": "http.response.body", "body": out.encode()})

    return app


def runs(exec_db: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(exec_db) as db:
        return list(db.execute("SELECT key, body, pid FROM runs"))


def store_app() -> Any:
    """uvicorn --factory entry point for the multi-process tests: the Redis store when
    ``IDEM_REDIS`` is set, else the SQLite store at ``IDEM_SQLITE``; ``IDEM_LOCK_TIMEOUT``
    seconds (default 60)."""
    if "IDEM_REDIS" in os.environ:
        import redis.asyncio

        store: Any = RedisIdempotencyStore(redis.asyncio.Redis.from_url(os.environ["IDEM_REDIS"]))
    else:
        store = SQLiteIdempotencyStore(os.environ["IDEM_SQLITE"])
    lock = float(os.environ.get("IDEM_LOCK_TIMEOUT", "60"))
    return IdempotencyMiddleware(orders_app(os.environ["IDEM_EXEC_DB"]), store, lock_timeout=lock)
