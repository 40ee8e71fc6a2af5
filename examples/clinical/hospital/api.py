"""The clinical api (the edge every ward client calls), over records, its replica and the pager.

    GET  /patients?mrn=        patient lookup (critical)            -> records, else the replica
    GET  /interactions?mrn=&drug=  medication interaction check (critical) -> records, else replica
    POST /administrations      chart a medication given (a write)    -> records only
    POST /alerts               {order_id, ...}: accept a critical lab result alert -> records
                               (stored with its page in the outbox); 200 only once stored
    GET  /reports/census       the ward census report (sheddable)    -> records
    GET  /schedule             the day's clinic list (low)           -> records

Without ``mrn`` (or ``drug``) the api picks one at random: the load driver stands for many
clinicians looking up many patients.

With policies on (BUTTRESS_LAB_POLICIES=on) every call to records runs through the ``records``
pipeline of reliability.yaml (:func:`buttress.spec.build_pipeline`): an AIMD adaptive limit,
priority load shedding on it (reports at 20% of the limit, the clinic list at 40%, critical work
only at the limit), a breaker that opens when records refuses connections, and a timeout; writes
(idempotent on their id) are tried again when the limit refused them or they timed out (pipeline
``writes``).  The same shedder
sits at the door of the two non-critical routes, so a shed report costs nothing: 503 with
Retry-After.  Critical routes have no door: a read the primary cannot serve (refused, shed, broken,
slow) is served by the replica (pipeline ``replica``), with how old its copy is.

**Emergency mode** (``modes: emergency``, switched by remediation when charting burns its budget:
the primary cannot take writes).  Reads go straight to the replica; reports and the clinic list
are off (503 + Retry-After); writes are still offered to the primary through its breaker, so the
first write the primary takes again ends the burn and the mode.  A write the primary cannot take
is refused with a 503 saying so: nothing is half-recorded, and the ward knows to use the downtime
form (charting) or the phone (a critical result).

With policies off every call is a plain httpx call to records without a timeout, and no fallback.
"""

from __future__ import annotations

import contextlib
import random
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Pipeline
from buttress.dashboard import Publisher
from buttress.errors import LoadShed, Rejected
from buttress.health import HealthApp, HealthRegistry, breaker_check
from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy
from buttress.integrations.cancel_safe import CancelSafeTransport
from buttress.modes import ModeSwitch
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.shed import LoadShedder
from buttress.slo import LatencySLI, SLIRecorder, SLIStore
from buttress.spec import build_pipeline

from .common import DRUGS, PATIENTS, Settings, mrn

settings = Settings.from_env()
spec = settings.spec
ON = settings.policies
records_url = settings.url("records")
replica_url = settings.url("replica")

# The pipelines' timeouts cancel calls in flight, which can leak a pool slot in httpcore
# (encode/httpcore#1093): with the policies on, the calls go through a CancelSafeTransport.
_sends = httpx.AsyncHTTPTransport(
    limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
)
client = httpx.AsyncClient(
    timeout=5.0 if ON else None, transport=CancelSafeTransport(_sends) if ON else _sends
)
pipelines: dict[str, Pipeline] = {}
door: LoadShedder | None = None
if ON:
    for name in ("records", "writes", "replica"):
        pipelines[name] = build_pipeline(spec, name)
    door = next(p for p in pipelines["records"].policies if isinstance(p, LoadShedder))
modes = (
    ModeSwitch.from_spec(spec, state_file=settings.mode_file, poll=0.25)
    if ON and settings.mode_file
    else None
)
_rng = random.Random()


class Unavailable(ConnectionError):
    """A dependency answered with a server error (5xx)."""


async def _call(method: str, url: str, **kwargs: Any) -> Any:
    r = await client.request(method, url, **kwargs)
    if r.status_code >= 500:
        raise Unavailable(f"{url}: HTTP {r.status_code}")
    r.raise_for_status()
    return r.json()


