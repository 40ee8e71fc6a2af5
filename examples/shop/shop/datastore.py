"""The datastore: orders in SQLite (the system of record) and the product catalogue.

    POST /orders      {id, sku, qty, amount, status} -> 200 {"id", "created"}; idempotent on id
    GET  /orders      -> {"ids": [...], "pending": [...]}: every stored order (the nothing-lost
                         checker's final read), and those still ``reserve_pending``;
                         ``?settle=S``: first wait up to S seconds for the outbox to empty
    GET  /products      -> the catalogue
    GET  /health/ready  -> the SQLite file answers SELECT 1

An order is acknowledged only after its transaction has committed with ``synchronous=FULL`` (the
WAL is fsynced), so a 200 means the order survives a crash of this process.

Capacity is modelled the way a database server has it: at most ``POOL`` queries run at once (a
connection pool) and the catalogue query costs ``CATALOGUE_COST`` seconds (a stand-in for a heavy
SQL query: SQLite alone answers this tiny catalogue far too fast to be overloaded by a laptop).
So a burst of browsing queues up here and delays every order behind it, unless the API limits how
many catalogue queries it lets through.

**Deferred reservations (Buttress run).**  An order accepted while inventory was down is stored
as ``reserve_pending`` and, in the same transaction, a ``reserve`` message goes into a
transactional outbox in the same SQLite file (:mod:`buttress.outbox`): both or neither.  A relay
thread delivers it to inventory through the fault proxy, retrying with the ``reservations``
pipeline's retry policy until inventory is back, then marks the order ``confirmed``; inventory's
inbox takes the stock once however often it is delivered.  A crash of this process loses
neither: the message is a committed row, and the relay starts again with the process.  In the
``off`` and ``typical`` runs the order stays ``reserve_pending`` (what a team without an outbox
has: a reconciler it has not written yet).

``SHOP_DB_WRITE_BEHIND`` (seconds, default 0: off) plants a bug for the lab's own tests: orders are
acknowledged from a memory buffer and committed in batches that often, the "fast" write-behind cache
that loses what it holds when the process is killed.  The datastore-crash fault of the lab's plan
must expose it through the nothing-lost check (tests/shop/test_lab_planted_loss.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Retry
from buttress.health import HealthRegistry, sqlite_check
from buttress.outbox import Message, PermanentError, Relay, SQLiteOutbox
from buttress.spec import build_pipeline

from .common import Settings, with_health
from .labfaults import slowdown

POOL = int(os.environ.get("SHOP_DB_POOL", "4"))
CATALOGUE_COST = float(os.environ.get("SHOP_CATALOGUE_COST", "0.06"))
WRITE_BEHIND = float(os.environ.get("SHOP_DB_WRITE_BEHIND", "0"))
PRODUCTS = [{"sku": f"sku-{i:02d}", "price": 500 + 125 * i} for i in range(20)]

settings = Settings.from_env("datastore")
db_path = settings.data / "orders.db"
_lock = threading.Lock()
_conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
_conn.execute("PRAGMA journal_mode = WAL")
_conn.execute("PRAGMA synchronous = FULL")
_conn.execute(
    "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, sku TEXT NOT NULL, "
    "qty INTEGER NOT NULL, amount INTEGER NOT NULL, status TEXT NOT NULL, created REAL NOT NULL)"
)
_pool: asyncio.Semaphore | None = None


def pool() -> asyncio.Semaphore:
    global _pool
    if _pool is None:
        _pool = asyncio.Semaphore(POOL)
    return _pool


_INSERT = (
    "INSERT OR IGNORE INTO orders (id, sku, qty, amount, status, created) VALUES (?, ?, ?, ?, ?, ?)"
)
_buffer: list[tuple[Any, ...]] = []  # the planted write-behind bug's unsaved orders


def _row(order: dict[str, Any]) -> tuple[Any, ...]:
    return (
        str(order["id"]),
        str(order["sku"]),
        int(order["qty"]),
        int(order["amount"]),
        str(order.get("status", "confirmed")),
        time.time(),
    )


# The outbox needs somewhere to deliver: a lab plan without inventory (the planted-loss test's)
# runs the datastore alone.
OUTBOX = settings.mode == "on" and "inventory" in settings.upstreams
outbox = SQLiteOutbox(db_path, queues=["reserve"]) if OUTBOX else None


def _insert(order: dict[str, Any]) -> bool:
    with _lock:
        if WRITE_BEHIND > 0:
            _buffer.append(_row(order))  # acknowledged before it is stored: the planted bug
            return True
        row = _row(order)
        if outbox is None or row[4] != "reserve_pending":
            return _conn.execute(_INSERT, row).rowcount == 1
        _conn.execute("BEGIN IMMEDIATE")  # the order and its reservation message: both or neither
        try:
            created = _conn.execute(_INSERT, row).rowcount == 1
            if created:
                message = {"order_id": row[0], "sku": row[1], "qty": row[2]}
                outbox.enqueue(_conn, "reserve", message, key=row[0])
            _conn.execute("COMMIT")
        except BaseException:
            _conn.execute("ROLLBACK")
            raise
        return created


def _deliver_reservation(message: Message) -> None:
    """The relay's handler: reserve at inventory (through the proxy), then confirm the order."""
    r = _relay_client.post(f"{inventory_url}/reserve", json=message.payload)
    if r.status_code == 409:  # out of stock: retrying cannot help; a person must settle it
        raise PermanentError(f"inventory refused: {r.text[:200]}")
    if r.status_code >= 500:
        raise ConnectionError(f"inventory: HTTP {r.status_code}")
    r.raise_for_status()
    with _lock:
        _conn.execute(
            "UPDATE orders SET status = 'confirmed' WHERE id = ? AND status = 'reserve_pending'",
            (str(message.payload["order_id"]),),
        )


