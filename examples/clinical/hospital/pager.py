"""Pager: the hospital's clinical messaging gateway; pages the responsible clinician once per alert.

    POST /page          {alert_id, mrn} + Idempotency-Key -> 200 {"page_id"}
    GET  /lab/effects   {"counts": {alert_id: times paged}} (the lab's exactly-once check)

Behind Buttress's idempotency middleware
(:class:`~buttress.integrations.idempotency.IdempotencyMiddleware`, keys in SQLite beside the
ledger): the records relay's retries of one alert carry the same key (the alert id), so a retry
after a lost answer gets the first page's answer instead of a second page.  The handler records
every page it sends in its ledger, so a duplicate the middleware let through would show in the
counts.  A hung pager is the lab's fault on the proxy route in front of it.
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
    settings.data / "pages.db", isolation_level=None, timeout=10.0, check_same_thread=False
)
_ledger.execute("PRAGMA journal_mode = WAL")
_ledger.execute("PRAGMA synchronous = FULL")
_ledger.execute("CREATE TABLE IF NOT EXISTS pages (alert_id TEXT NOT NULL, mrn TEXT NOT NULL)")


def _send(alert_id: str, mrn: str) -> None:
    with _lock:
        _ledger.execute("INSERT INTO pages VALUES (?, ?)", (alert_id, mrn))


def _counts() -> dict[str, int]:
    with _lock:
        rows = _ledger.execute("SELECT alert_id, count(*) FROM pages GROUP BY alert_id")
        return {str(a): int(n) for a, n in rows}


async def page(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        alert_id, mrn = str(body["alert_id"]), str(body["mrn"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need alert_id, mrn"}, 400)
    await asyncio.to_thread(_send, alert_id, mrn)
    return JSONResponse({"page_id": f"pg-{alert_id}"})


async def effects(request: Request) -> JSONResponse:
    return JSONResponse({"counts": await asyncio.to_thread(_counts)})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    with _lock:
        _ledger.close()


app = HealthApp(
    HealthRegistry(service_id="pager"),
    app=IdempotencyMiddleware(
        Starlette(
            routes=[
                Route("/page", page, methods=["POST"]),
                Route("/lab/effects", effects, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        SQLiteIdempotencyStore(settings.data / "idempotency.db"),
    ),
)
