"""The API front: checkout and browse, calling inventory, payments and the datastore.

    POST /checkout  {order_id, sku, qty}
                    1. reserve stock (inventory)       2. charge (payments, any instance)
                    3. store the order (datastore)     -> 200 {"order_id", "status"}
                    The 200 is sent only after the datastore committed the order: an acknowledged
                    order is a stored order.  Any step failing -> 503 (nothing acknowledged).
    GET  /browse    the catalogue (datastore)

With policies on (BUTTRESS_LAB_POLICIES=on, the default) every dependency call runs through the
pipeline of the same name in reliability.yaml, built by :func:`buttress.spec.build_pipeline`:

* inventory: timeout, retry, circuit breaker, and a fallback that *defers* the reservation: the
  order is accepted as ``reserve_pending`` (stock is plentiful; a reconciler would settle it);
* payments: an :class:`~buttress.integrations.http.AsyncResilientTransport` over every payments
  instance (least-request selection, outlier ejection, retries on another instance with the
  pipeline's retry settings; charges are idempotent per order, so a POST may be retried), bounded
  by the pipeline's total and per-attempt timeouts;
* datastore: timeout and retry (the insert is idempotent on the order id);
* browse: a bulkhead on catalogue queries (at most 3 at once), a timeout, and a fallback that
  serves the last catalogue it read (stale but useful) when the bulkhead is full or the query slow;
  in a degraded mode with ``live-catalogue`` off (switched by the lab's remediation rules,
  ``BUTTRESS_LAB_MODE_STATE``), the last catalogue without asking the datastore at all.

The ASGI middleware turns the caller's ``X-Buttress-Deadline-Ms`` into a deadline and records the
SLIs of both routes into the store, and counts them for Prometheus (``GET /metrics``:
``buttress_sli_events_total{sli, outcome}``, beside Buttress's policy events).  With policies
off every call is a plain httpx call without a timeout, spread round-robin over the payments
instances; the SLIs are recorded the same way.
With ``typical`` every call is protected the way a team does it without Buttress (tenacity,
pybreaker, client timeouts: :mod:`shop.typical`).  In every mode each attempt sent to a dependency
is counted (``GET /lab/attempts``), for the lab's load-amplification figures.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Pipeline, Retry
from buttress.health import HealthRegistry, breaker_check
from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy
from buttress.integrations.cancel_safe import CancelSafeTransport
from buttress.integrations.http import AsyncResilientTransport
from buttress.modes import ModeSwitch
from buttress.policies.breaker import CircuitBreaker
from buttress.slo import LatencySLI
from buttress.spec import build_pipeline
from buttress.telemetry.prometheus import SLICounter

from . import typical
from .common import AttemptCounter, Settings, with_health

settings = Settings.from_env("api")
spec = settings.spec
ON = settings.mode == "on"
TYPICAL = settings.mode == "typical"
PRICES = {f"sku-{i:02d}": 500 + 125 * i for i in range(20)}


class Unavailable(ConnectionError):
    """A dependency answered with a server error (5xx): it is there but cannot serve."""


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 500:
        raise Unavailable(f"{what}: HTTP {response.status_code}")
    return response


# -- clients -----------------------------------------------------------------------------------

inventory_url = settings.url("inventory")
datastore_url = settings.url("datastore")
payment_urls = settings.upstream("payments")
attempts = AttemptCounter(settings.upstreams)  # every attempt sent to each dependency
if TYPICAL:
    plain = typical.client(attempts.transport())
else:
    # With the policies on, the pipelines' timeouts cancel calls in flight: the transport keeps
    # those cancellations out of httpx's connection pool (buttress.integrations.cancel_safe).
    sends = attempts.transport()
    plain = httpx.AsyncClient(
        timeout=5.0 if ON else None, transport=CancelSafeTransport(sends) if ON else sends
    )
pipelines: dict[str, Pipeline] = {}
protected = {n: typical.Protected(n) for n in ("inventory", "payments", "datastore", "browse")}
payments_client: httpx.AsyncClient

if ON:
    for name in ("inventory", "datastore", "browse"):
        pipelines[name] = build_pipeline(spec, name)
    declared = build_pipeline(spec, "payments")
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    payments_client = httpx.AsyncClient(
        transport=AsyncResilientTransport(
            payment_urls,
            attempts=retry.attempts,
            backoff=retry.backoff,
            budget=retry.budget,
            retry_methods={"POST"},
            policies=[p for p in declared.policies if not isinstance(p, Retry)],
            name="payments",
            transport=attempts.transport(),
        ),
        base_url="http://payments",
        timeout=5.0,
    )
else:
    payments_client = plain
_round_robin = itertools.cycle(payment_urls)


async def _through(name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    pipe = pipelines.get(name)
    if pipe is not None:
        return await pipe.call_async(fn)
    if TYPICAL:
        return await protected[name].call(fn)
    return await fn()


# -- the steps of a checkout -------------------------------------------------------------------


async def reserve(order: dict[str, Any]) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        r = _check(await plain.post(f"{inventory_url}/reserve", json=order), "inventory")
        if r.status_code == 409:
            return {"reserved": False, "error": r.json().get("error", "out of stock")}
        r.raise_for_status()
        out: dict[str, Any] = r.json()
        return out

    try:
        result = await _through("inventory", call)
    except Exception:
        if not TYPICAL:
            raise
        result = None  # the typical run's own fallback: the same business rule, in plain code
    return result if isinstance(result, dict) else {"reserved": "deferred"}


async def charge(order: dict[str, Any]) -> None:
    body = {"order_id": order["order_id"], "amount": order["amount"]}
    headers = {"Idempotency-Key": order["order_id"]}
    if ON:
        r = await payments_client.post("/charge", json=body, headers=headers)
    elif TYPICAL:

        async def call() -> httpx.Response:
            url = f"{next(_round_robin)}/charge"  # a retry goes to the next instance
            return _check(await plain.post(url, json=body, headers=headers), "payments")

        r = await _through("payments", call)
    else:
        r = await plain.post(f"{next(_round_robin)}/charge", json=body, headers=headers)
    _check(r, "payments").raise_for_status()


async def store(order: dict[str, Any], status: str) -> None:
    row = {
        "id": order["order_id"],
        "sku": order["sku"],
        "qty": order["qty"],
        "amount": order["amount"],
        "status": status,
    }

    async def call() -> None:
        _check(await plain.post(f"{datastore_url}/orders", json=row), "datastore")

    await _through("datastore", call)


# -- routes ------------------------------------------------------------------------------------


async def checkout(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        sku, qty = str(body["sku"]), int(body["qty"])
        order = {"order_id": str(body["order_id"]), "sku": sku, "qty": qty}
        order["amount"] = PRICES[sku] * qty
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku (sku-00..sku-19), qty"}, 400)
    try:
        reservation = await reserve(order)
        if reservation.get("reserved") is False:
            return JSONResponse({"error": reservation.get("error")}, 409)
        status = "reserve_pending" if reservation.get("reserved") == "deferred" else "confirmed"
        await charge(order)
        await store(order, status)
    except Exception as e:  # any failed step: nothing acknowledged
        return JSONResponse({"error": f"{type(e).__name__}: {e}"[:300]}, 503)
    return JSONResponse({"order_id": order["order_id"], "status": status})


_last_catalogue: list[Any] = []
# The degraded mode remediation switches in the lab's Buttress run (a file the lab writes): in a
# mode that has "live-catalogue" off, browse serves the last catalogue read without asking the
# datastore, which keeps its connections for the orders.
_mode_file = settings.mode_file
modes = ModeSwitch.from_spec(spec, state_file=_mode_file, poll=0.25) if _mode_file else None


async def browse(request: Request) -> JSONResponse:
    if modes is not None and _last_catalogue and not modes.is_on("live-catalogue"):
        return JSONResponse({"products": _last_catalogue[0], "stale": True})

    async def call() -> Any:
        r = _check(await plain.get(f"{datastore_url}/products"), "datastore")
        return r.json()["products"]

    try:
        products = await _through("browse", call)
    except Exception as e:
        if not (TYPICAL and _last_catalogue):
            return JSONResponse({"error": f"{type(e).__name__}: {e}"[:300]}, 503)
        products = None  # the typical run's own fallback: the last catalogue read
    if products is None:  # the fallback: serve the last catalogue read, marked stale
        if not _last_catalogue:
            return JSONResponse({"error": "catalogue unavailable"}, 503)
        return JSONResponse({"products": _last_catalogue[0], "stale": True})
    _last_catalogue[:] = [products]
    return JSONResponse({"products": products})


async def attempts_seen(request: Request) -> JSONResponse:
    """Every attempt sent to each dependency, per second (read by the lab after the run)."""
    return JSONResponse(attempts.to_json())


# -- SLIs, health, states ----------------------------------------------------------------------

_thresholds = {slo.name: slo.sli.threshold for slo in spec.slos if isinstance(slo.sli, LatencySLI)}
ROUTE_SLIS = {"/checkout": "checkout", "/browse": "browse"}
recorder = settings.recorder()
publisher = settings.publisher()


# The same SLI events as a Prometheus counter (GET /metrics), for `buttress lab --prometheus`.
sli_events = SLICounter(list(ROUTE_SLIS.values()))


def record(route: str, good: bool, latency: float) -> None:
    sli = ROUTE_SLIS.get(route)
    if sli is None:
        return
    limit = _thresholds.get(sli)
    ok = 1 if good and (limit is None or latency <= limit) else 0
    sli_events.record(sli, ok, 1)
    if recorder is not None:
        recorder.record(sli, ok, 1)


health = HealthRegistry(service_id="api")
for pipe in pipelines.values():
    for policy in pipe.policies:
        if isinstance(policy, CircuitBreaker):
            health.add(breaker_check(policy, name=f"{pipe.name}-breaker"))
    if publisher is not None:
        publisher.watch(pipe)  # breakers and bulkheads, into the store's feed tables
if publisher is not None:
    publisher.start()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await plain.aclose()
    if payments_client is not plain:
        await payments_client.aclose()
    settings.close()


app = with_health(
    ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/checkout", checkout, methods=["POST"]),
                Route("/browse", browse, methods=["GET"]),
                Route("/lab/attempts", attempts_seen, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        routes={path: RoutePolicy() for path in ROUTE_SLIS},  # names the routes for the SLIs
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
    health,
)