async def _through(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    pipe = pipelines.get(name)
    return await fn() if pipe is None else await pipe.call_async(fn)


def _on(feature: str) -> bool:
    return modes is None or modes.is_on(feature)


def _error(e: Exception, what: str) -> JSONResponse:
    """A shed request gets Retry-After (come back); any other failure says what did not happen."""
    if isinstance(e, httpx.HTTPStatusError):  # records refused the request itself (4xx)
        return JSONResponse({"error": e.response.text[:300]}, e.response.status_code)
    if isinstance(e, LoadShed):
        return JSONResponse({"error": "shed: busy, try again"}, 503, {"Retry-After": "1"})
    return JSONResponse({"error": f"{what} ({type(e).__name__})"[:300]}, 503)


# -- reads: the primary, else the replica ------------------------------------------------------

_READ_FAILURES = (ConnectionError, TimeoutError, httpx.TransportError, Rejected)


async def _read(path: str, params: dict[str, str]) -> Any:
    if ON and _on("primary-reads"):
        with contextlib.suppress(*_READ_FAILURES):
            return await _through(
                "records", lambda: _call("GET", records_url + path, params=params)
            )
    if not ON:
        return await _call("GET", records_url + path, params=params)
    return await _through("replica", lambda: _call("GET", replica_url + path, params=params))


async def lookup(request: Request) -> JSONResponse:
    params = {"mrn": request.query_params.get("mrn") or mrn(_rng.randrange(PATIENTS))}
    try:
        return JSONResponse(await _read("/patients", params))
    except Exception as e:
        return _error(e, "no copy of the record could be read")


async def check(request: Request) -> JSONResponse:
    params = {
        "mrn": request.query_params.get("mrn") or mrn(_rng.randrange(PATIENTS)),
        "drug": request.query_params.get("drug") or _rng.choice(DRUGS),
    }
    try:
        return JSONResponse(await _read("/interactions", params))
    except Exception as e:
        return _error(e, "the interaction check could not be made: check by hand")


# -- writes: the primary only ------------------------------------------------------------------

REFUSED = "the primary record cannot take writes (emergency mode: read-only): not recorded"


async def _write(path: str, body: dict[str, Any]) -> Any:
    async def once() -> Any:
        return await _through("records", lambda: _call("POST", records_url + path, json=body))

    return await _through("writes", once)


async def administer(request: Request) -> JSONResponse:
    body = {
        "id": uuid.uuid4().hex,
        "mrn": mrn(_rng.randrange(PATIENTS)),
        "drug": _rng.choice(DRUGS),
    }
    try:
        return JSONResponse(await _write("/administrations", body))
    except Exception as e:
        return _error(e, f"{REFUSED}; use the downtime medication record")


async def alert(request: Request) -> JSONResponse:
    try:
        alert_id = str((await request.json())["order_id"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id (the alert's id)"}, 400)
    body = {
        "id": alert_id,
        "mrn": mrn(zlib.crc32(alert_id.encode())),
        "test": "potassium",
        "value": "6.9 mmol/L",
    }
    try:
        return JSONResponse(await _write("/alerts", body))
    except Exception as e:
        return _error(e, f"{REFUSED}; alert not accepted: phone the result to the ward")


# -- non-critical: shed first, off in emergency mode ----------------------------------------------


async def _optional(feature: str, path: str) -> JSONResponse:
    if not _on(feature):
        return JSONResponse(
            {"error": f"{feature} is off in emergency mode"}, 503, {"Retry-After": "5"}
        )
    try:
        return JSONResponse(await _through("records", lambda: _call("GET", records_url + path)))
    except Exception as e:
        return _error(e, f"{feature} unavailable")


async def census(request: Request) -> JSONResponse:
    return await _optional("reports", "/reports/census")


async def schedule(request: Request) -> JSONResponse:
    return await _optional("scheduling", "/schedule")


# -- SLIs, health --------------------------------------------------------------------------------

ROUTES = {
    "/patients": "lookup",
    "/interactions": "interactions",
    "/administrations": "chart",
    "/alerts": "alert",
    "/reports/census": "reports",
    "/schedule": "schedule",
}
_slis: dict[str, list[tuple[str, float | None]]] = {}
for slo in spec.slos:
    kind = getattr(slo.sli, "pipeline", None)
    if isinstance(kind, str) and kind in ROUTES.values():
        limit = slo.sli.threshold if isinstance(slo.sli, LatencySLI) else None
        _slis.setdefault(kind, []).append((slo.name, limit))
recorder = (
    SLIRecorder(SLIStore(settings.store), spec.slos, flush_every=1.0) if settings.store else None
)
if recorder is not None:
    recorder.start()


def record(route: str, good: bool, latency: float) -> None:
    """The api's own view of each SLO (the lab judges the users' view, from its driver)."""
    if recorder is None:
        return
    for name, limit in _slis.get(ROUTES.get(route, ""), ()):
        recorder.record(name, 1 if good and (limit is None or latency <= limit) else 0, 1)


publisher = Publisher(settings.store, source="api") if settings.store else None
health = HealthRegistry(service_id="api")
for pipe in pipelines.values():
    for policy in pipe.policies:
        if isinstance(policy, CircuitBreaker):
            health.add(breaker_check(policy, name=f"{pipe.name}-breaker"))
    if publisher is not None:
        publisher.watch(pipe)
if publisher is not None:
    publisher.start()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.aclose()
    if recorder is not None:
        recorder.close()
    if publisher is not None:
        publisher.close()


_DOORS = {"/reports/census", "/schedule"}  # critical routes have none: the replica serves overflow
app = HealthApp(
    health,
    app=ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/patients", lookup, methods=["GET"]),
                Route("/interactions", check, methods=["GET"]),
                Route("/administrations", administer, methods=["POST"]),
                Route("/alerts", alert, methods=["POST"]),
                Route("/reports/census", census, methods=["GET"]),
                Route("/schedule", schedule, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        routes={p: RoutePolicy(shedder=door if p in _DOORS else None) for p in ROUTES},
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
)
