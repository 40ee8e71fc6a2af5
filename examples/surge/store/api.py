"""The storefront's api (its edge): browse and checkout, over catalogue, payments and orders.

    GET  /browse     a page of the catalogue (catalogue /products) and, unless the degraded mode
                     has switched them off, recommendations (catalogue /recommendations)
    POST /checkout   {order_id, sku, qty}: 1. price check (catalogue /price)  2. charge (payments)
                     3. store the order (orders) -> 200 {"order_id", "status"}, sent only once the
                     order is stored: an acknowledged order is a stored order

With policies on (BUTTRESS_LAB_POLICIES=on) every call runs through the pipeline of the same name
in reliability.yaml (:func:`buttress.spec.build_pipeline`):

* catalogue: an AIMD adaptive concurrency limit learns how many queries the catalogue answers in
  time, and priority load shedding on that limit refuses sheddable work (browse) at half of it,
  critical work (checkout) only at the limit.  The same shedder sits at the door (the ASGI
  middleware reads ``X-Buttress-Criticality``), so a shed browse costs nothing: 503 with
  Retry-After, no query made;
* recommendations: best effort inside browse; a timeout and a fallback to none (a refused or slow
  recommendations query leaves the page without them), and off altogether while the degraded mode
  ``recommendations-off`` is on (remediation switches it: ``BUTTRESS_LAB_MODE_STATE``);
* payments: a timeout, a budgeted retry, a circuit breaker and a fallback that *queues* the order:
  stored as ``payment_pending`` with its charge in the orders service's outbox;
* orders: a timeout and retries (the insert is idempotent on the order id).

With policies off every call is a plain httpx call without a timeout: the charge is made before
the order is stored, however long payments takes, and recommendations are always fetched.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Pipeline
from buttress.dashboard import Publisher
from buttress.errors import Rejected
from buttress.health import HealthApp, HealthRegistry, breaker_check
from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy
from buttress.integrations.cancel_safe import CancelSafeTransport
from buttress.modes import ModeSwitch
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.shed import LoadShedder
from buttress.slo import LatencySLI, SLIRecorder, SLIStore
from buttress.spec import build_pipeline

from .common import Settings

settings = Settings.from_env()
spec = settings.spec
ON = settings.policies
catalogue_url = settings.url("catalogue")
payments_url = settings.url("payments")
orders_url = settings.url("orders")

# httpcore leaks a pool slot when a request is cancelled while its connection is still being made
# (encode/httpcore#1093), which the pipelines' timeouts do: with the policies on, the requests go
# through a CancelSafeTransport, which keeps those cancellations out of the pool.  No cap on
# connections either way.
_sends = httpx.AsyncHTTPTransport(
    limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
)
client = httpx.AsyncClient(
    timeout=5.0 if ON else None, transport=CancelSafeTransport(_sends) if ON else _sends
)
pipelines: dict[str, Pipeline] = {}
door: LoadShedder | None = None
if ON:
    for name in ("catalogue", "recommendations", "payments", "orders"):
        pipelines[name] = build_pipeline(spec, name)
    door = next(p for p in pipelines["catalogue"].policies if isinstance(p, LoadShedder))
modes = (
    ModeSwitch.from_spec(spec, state_file=settings.mode_file, poll=0.25)
    if ON and settings.mode_file
    else None
)


class Unavailable(ConnectionError):
    """A dependency answered with a server error (5xx)."""


async def _get(url: str) -> Any:
    r = await client.get(url)
    if r.status_code >= 500:
        raise Unavailable(f"{url}: HTTP {r.status_code}")
    r.raise_for_status()
    return r.json()


async def _through(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    pipe = pipelines.get(name)
    return await fn() if pipe is None else await pipe.call_async(fn)


def _refused(e: Exception) -> JSONResponse:
    """A refusal (shed, over the limit, breaker open) is answered with Retry-After: the client
    may come back; any other failure without it."""
    if isinstance(e, Rejected):
        after = max(1, round(e.retry_after or 1))
        return JSONResponse({"error": f"{type(e).__name__}"}, 503, {"Retry-After": str(after)})
    return JSONResponse({"error": f"{type(e).__name__}: {e}"[:300]}, 503)


# -- browse ------------------------------------------------------------------------------------


async def recommendations(sku: str) -> list[str]:
    if modes is not None and not modes.is_on("recommendations"):
        return []

    async def query() -> Any:
        return await _through(
            "catalogue", lambda: _get(f"{catalogue_url}/recommendations?sku={sku}")
        )

    found = await _through("recommendations", query)
    return list(found["skus"]) if isinstance(found, dict) else []


async def browse(request: Request) -> JSONResponse:
    sku = request.query_params.get("sku", "sku-00")
    try:
        page = await _through("catalogue", lambda: _get(f"{catalogue_url}/products"))
        recs = await recommendations(sku)
    except Exception as e:
        return _refused(e)
    return JSONResponse({"products": page["products"], "recommended": recs})


# -- checkout ----------------------------------------------------------------------------------


async def charge(order: dict[str, Any]) -> str:
    """``paid``, or ``payment_pending`` when the payments pipeline's fallback queued it."""

    async def call() -> str:
        r = await client.post(
            f"{payments_url}/charge",
            json={"order_id": order["order_id"], "amount": order["amount"]},
            headers={"Idempotency-Key": order["order_id"]},
        )
        if r.status_code >= 500 or r.status_code == 409:
            raise Unavailable(f"payments: HTTP {r.status_code}")
        r.raise_for_status()
        return "paid"

    result = await _through("payments", call)
    return "paid" if result == "paid" else "payment_pending"


async def store(order: dict[str, Any], status: str) -> None:
    row = {k: order[k] for k in ("sku", "qty", "amount")} | {"id": order["order_id"]}

    async def call() -> None:
        r = await client.post(f"{orders_url}/orders", json=row | {"status": status})
        if r.status_code >= 500:
            raise Unavailable(f"orders: HTTP {r.status_code}")
        r.raise_for_status()

    await _through("orders", call)


async def checkout(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order = {
            "order_id": str(body["order_id"]),
            "sku": str(body["sku"]),
            "qty": int(body["qty"]),
        }
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku, qty"}, 400)
    try:
        item = await _through(
            "catalogue", lambda: _get(f"{catalogue_url}/price?sku={order['sku']}")
        )
        order["amount"] = int(item["price"]) * order["qty"]
        status = await charge(order)
        await store(order, status)
    except httpx.HTTPStatusError as e:  # the catalogue does not know the product
        return JSONResponse({"error": str(e)[:300]}, 400)
    except Exception as e:  # nothing acknowledged
        return _refused(e)
    return JSONResponse({"order_id": order["order_id"], "status": status})


# -- SLIs, health ------------------------------------------------------------------------------

ROUTES = {"/checkout": "checkout", "/browse": "browse"}
_slis: dict[str, list[tuple[str, float | None]]] = {}
for slo in spec.slos:
    kind = getattr(slo.sli, "pipeline", None)
    if kind in ROUTES.values():
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
        ok = good and (limit is None or latency <= limit)
        recorder.record(name, 1 if ok else 0, 1)


# Breaker states, adaptive limits and sheds go to the store's feed (the lab's breaker chart, the
# dashboard).
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


app = HealthApp(
    health,
    app=ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/checkout", checkout, methods=["POST"]),
                Route("/browse", browse, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        routes={path: RoutePolicy(shedder=door) for path in ROUTES},
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
)