def _outbox_depth() -> int:
    return sum(s.pending for s in outbox.status()) if outbox is not None else 0


relay: Relay | None = None
if outbox is not None:
    inventory_url = settings.url("inventory")
    _relay_client = httpx.Client(timeout=2.0)
    declared = build_pipeline(settings.spec, "reservations")
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    relay = Relay(outbox, "reserve", _deliver_reservation, retry=retry, lease=10.0, poll=0.1)


def _flush() -> None:
    with _lock:
        rows, _buffer[:] = list(_buffer), []
        _conn.executemany(_INSERT, rows)


async def _write_behind() -> None:
    while True:
        await asyncio.sleep(WRITE_BEHIND)
        await asyncio.to_thread(_flush)


def _ids() -> dict[str, list[str]]:
    with _lock:
        rows = _conn.execute("SELECT id, status FROM orders ORDER BY id").fetchall()
    return {"ids": [r[0] for r in rows], "pending": [r[0] for r in rows if r[1] != "confirmed"]}


async def create_order(request: Request) -> JSONResponse:
    try:
        order = await request.json()
        order["id"], order["sku"], order["qty"], order["amount"]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need id, sku, qty, amount"}, status_code=400)
    async with pool():
        created = await asyncio.to_thread(_insert, order)
    return JSONResponse({"id": order["id"], "created": created})


async def list_orders(request: Request) -> JSONResponse:
    try:
        settle = min(60.0, max(0.0, float(request.query_params.get("settle", "0"))))
    except ValueError:
        return JSONResponse({"error": "settle: a number of seconds"}, status_code=400)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and await asyncio.to_thread(_outbox_depth):
        await asyncio.sleep(0.1)
    return JSONResponse(await asyncio.to_thread(_ids))


async def products(request: Request) -> JSONResponse:
    async with pool():
        await asyncio.sleep(CATALOGUE_COST * slowdown())  # the lab's ``slow`` fault multiplies it
    return JSONResponse({"products": PRODUCTS})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    flusher = asyncio.create_task(_write_behind()) if WRITE_BEHIND > 0 else None
    if relay is not None:
        relay.start()
    yield
    if relay is not None:
        relay.stop()
        relay.close()
        _relay_client.close()
    if flusher is not None:
        flusher.cancel()
        _flush()
    with _lock:
        _conn.close()
    settings.close()


health = HealthRegistry(service_id="datastore")
health.add(sqlite_check(db_path, ttl=0.5))
app = with_health(
    Starlette(
        routes=[
            Route("/orders", create_order, methods=["POST"]),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/products", products, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
    health,
)
