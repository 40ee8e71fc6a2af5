"""The gateway: every tenant's requests come in here and go to the tenant's shuffle shard.

    GET /t/{tenant}/report  -> the report, from one of the tenant's backends
                               404 for an unknown tenant; 429 + Retry-After over the tier's
                               contract (policies on); 502/503 when the shard could not answer
    GET /lab/placement      -> {"tenants": {tenant: [backend instances]}, "tiers": {...}, ...}

**Tenants and tiers** come from ``SAAS_TENANTS`` (``acme=enterprise,hooli=free,...``, set in
``reliability.yaml``); each tier is a pipeline of the file's ``policies:`` (its contract: a rate
limit and a bulkhead).  **Placement**: tenant ``t`` is served by
``shuffle_shard(t, ["backend-1", ..., "backend-n"], SAAS_SHARD_SIZE)``
(:func:`buttress.failover.shuffle_shard`) in every run; the instances are reached through the
fault proxy (``BUTTRESS_LAB_UPSTREAMS["backend"]``, in instance order).

With the policies **on**, each tenant has its own copy of its tier's pipeline (its own token
bucket and its own bulkhead slots: :func:`buttress.spec.build_pipeline` builds new policies on
every call), and its own :class:`~buttress.integrations.http.AsyncResilientTransport` over its
shard's instances, with the ``shards`` pipeline's retry (the next attempt goes to the shard's other
instance) and timeouts, and outlier ejection.  A refusal by the rate limit or the bulkhead is a
429 with Retry-After: the tenant went over its contract, not the service down.  With the policies
**off**, the same placement, a plain client per tenant alternating between its shard's
instances, no limit, no retry, no timeout.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Pipeline, Retry
from buttress.errors import BulkheadFull, RateLimited
from buttress.failover import shuffle_shard
from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.asgi import ResilienceMiddleware
from buttress.integrations.http import AsyncResilientTransport
from buttress.slo import LatencySLI, SLIRecorder, SLIStore
from buttress.spec import build_pipeline

from .common import Settings, env_number

settings = Settings.from_env("gateway")
spec = settings.spec
ON = settings.policies
SHARD_SIZE = int(env_number("SAAS_SHARD_SIZE", 2))
BACKENDS = settings.upstream("backend")
INSTANCES = [f"backend-{i}" for i in range(1, len(BACKENDS) + 1)]
URL_OF = dict(zip(INSTANCES, BACKENDS, strict=True))


def _tiers(raw: str) -> dict[str, str]:
    """``SAAS_TENANTS`` as {tenant: tier}, each tier a declared pipeline."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in raw.split(","))):
        tenant, sep, tier = item.partition("=")
        if not sep or not tenant or tier not in spec.policies:
            known = ", ".join(sorted(spec.policies))
            raise SystemExit(f"SAAS_TENANTS: {item!r} must be tenant=tier, a tier one of {known}")
        out[tenant.strip()] = tier.strip()
    if not out:
        raise SystemExit("SAAS_TENANTS names no tenant")
    return out


TIERS = _tiers(os.environ.get("SAAS_TENANTS", ""))


@dataclass
class Tenant:
    """One tenant's placement and, with the policies on, its admission pipeline."""

    name: str
    tier: str
    shard: list[str]
    client: httpx.AsyncClient
    admission: Pipeline | None
    turns: Iterator[str]


def _plain_transport() -> httpx.AsyncHTTPTransport:
    # No cap on connections (see examples/shop/shop/common.py: a capped httpcore pool can wedge
    # when requests are cancelled while connecting).
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=50)
    )


def _tenant(name: str, tier: str) -> Tenant:
    shard = shuffle_shard(name, INSTANCES, SHARD_SIZE)
    urls = [URL_OF[i] for i in shard]
    if not ON:
        client = httpx.AsyncClient(timeout=None, transport=_plain_transport())
        return Tenant(name, tier, shard, client, None, itertools.cycle(urls))
    declared = build_pipeline(spec, "shards")
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    transport = AsyncResilientTransport(
        urls,
        attempts=retry.attempts,
        backoff=retry.backoff,
        budget=retry.budget,
        policies=[p for p in declared.policies if not isinstance(p, Retry)],
        name=f"shard-{name}",
        transport=_plain_transport(),
    )
    client = httpx.AsyncClient(transport=transport, base_url="http://shard", timeout=5.0)
    return Tenant(name, tier, shard, client, build_pipeline(spec, tier), itertools.cycle([""]))


TENANTS = {name: _tenant(name, tier) for name, tier in TIERS.items()}


def _refused(e: RateLimited | BulkheadFull) -> JSONResponse:
    wait = max(1, math.ceil(e.retry_after or 1.0))
    return JSONResponse({"error": str(e)}, status_code=429, headers={"Retry-After": str(wait)})


async def report(request: Request) -> JSONResponse:
    t = TENANTS.get(request.path_params["tenant"])
    if t is None:
        return JSONResponse({"error": "unknown tenant"}, status_code=404)
    path = f"{next(t.turns)}/t/{t.name}/report"
    try:
        if t.admission is not None:
            r = await t.admission.call_async(t.client.get, path)
        else:
            r = await t.client.get(path)
    except (RateLimited, BulkheadFull) as e:
        return _refused(e)
    except Exception as e:  # the shard could not answer: a server-side failure
        return JSONResponse({"error": f"{type(e).__name__}: {e}"[:300]}, status_code=503)
    if r.status_code >= 500:
        return JSONResponse({"error": f"backend: HTTP {r.status_code}"}, status_code=502)
    out: dict[str, Any] = r.json()
    return JSONResponse(out)


async def placement(request: Request) -> JSONResponse:
    """Which backends serve each tenant (read by the lab's tenant hypotheses)."""
    return JSONResponse(
        {
            "tenants": {t.name: t.shard for t in TENANTS.values()},
            "tiers": TIERS,
            "shard_size": SHARD_SIZE,
            "instances": INSTANCES,
        }
    )


# -- SLIs: each tenant's SLO is named after it ---------------------------------------------------

_thresholds = {s.name: s.sli.threshold for s in spec.slos if isinstance(s.sli, LatencySLI)}
recorder: SLIRecorder | None = None
if settings.store is not None:
    recorder = SLIRecorder(SLIStore(settings.store), spec.slos, flush_every=1.0)
    recorder.start()


def record(route: str, good: bool, latency: float) -> None:
    if recorder is None or route not in _thresholds:
        return
    recorder.record(route, 1 if good and latency <= _thresholds[route] else 0, 1)


def tenant_of(scope: Any) -> str:
    parts = str(scope.get("path", "")).split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "t" else "*"


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    for t in TENANTS.values():
        await t.client.aclose()
    if recorder is not None:
        recorder.close()


app = HealthApp(
    HealthRegistry(service_id="gateway"),
    app=ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/t/{tenant}/report", report, methods=["GET"]),
                Route("/lab/placement", placement, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        route_of=tenant_of,
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
)
