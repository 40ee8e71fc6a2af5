"""The portal: the public front door of the claims service, in front of the two sites.

    POST /claims          {order_id, sku} from the load driver -> a claim filed at the active site:
                          200 with its receipt (the audit record's seq and hash), 503 otherwise
    GET  /claims/latest   the newest claim filed (a status lookup; either site may answer)

**Active-passive** (policies on): the sites are an :class:`~buttress.failover.EndpointPool` with
the primary at priority 0 and the recovery site at priority 1, and an active health check of each
site's ``/site/active`` every 0.25 s (200 only on the site holding the active role; a standby's
503 marks it unhealthy at once, a refused connection after one error).  All traffic goes to the
healthy site of the highest priority: the primary while it is active, the recovery site once it
has taken over.  The client is an :class:`~buttress.integrations.http.AsyncResilientTransport`
over that pool with the ``sites`` pipeline of reliability.yaml: a claim is retried (it carries
its id as Idempotency-Key, and the sites are idempotent on it) every 125-250 ms within the
pipeline's 2.5 s, so a request that meets the failover rides it out.  No outlier detection: a
standby's 503s are its role, not a fault, and ejecting the recovery site for them would keep it
out just when it takes over.

With the policies **off**: a plain client to the primary, no failover, no retry, no timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Retry
from buttress.failover import EndpointPool, HealthCheck
from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.asgi import ResilienceMiddleware
from buttress.integrations.http import AsyncResilientTransport
from buttress.slo import LatencySLI, SLIRecorder, SLIStore
from buttress.spec import build_pipeline

from .common import Settings

settings = Settings.from_env()
spec = settings.spec
ON = settings.policies
PRIMARY, RECOVERY = settings.url("primary"), settings.url("recovery")
# No cap on connections (a capped httpcore pool can wedge when requests are cancelled while
# connecting: encode/httpcore#1093).
_limits = httpx.Limits(max_connections=None, max_keepalive_connections=50)


def _client() -> tuple[httpx.AsyncClient, AsyncResilientTransport | None]:
    if not ON:
        plain = httpx.AsyncHTTPTransport(limits=_limits)
        return httpx.AsyncClient(base_url=PRIMARY, timeout=None, transport=plain), None
    pool = EndpointPool(
        [{"url": PRIMARY, "priority": 0, "name": "primary"},
         {"url": RECOVERY, "priority": 1, "name": "recovery"}],
        outlier_detection=None,
        health_check=HealthCheck(
            path="/site/active", interval=0.25, timeout=0.2, jitter=0.0,
            healthy_threshold=1, unhealthy_threshold=1,
        ),
        name="sites",
    )  # fmt: skip
    declared = build_pipeline(spec, "sites")
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    transport = AsyncResilientTransport(
        pool,
        attempts=retry.attempts,
        backoff=retry.backoff,
        budget=retry.budget,
        policies=[p for p in declared.policies if not isinstance(p, Retry)],
        name="sites",
        transport=httpx.AsyncHTTPTransport(limits=_limits),
    )
    return httpx.AsyncClient(transport=transport, base_url="http://sites", timeout=5.0), transport


client, sites = _client()


def _failed(e: Exception | str) -> JSONResponse:
    text = e if isinstance(e, str) else f"{type(e).__name__}: {e}"
    return JSONResponse({"error": text[:300]}, 503)


async def file_claim(request: Request) -> JSONResponse:
    try:
        order = await request.json()
        claim = {"claim_id": str(order["order_id"]), "benefit": str(order.get("sku", "")),
                 "claimant": f"person-{str(order['order_id'])[-5:]}"}  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id"}, 400)
    try:
        r = await client.post("/claims", json=claim, headers={"Idempotency-Key": claim["claim_id"]})
    except Exception as e:  # no site could record it
        return _failed(e)
    if r.status_code != 200:
        return _failed(f"site: HTTP {r.status_code} {r.text[:200]}")
    out: dict[str, Any] = r.json()
    return JSONResponse(out)


async def latest(request: Request) -> JSONResponse:
    try:
        r = await client.get("/claims/latest")
    except Exception as e:
        return _failed(e)
    if r.status_code != 200:
        return _failed(f"site: HTTP {r.status_code}")
    out: dict[str, Any] = r.json()
    return JSONResponse(out)


# -- SLIs: the SLOs are named after the request kinds (claim, lookup) ---------------------------

ROUTES = {"/claims": "claim", "/claims/latest": "lookup"}
_thresholds = {s.name: s.sli.threshold for s in spec.slos if isinstance(s.sli, LatencySLI)}
_slis = {s.sli.pipeline: s.name for s in spec.slos if isinstance(s.sli, LatencySLI)}
recorder: SLIRecorder | None = None
if settings.store is not None:
    recorder = SLIRecorder(SLIStore(settings.store), spec.slos, flush_every=1.0)
    recorder.start()


def record(route: str, good: bool, latency: float) -> None:
    name = _slis.get(route)
    if recorder is None or name is None:
        return
    recorder.record(name, 1 if good and latency <= _thresholds[name] else 0, 1)


def route_of(scope: Any) -> str:
    return ROUTES.get(str(scope.get("path", "")), "*")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    if sites is not None:
        sites.start_health_checks()
    yield
    await client.aclose()
    if recorder is not None:
        recorder.close()


app = HealthApp(
    HealthRegistry(service_id="portal"),
    app=ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/claims", file_claim, methods=["POST"]),
                Route("/claims/latest", latest, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        route_of=route_of,
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
)
