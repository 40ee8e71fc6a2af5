"""Payments: charges an order (runs as several instances, payments-1 ... payments-n).

POST /charge       {order_id, amount} + Idempotency-Key -> 200 {"charge_id", "instance"}
GET  /lab/effects  -> {"counts": {order_id: times charged}} (the lab's exactly-once check)

Like a real payment provider, every instance writes to one ledger (a SQLite file shared by the
instances, beside their data directories) and sits behind Buttress's
:class:`~buttress.integrations.idempotency.IdempotencyMiddleware` with a store in the same place:
the first request with a key runs, a repeat (a retry after a lost answer, a hedge, a retry on the
other instance) gets the stored answer, a racing duplicate gets 409.  The handler itself records
*every* charge it executes, so a duplicate the middleware let through shows up in the counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import sqlite as house_sqlite
from buttress.health import HealthRegistry
from buttress.integrations.idempotency import IdempotencyMiddleware
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore

from .common import Settings, with_health

settings = Settings.from_env("payments")
shared = settings.data.parent  # the instances' common directory: one ledger, one key store
_lock = threading.Lock()
# Both replicas open the ledger as they start: buttress.sqlite.connect waits out the other's
# switch of a new file to WAL (a bare sqlite3.connect can fail there with "database is locked").
_ledger = house_sqlite.connect(shared / "payments-ledger.db", busy_timeout=10.0)
_ledger.execute("PRAGMA synchronous = FULL")
_ledger.execute(
    "CREATE TABLE IF NOT EXISTS charges (order_id TEXT NOT NULL, amount INTEGER NOT NULL, "
    "instance TEXT NOT NULL)"
)


def _record(order_id: str, amount: int) -> None:
    with _lock:
        _ledger.execute(
            "INSERT INTO charges VALUES (?, ?, ?)", (order_id, amount, settings.instance)
        )


def _counts() -> dict[str, int]:
    with _lock:
        rows = _ledger.execute("SELECT order_id, count(*) FROM charges GROUP BY order_id")
        return {str(o): int(n) for o, n in rows}


async def charge(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, amount = str(body["order_id"]), int(body["amount"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, amount"}, status_code=400)
    if amount <= 0:
        return JSONResponse({"error": "amount must be > 0"}, status_code=400)
    await asyncio.to_thread(_record, order_id, amount)
    return JSONResponse(
        {"charge_id": f"{settings.instance}:{order_id}", "instance": settings.instance}
    )


async def effects(request: Request) -> JSONResponse:
    return JSONResponse({"counts": await asyncio.to_thread(_counts)})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    with _lock:
        _ledger.close()


app = with_health(
    IdempotencyMiddleware(
        Starlette(
            routes=[
                Route("/charge", charge, methods=["POST"]),
                Route("/lab/effects", effects, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        SQLiteIdempotencyStore(shared / "payments-idempotency.db"),
    ),
    HealthRegistry(service_id=settings.instance),
)
