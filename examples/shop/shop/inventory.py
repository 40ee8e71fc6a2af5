"""Inventory: reserves stock for an order.

POST /reserve      {order_id, sku, qty} -> 200 {"reserved": true}; 409 when out of stock.
                   Idempotent on order_id: the api's call, its retries and the datastore's outbox
                   may all deliver the same reservation; an inbox (Buttress's dedup table, written
                   in the same transaction as the reservation) makes it take stock once.
GET  /stock        -> {sku: units left}
GET  /lab/effects  -> {"counts": {order_id: times reserved}} (the lab's exactly-once check)
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

from buttress.health import HealthRegistry
from buttress.outbox import Inbox
from buttress.sqlite import connect, transaction

from .common import Settings, with_health

settings = Settings.from_env("inventory")
_lock = threading.Lock()
_db = connect(settings.data / "inventory.db")
_inbox = Inbox("reserve")
with transaction(_db) as c:
    _inbox.create_table(c)
    c.execute("CREATE TABLE IF NOT EXISTS stock (sku TEXT PRIMARY KEY, units INTEGER NOT NULL)")
    c.execute("CREATE TABLE IF NOT EXISTS reservations (order_id TEXT, sku TEXT, qty INTEGER)")
    c.executemany(
        "INSERT OR IGNORE INTO stock VALUES (?, ?)",
        [(f"sku-{i:02d}", 1_000_000) for i in range(20)],
    )


def _reserve(order_id: str, sku: str, qty: int) -> tuple[int, dict[str, object]]:
    with _lock, transaction(_db) as c:
        row = c.execute("SELECT units FROM stock WHERE sku = ?", (sku,)).fetchone()
        if row is None or row[0] < qty or qty < 1:
            return 409, {"error": f"{sku}: out of stock"}
        if not _inbox.first_time(c, f"order:{order_id}"):
            return 200, {"reserved": True, "repeat": True}
        c.execute("UPDATE stock SET units = units - ? WHERE sku = ?", (qty, sku))
        c.execute("INSERT INTO reservations VALUES (?, ?, ?)", (order_id, sku, qty))
        return 200, {"reserved": True}


async def reserve(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, sku, qty = str(body["order_id"]), str(body["sku"]), int(body["qty"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku, qty"}, status_code=400)
    status, answer = await asyncio.to_thread(_reserve, order_id, sku, qty)
    return JSONResponse(answer, status_code=status)


async def show_stock(request: Request) -> JSONResponse:
    with _lock:
        rows = _db.execute("SELECT sku, units FROM stock").fetchall()
    return JSONResponse(dict(rows))


async def effects(request: Request) -> JSONResponse:
    with _lock:
        rows = _db.execute("SELECT order_id, count(*) FROM reservations GROUP BY order_id")
        return JSONResponse({"counts": {str(o): int(n) for o, n in rows}})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    with _lock:
        _db.close()


app = with_health(
    Starlette(
        routes=[
            Route("/reserve", reserve, methods=["POST"]),
            Route("/stock", show_stock, methods=["GET"]),
            Route("/lab/effects", effects, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
    HealthRegistry(service_id=settings.instance),
)
