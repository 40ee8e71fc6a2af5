"""Replica: a read-only copy of the patient record, for reads when the primary cannot answer.

    GET /patients?mrn=...                the patient, as of the replica's last change applied
    GET /interactions?mrn=...&drug=...   the interaction check, on the same copy
    GET /replication                     {"applied": seq, "lag": seconds since the primary last
                                         answered the feed}

What a hospital keeps for its downtime (a read-only "business continuity" copy of the record): it
starts from the same seeded data as the primary and follows the primary's change feed
(``GET /changes`` through the fault proxy) every 0.25 s.  When the primary is lost the copy stops
moving but keeps answering: every answer says how old it is (``lag``), so a clinician reading it
knows what it may be missing.  If the primary's feed goes back (it was restored from a backup), the
copy starts over from the primary's.  Reads cost connections of the replica's own pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthApp, HealthRegistry

from .common import DRUGS, PATIENTS, Pool, Settings, cost, interactions, seeded_medications

settings = Settings.from_env()
records_url = settings.url("records")
pool = Pool(int(os.environ.get("CLINICAL_POOL", "2")))
LOOKUP, CHECK = cost("lookup", 0.01), cost("interactions", 0.015)
_charted: dict[str, list[str]] = {}
_state = {"applied": 0, "synced_at": time.time()}


def _known(mrn: str) -> bool:
    return mrn.startswith("mrn-") and mrn[4:].isdigit() and int(mrn[4:]) < PATIENTS


def _lag() -> float:
    return round(max(0.0, time.time() - _state["synced_at"]), 3)


async def _follow(client: httpx.AsyncClient) -> None:
    """Apply the primary's changes, forever; a failed poll leaves the copy as it is."""
    while True:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            r = await client.get(f"{records_url}/changes", params={"since": _state["applied"]})
            if r.status_code == 200:
                feed = r.json()
                if int(feed["last"]) < _state["applied"]:  # the primary went back: start over
                    _charted.clear()
                    _state["applied"] = 0
                    continue
                for seq, mrn, drug in feed["changes"]:
                    _charted.setdefault(str(mrn), []).append(str(drug))
                    _state["applied"] = int(seq)
                if len(feed["changes"]) < 500:
                    _state["synced_at"] = float(feed["at"])
                    await asyncio.sleep(0.25)
                continue
        await asyncio.sleep(0.25)


def _medications(mrn: str) -> list[str]:
    return seeded_medications(mrn) + list(_charted.get(mrn, ()))


async def patient(request: Request) -> JSONResponse:
    mrn = request.query_params.get("mrn", "")
    if not _known(mrn):
        return JSONResponse({"error": f"no patient {mrn!r}"}, 404)
    await pool.query(LOOKUP)
    return JSONResponse(
        {"mrn": mrn, "medications": _medications(mrn), "source": "replica", "lag": _lag()}
    )


async def check(request: Request) -> JSONResponse:
    mrn, drug = request.query_params.get("mrn", ""), request.query_params.get("drug", "")
    if not _known(mrn) or drug not in DRUGS:
        return JSONResponse({"error": "need mrn (a known patient) and drug (a known drug)"}, 400)
    await pool.query(CHECK)
    found = interactions(_medications(mrn), drug)
    return JSONResponse(
        {"mrn": mrn, "drug": drug, "interactions": found, "source": "replica", "lag": _lag()}
    )


async def replication(request: Request) -> JSONResponse:
    return JSONResponse({"applied": _state["applied"], "lag": _lag()})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    client = httpx.AsyncClient(timeout=1.0)
    task = asyncio.create_task(_follow(client))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await client.aclose()


app = HealthApp(
    HealthRegistry(service_id="replica"),
    app=Starlette(
        routes=[
            Route("/patients", patient, methods=["GET"]),
            Route("/interactions", check, methods=["GET"]),
            Route("/replication", replication, methods=["GET"]),
        ],
        lifespan=lifespan,
    ),
)
