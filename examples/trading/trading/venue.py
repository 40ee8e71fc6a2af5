"""The venue: an exchange's order-entry gateways (venue-1, venue-2) in front of one order book.

    POST /orders       {order_id, symbol, side, qty, price} + Idempotency-Key (the ClOrdID)
                       -> 200 {"order_id", "venue_id", "status": "new", "via"}
    POST /cancel       {order_id} -> 200 {"order_id", "status": "cancelled" | "unknown"}
    GET  /orders       {"ids": [...]}: every order on the book (the lab's final read)
    GET  /lab/effects  {"counts": {order_id: times placed}} (the lab's exactly-once check)

Each site of the platform has its own session on its own gateway of the venue (gateway-1 on
venue-1, gateway-2 on venue-2), as a firm connects each data centre to an exchange.  Both gateways
write to one book (a SQLite file beside their data directories) and sit behind Buttress's
:class:`~buttress.integrations.idempotency.IdempotencyMiddleware` with one key store: an order
sent twice with the same key (a hedge to the other site, a retry after a lost answer) is placed
once and the second copy gets the first's answer.  Venues reject a duplicate ClOrdID the same way.
The handler records every order it places, so a duplicate the middleware let through would show
in the counts.  A slow venue gateway is the lab's ``latency`` fault on the proxy route in front of
``venue-1``: the order is placed at once, its acknowledgement arrives late.
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
from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.idempotency import IdempotencyMiddleware
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore

from .common import Settings

settings = Settings.from_env("venue")
shared = settings.data.parent  # the gateways' common directory: one book, one key store
SIDES = ("buy", "sell")
_lock = threading.Lock()
# Every gateway opens the book as it starts: buttress.sqlite.connect (WAL, synchronous NORMAL)
# waits out another's switch of a new file to WAL.
_book = house_sqlite.connect(shared / "venue-book.db", busy_timeout=10.0)
_book.execute(
    "CREATE TABLE IF NOT EXISTS placed (order_id TEXT NOT NULL, symbol TEXT NOT NULL, "
    "side TEXT NOT NULL, qty INTEGER NOT NULL, price INTEGER NOT NULL, via TEXT NOT NULL)"
)
_book.execute("CREATE TABLE IF NOT EXISTS cancelled (order_id TEXT PRIMARY KEY)")


def _place(order_id: str, symbol: str, side: str, qty: int, price: int) -> int:
    with _lock:
        _book.execute(
            "INSERT INTO placed VALUES (?, ?, ?, ?, ?, ?)",
            (order_id, symbol, side, qty, price, settings.instance),
        )
        return int(_book.execute("SELECT count(*) FROM placed").fetchone()[0])


def _cancel(order_id: str) -> str:
    with _lock:
        if _book.execute("SELECT 1 FROM placed WHERE order_id = ?", (order_id,)).fetchone() is None:
            return "unknown"  # FIX: a cancel reject, "unknown order": an answer, not a failure
        _book.execute("INSERT OR IGNORE INTO cancelled VALUES (?)", (order_id,))
        return "cancelled"


def _counts() -> dict[str, int]:
    with _lock:
        rows = _book.execute("SELECT order_id, count(*) FROM placed GROUP BY order_id")
        return {str(o): int(n) for o, n in rows}


async def new_order(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, symbol, side = str(body["order_id"]), str(body["symbol"]), str(body["side"])
        qty, price = int(body["qty"]), int(body["price"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, symbol, side, qty, price"}, 400)
    if side not in SIDES or qty <= 0 or price <= 0:
        return JSONResponse({"error": "side buy|sell, qty > 0, price > 0"}, 400)
    n = await asyncio.to_thread(_place, order_id, symbol, side, qty, price)
    return JSONResponse(
        {"order_id": order_id, "venue_id": n, "status": "new", "via": settings.instance}
    )


async def cancel(request: Request) -> JSONResponse:
    try:
        order_id = str((await request.json())["order_id"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id"}, 400)
    return JSONResponse(
        {"order_id": order_id, "status": await asyncio.to_thread(_cancel, order_id)}
    )


async def orders(request: Request) -> JSONResponse:
    return JSONResponse({"ids": sorted(await asyncio.to_thread(_counts))})


async def effects(request: Request) -> JSONResponse:
    return JSONResponse({"counts": await asyncio.to_thread(_counts)})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    with _lock:
        _book.close()


app = HealthApp(
    HealthRegistry(service_id=settings.instance),
    app=IdempotencyMiddleware(
        Starlette(
            routes=[
                Route("/orders", new_order, methods=["POST"]),
                Route("/cancel", cancel, methods=["POST"]),
                Route("/orders", orders, methods=["GET"]),
                Route("/lab/effects", effects, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        SQLiteIdempotencyStore(shared / "venue-keys.db"),
    ),
)
