"""Orders: the system of record, and the queue of orders waiting for payment.

    POST /orders   {id, sku, qty, amount, status} -> 200 {"id", "created"}; idempotent on id
    GET  /orders   {"ids": [...], "pending": [...]}: every stored order (the lab's final read)
                   and those still waiting for payment; ``?settle=S`` first waits up to S seconds
                   for the queue to empty

An order is acknowledged only once its transaction has committed with ``synchronous=FULL`` (the
WAL fsynced): a 200 means the order survives a crash of this process.

**The payment queue (Buttress run).**  When payments is slow, the api does not keep the customer
waiting: it stores the order as ``payment_pending`` and, in the same SQLite transaction, a
``charge`` message goes into a transactional outbox (:mod:`buttress.outbox`): both or neither.  A
relay thread delivers it to payments through the fault proxy with the order id as its
Idempotency-Key, retried by the ``charges`` pipeline's policy until payments answers, then marks
the order ``paid``; at most 10 charges a second (the pipeline's rate limit), so that a queue
drained after payments recovers is not a second surge aimed at it.  A charge the api's own
attempt already made (its answer arrived too late) is
answered from payments' idempotency store, not made twice.  With policies off there is no queue:
the api charges before it stores, however long payments takes.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from buttress import Pipeline, Retry
from buttress.health import HealthApp, HealthRegistry, sqlite_check
from buttress.outbox import Message, PermanentError, Relay, SQLiteOutbox
from buttress.spec import build_pipeline

from .common import Settings

settings = Settings.from_env()
db_path = settings.data / "orders.db"
_lock = threading.Lock()
_conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
_conn.execute("PRAGMA journal_mode = WAL")
_conn.execute("PRAGMA synchronous = FULL")
_conn.execute(
    "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, sku TEXT NOT NULL, "
    "qty INTEGER NOT NULL, amount INTEGER NOT NULL, status TEXT NOT NULL, created REAL NOT NULL)"
)
_INSERT = "INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?)"
STATUSES = ("paid", "payment_pending")

outbox = SQLiteOutbox(db_path, queues=["charge"]) if settings.policies else None


def _insert(order: dict[str, Any]) -> bool:
    row = (order["id"], order["sku"], order["qty"], order["amount"], order["status"], time.time())
    with _lock:
        if outbox is None or row[4] != "payment_pending":
            return bool(_conn.execute(_INSERT, row).rowcount == 1)
        _conn.execute("BEGIN IMMEDIATE")  # the order and its charge message: both or neither
        try:
            created = _conn.execute(_INSERT, row).rowcount == 1
            if created:
                message = {"order_id": row[0], "amount": row[3]}
                outbox.enqueue(_conn, "charge", message, key=row[0])
            _conn.execute("COMMIT")
        except BaseException:
            _conn.execute("ROLLBACK")
            raise
        return created


def _deliver_charge(message: Message) -> None:
    """The relay's handler: charge at payments (through the proxy), then mark the order paid."""
    order_id = str(message.payload["order_id"])
    r = drain.call(
        _relay_client.post,
        f"{payments_url}/charge",
        json=message.payload,
        headers={"Idempotency-Key": order_id},
    )
    if r.status_code == 409 or r.status_code >= 500:  # a repeat still running, or unavailable
        raise ConnectionError(f"payments: HTTP {r.status_code}")
    if r.status_code >= 400:  # refused for good (a bad amount): a person must settle it
        raise PermanentError(f"payments refused: {r.text[:200]}")
    with _lock:
        _conn.execute(
            "UPDATE orders SET status = 'paid' WHERE id = ? AND status = 'payment_pending'",
            (order_id,),
        )


def _queued() -> int:
    return sum(s.pending for s in outbox.status()) if outbox is not None else 0


relay: Relay | None = None
if outbox is not None:
    payments_url = settings.url("payments")
    _relay_client = httpx.Client(timeout=5.0)
    declared = build_pipeline(settings.spec, "charges")
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    # The rest of the pipeline (its rate limit) paces each delivery; the relay does the retrying.
    drain = Pipeline([p for p in declared.policies if not isinstance(p, Retry)], name="charges")
    relay = Relay(outbox, "charge", _deliver_charge, retry=retry, lease=10.0, poll=0.1)


def _ids() -> dict[str, list[str]]:
    with _lock:
        rows = _conn.execute("SELECT id, status FROM orders ORDER BY id").fetchall()
    return {"ids": [r[0] for r in rows], "pending": [r[0] for r in rows if r[1] != "paid"]}


async def create_order(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order = {
            "id": str(body["id"]),
            "sku": str(body["sku"]),
            "qty": int(body["qty"]),
            "amount": int(body["amount"]),
            "status": str(body["status"]),
        }
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need id, sku, qty, amount, status"}, 400)
    if order["status"] not in STATUSES:
        return JSONResponse({"error": f"status must be one of {', '.join(STATUSES)}"}, 400)
    created = await asyncio.to_thread(_insert, order)
    return JSONResponse({"id": order["id"], "created": created})


async def list_orders(request: Request) -> JSONResponse:
    try:
        settle = min(60.0, max(0.0, float(request.query_params.get("settle", "0"))))
    except ValueError:
        return JSONResponse({"error": "settle: a number of seconds"}, 400)
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and await asyncio.to_thread(_queued):
        await asyncio.sleep(0.1)
    return JSONResponse(await asyncio.to_thread(_ids))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if relay is not None:
        relay.start()
    yield
    if relay is not None:
        relay.stop()
        relay.close()
        _relay_client.close()
    with _lock:
        _conn.close()


health = HealthRegistry(service_id="orders")
health.add(sqlite_check(db_path, ttl=0.5))
app = HealthApp(
    health,
    app=Starlette(
        routes=[
            Route("/orders", create_order, methods=["POST"]),
            Route("/orders", list_orders, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
)
