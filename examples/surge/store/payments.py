"""Payments: charges an order once, whoever asks and however often.

    POST /charge       {order_id, amount} + Idempotency-Key -> 200 {"charge_id"}
    GET  /lab/effects  {"counts": {order_id: times charged}} (the lab's exactly-once check)

The provider sits behind Buttress's idempotency middleware
(:class:`~buttress.integrations.idempotency.IdempotencyMiddleware`, keys in SQLite beside the
ledger): the api's charge and the orders relay's later charge of the
same order carry the same key (the order id), so the second gets the first's answer instead of a
second charge.  The handler records every charge it executes in its ledger, so a duplicate the
middleware let through would show in the counts.  A slow provider is the lab's ``latency`` fault
on the proxy route in front of this service: the charge is made at once, the answer arrives late.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.idempotency import IdempotencyMiddleware
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore

from .common import Settings

settings = Settings.from_env()
_lock = threading.Lock()
_ledger = sqlite3.connect(
    settings.data / "ledger.db", isolation_level=None, timeout=10.0, check_same_thread=False
)
_ledger.execute("PRAGMA journal_mode = WAL")
_ledger.execute("PRAGMA synchronous = FULL")
_ledger.execute("CREATE TABLE IF NOT EXISTS charges (order_id TEXT NOT NULL, amount INTEGER)")


def _record(order_id: str, amount: int) -> None:
    with _lock:
        _ledger.execute("INSERT INTO charges VALUES (?, ?)", (order_id, amount))


def _counts() -> dict[str, int]:
    with _lock:
        rows = _ledger.execute("SELECT order_id, count(*) FROM charges GROUP BY order_id")
        return {str(o): int(n) for o, n in rows}


async def charge(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, amount = str(body["order_id"]), int(body["amount"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, amount"}, 400)
    if amount <= 0:
        return JSONResponse({"error": "amount must be > 0"}, 400)
    await asyncio.to_thread(_record, order_id, amount)
    return JSONResponse({"charge_id": f"ch-{order_id}"})


async def effects(request: Request) -> JSONResponse:
    return JSONResponse({"counts": await asyncio.to_thread(_counts)})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    with _lock:
        _ledger.close()


app = HealthApp(
    HealthRegistry(service_id="payments"),
    app=IdempotencyMiddleware(
        Starlette(
            routes=[
                Route("/charge", charge, methods=["POST"]),
                Route("/lab/effects", effects, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        SQLiteIdempotencyStore(settings.data / "idempotency.db"),
    ),
)
