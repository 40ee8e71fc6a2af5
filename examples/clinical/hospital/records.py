"""Records: the primary patient record (the EHR's database), the only place a write can go.

    GET  /patients?mrn=mrn-0042          the patient, with every medication (seeded + charted)
    GET  /interactions?mrn=...&drug=...  the drug checked against the patient's medications
    POST /administrations {id, mrn, drug} a medication given, charted; idempotent on id
    POST /alerts {id, mrn, test, value}  a critical lab result: stored, then the clinician paged
    GET  /alerts                         {"ids": [...], "pending": [...]} (the lab's final read);
                                         ``?settle=S`` first waits up to S s for pages to go out
    GET  /reports/census                 the ward census report (a long query)
    GET  /schedule                       the day's clinic list (a medium query)
    GET  /changes?since=N                the change feed the replica follows (no pool cost)

Every write commits with ``synchronous=FULL`` before it is answered: a 200 survives a crash.

**Alerts through a transactional outbox (Buttress run).**  The alert row and a ``page`` message go
into ``ehr.db`` in one SQLite transaction (:mod:`buttress.outbox`): an accepted alert is an alert
that will be paged.  A relay thread delivers each message to the pager through the fault proxy with
the alert id as its Idempotency-Key, retried by the ``paging`` pipeline's policy until the pager
answers, then marks the alert paged.  A page whose answer was lost (the pager hung after taking it)
is answered from the pager's idempotency store when the relay tries again, not sent twice.  With
policies off there is no outbox: the alert is stored, then paged in the request, however long the
pager takes.
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
from buttress.health import HealthApp, HealthRegistry, sqlite_check
from buttress.outbox import Message, PermanentError, Relay, SQLiteOutbox
from buttress.spec import build_pipeline

from .common import DRUGS, PATIENTS, Pool, Settings, cost, interactions, seeded_medications

settings = Settings.from_env()
pager_url = settings.url("pager")
pool = Pool(int(os.environ.get("CLINICAL_POOL", "2")))
COSTS = {
    "lookup": cost("lookup", 0.01),
    "interactions": cost("interactions", 0.015),
    "write": cost("write", 0.01),
    "report": cost("report", 0.15),
    "schedule": cost("schedule", 0.04),
}
db_path = settings.data / "ehr.db"
_lock = threading.Lock()
_conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
_conn.execute("PRAGMA journal_mode = WAL")
_conn.execute("PRAGMA synchronous = FULL")
_conn.execute(
    "CREATE TABLE IF NOT EXISTS administrations (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
    "id TEXT UNIQUE NOT NULL, mrn TEXT NOT NULL, drug TEXT NOT NULL, at REAL NOT NULL)"
)
_conn.execute(
    "CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, mrn TEXT NOT NULL, test TEXT NOT "
    "NULL, value TEXT NOT NULL, paged INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL)"
)
outbox = SQLiteOutbox(db_path, queues=["page"]) if settings.policies else None
_client = httpx.Client(timeout=2.0 if settings.policies else None)


def _known(mrn: str) -> bool:
    return mrn.startswith("mrn-") and mrn[4:].isdigit() and int(mrn[4:]) < PATIENTS


def _medications(mrn: str) -> list[str]:
    with _lock:
        rows = _conn.execute("SELECT drug FROM administrations WHERE mrn = ?", (mrn,)).fetchall()
    return seeded_medications(mrn) + [r[0] for r in rows]


def _chart(row: dict[str, Any]) -> bool:
    with _lock:
        done = _conn.execute(
            "INSERT OR IGNORE INTO administrations (id, mrn, drug, at) VALUES (?, ?, ?, ?)",
            (row["id"], row["mrn"], row["drug"], time.time()),
        )
        return bool(done.rowcount == 1)


def _accept(alert: dict[str, Any]) -> bool:
    """Store the alert and (with the outbox) its page message: both or neither."""
    row = (alert["id"], alert["mrn"], alert["test"], alert["value"], time.time())
    insert = "INSERT OR IGNORE INTO alerts (id, mrn, test, value, at) VALUES (?, ?, ?, ?, ?)"
    with _lock:
        _conn.execute("BEGIN IMMEDIATE")
        try:
            created = _conn.execute(insert, row).rowcount == 1
            if created and outbox is not None:
                outbox.enqueue(_conn, "page", {"alert_id": row[0], "mrn": row[1]}, key=row[0])
            _conn.execute("COMMIT")
        except BaseException:
            _conn.execute("ROLLBACK")
            raise
        return created


def _page(alert_id: str, mrn: str) -> None:
    """Send the page (through the proxy), then mark the alert paged."""
    r = _client.post(
        f"{pager_url}/page",
        json={"alert_id": alert_id, "mrn": mrn},
        headers={"Idempotency-Key": alert_id},
    )
    if r.status_code == 409 or r.status_code >= 500:  # a repeat still running, or unavailable
        raise ConnectionError(f"pager: HTTP {r.status_code}")
    if r.status_code >= 400:  # refused for good: the ward must be phoned
        raise PermanentError(f"pager refused: {r.text[:200]}")
    with _lock:
        _conn.execute("UPDATE alerts SET paged = 1 WHERE id = ?", (alert_id,))


def _deliver(message: Message) -> None:
    _page(str(message.payload["alert_id"]), str(message.payload["mrn"]))


relay: Relay | None = None
if outbox is not None:
    retry = next(
        p for p in build_pipeline(settings.spec, "paging").policies if isinstance(p, Retry)
    )
    relay = Relay(outbox, "page", _deliver, retry=retry, lease=10.0, poll=0.1)


def _queued() -> int:
    return sum(s.pending for s in outbox.status()) if outbox is not None else 0


def _alert_ids() -> dict[str, list[str]]:
    with _lock:
        rows = _conn.execute("SELECT id, paged FROM alerts ORDER BY id").fetchall()
    return {"ids": [r[0] for r in rows], "pending": [r[0] for r in rows if not r[1]]}


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, 400)


async def patient(request: Request) -> JSONResponse:
    mrn = request.query_params.get("mrn", "")
    if not _known(mrn):
        return JSONResponse({"error": f"no patient {mrn!r}"}, 404)
    await pool.query(COSTS["lookup"])
    meds = await asyncio.to_thread(_medications, mrn)
    return JSONResponse({"mrn": mrn, "medications": meds, "source": "primary", "lag": 0.0})


async def check(request: Request) -> JSONResponse:
    mrn, drug = request.query_params.get("mrn", ""), request.query_params.get("drug", "")
    if not _known(mrn) or drug not in DRUGS:
        return _bad("need mrn (a known patient) and drug (a known drug)")
    await pool.query(COSTS["interactions"])
    meds = await asyncio.to_thread(_medications, mrn)
    found = interactions(meds, drug)
    return JSONResponse({"mrn": mrn, "drug": drug, "interactions": found, "source": "primary"})


async def administer(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        row = {"id": str(body["id"]), "mrn": str(body["mrn"]), "drug": str(body["drug"])}
    except (ValueError, KeyError, TypeError):
        return _bad("need id, mrn, drug")
    if not _known(row["mrn"]) or row["drug"] not in DRUGS:
        return _bad("unknown patient or drug")
    await pool.query(COSTS["write"])
    created = await asyncio.to_thread(_chart, row)
    return JSONResponse({"id": row["id"], "created": created})


async def alert(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        row = {k: str(body[k]) for k in ("id", "mrn", "test", "value")}
    except (ValueError, KeyError, TypeError):
        return _bad("need id, mrn, test, value")
    if not _known(row["mrn"]):
        return _bad(f"no patient {row['mrn']!r}")
    await pool.query(COSTS["write"])
    created = await asyncio.to_thread(_accept, row)
    if outbox is None and created:  # policies off: paged in the request
        try:
            await asyncio.to_thread(_page, row["id"], row["mrn"])
        except (ConnectionError, httpx.HTTPError) as e:
            return JSONResponse({"error": f"stored, not paged: {e}"[:300]}, 503)
    return JSONResponse({"id": row["id"], "created": created})


async def list_alerts(request: Request) -> JSONResponse:
    try:
        settle = min(60.0, max(0.0, float(request.query_params.get("settle", "0"))))
    except ValueError:
        return _bad("settle: a number of seconds")
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and await asyncio.to_thread(_queued) > 0:
        await asyncio.sleep(0.1)
    return JSONResponse(await asyncio.to_thread(_alert_ids))


async def census(request: Request) -> JSONResponse:
    await pool.query(COSTS["report"])
    with _lock:
        given = _conn.execute("SELECT count(*) FROM administrations").fetchone()[0]
    return JSONResponse({"patients": PATIENTS, "administrations": given})


async def schedule(request: Request) -> JSONResponse:
    await pool.query(COSTS["schedule"])
    return JSONResponse({"clinic": [f"mrn-{i:04d}" for i in range(0, PATIENTS, 10)]})


def _changes(since: int) -> dict[str, Any]:
    with _lock:
        rows = _conn.execute(
            "SELECT seq, mrn, drug FROM administrations WHERE seq > ? ORDER BY seq LIMIT 500",
            (since,),
        ).fetchall()
        last = _conn.execute("SELECT coalesce(max(seq), 0) FROM administrations").fetchone()[0]
    return {"changes": [list(r) for r in rows], "last": int(last), "at": time.time()}


async def changes(request: Request) -> JSONResponse:
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        return _bad("since: a sequence number")
    return JSONResponse(await asyncio.to_thread(_changes, since))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if relay is not None:
        relay.start()
    yield
    if relay is not None:
        relay.stop()
        relay.close()
    _client.close()
    with _lock:
        _conn.close()


health = HealthRegistry(service_id="records")
health.add(sqlite_check(db_path, ttl=0.5))
app = HealthApp(
    health,
    app=Starlette(
        routes=[
            Route("/patients", patient, methods=["GET"]),
            Route("/interactions", check, methods=["GET"]),
            Route("/administrations", administer, methods=["POST"]),
            Route("/alerts", alert, methods=["POST"]),
            Route("/alerts", list_alerts, methods=["GET"]),
            Route("/reports/census", census, methods=["GET"]),
            Route("/schedule", schedule, methods=["GET"]),
            Route("/changes", changes, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
)
