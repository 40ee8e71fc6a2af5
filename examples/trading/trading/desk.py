"""The desk: the firm's order management system, the entry point of the lab's load.

    POST /orders   {order_id, sku, qty}: a trader's new order -> 200 {"order_id", "site", ...}
                   once the venue has acknowledged it
    POST /algo     the same, sent by an automated strategy (the kill switch's subject)
    POST /cancel   cancels the oldest working order -> 200 with the venue's answer
    GET  /quote    ?symbol=SYM07 -> the best bid and offer, from either site

**Both sites are active.**  With the policies on (``BUTTRESS_LAB_POLICIES=on``) every call goes
through one :class:`~buttress.failover.EndpointPool` of the two sites' gateways: least-request
selection, and outlier ejection (:data:`OUTLIERS`: three failed or timed-out attempts in a row
take a site out for 2 s, longer if it keeps failing), so a site lost costs a few connection
attempts, not orders.  Two :class:`~buttress.integrations.http.AsyncResilientTransport` share the
pool, one per path of ``reliability.yaml``:

* ``orders`` (new orders and cancels): a total timeout, and a **hedge** with an adaptive delay (the
  95th percentile of recent answers, clamped to 5-20 ms): an order the first site has not
  acknowledged by then is sent to the other site too, with the **same Idempotency-Key** (the order
  id), so the venue places it once whichever copy arrives first.  A retry on the other site when
  both copies failed; hedges and retries draw on one retry budget.
* ``quotes``: the same hedge, so a quote stuck behind a slow cache rebuild on one site is answered
  by the other (Dean and Barroso, "The Tail at Scale").

The deadline travels as the time left (``X-Buttress-Deadline-Ms``): the driver's, capped by each
path's timeout, counted down by each site on its own monotonic clock (see
:mod:`trading.gateway` on clock skew).

**The kill switch.**  The ``algo`` pipeline is the strategy's pre-trade message throttle: over its
rate, orders are refused with 503 + Retry-After.  A runaway strategy burns its SLO's budget fast;
remediation then switches the degraded mode ``kill-switch`` on (``BUTTRESS_LAB_MODE_STATE``), and
while it is on the strategy's new orders are refused at once with a 403 (definitive: retrying will
not help) and never reach a site, while cancels, quotes and the traders' own orders go on.  It is
switched off once the burn has cleared.

With the policies **off**: a plain client taking the sites in turn, no timeout, no hedge, no
throttle, no kill switch.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress import Pipeline, Retry
from buttress.errors import Rejected
from buttress.failover import EndpointPool, OutlierDetection
from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy
from buttress.integrations.http import AsyncResilientTransport
from buttress.modes import ModeSwitch
from buttress.slo import LatencySLI, SLIRecorder, SLIStore
from buttress.spec import build_pipeline

from .common import Settings

settings = Settings.from_env("desk")
spec = settings.spec
ON = settings.policies
SITES = settings.upstream("gateway")
OUTLIERS = OutlierDetection(
    interval=1.0,
    base_ejection_time=2.0,
    max_ejection_time=10.0,
    consecutive_5xx=3,
    consecutive_gateway_failure=3,
    enforcing_consecutive_gateway_failure=100.0,
)
"""A site is out after three failed (5xx, refused) or timed-out attempts in a row, for 2 s, then
4 s, 6 s... while it keeps failing; with two sites, at most one is ever out."""


def _plain() -> httpx.AsyncHTTPTransport:
    # No cap on connections: a capped httpcore pool can wedge when requests are cancelled while
    # connecting (encode/httpcore#1093).
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
    )


def desk_transport(
    pool: EndpointPool, name: str, inner: httpx.AsyncBaseTransport | None = None
) -> AsyncResilientTransport:
    """The declared pipeline ``name`` as a transport over the sites' pool: its retry becomes the
    transport's, the rest (the total timeout, the hedge) keeps its place in the pipeline's order;
    every attempt reads the whole answer (``read_body``): an httpx transport returns at the
    headers, and a site whose answers are late in the middle (the headers on time, the body 100 ms
    later: what the lab's latency storm does to each part of an answer) would otherwise look fast
    to the hedge, which would call it the winner and cancel the copy on the other site.  Measured
    while building the example, 250 quotes in a storm on one site: 6 and 7 of them over 100 ms
    without it, hedges and all; 3 and 0 with it."""
    declared = build_pipeline(spec, name)
    retry = next(p for p in declared.policies if isinstance(p, Retry))
    return AsyncResilientTransport(
        pool,
        attempts=retry.attempts,
        backoff=retry.backoff,
        budget=retry.budget,
        policies=[p for p in declared.policies if not isinstance(p, Retry)],
        name=name,
        read_body=True,
        transport=inner if inner is not None else _plain(),
    )


pool: EndpointPool | None = None
throttle: Pipeline | None = None
if ON:
    pool = EndpointPool(SITES, outlier_detection=OUTLIERS, name="sites")
    orders_client = httpx.AsyncClient(
        transport=desk_transport(pool, "orders"), base_url="http://sites", timeout=5.0
    )
    quotes_client = httpx.AsyncClient(
        transport=desk_transport(pool, "quotes"), base_url="http://sites", timeout=5.0
    )
    throttle = build_pipeline(spec, "algo")
else:
    orders_client = quotes_client = httpx.AsyncClient(timeout=None, transport=_plain())
_turns = itertools.cycle(SITES)
modes = (
    ModeSwitch.from_spec(spec, state_file=settings.mode_file, poll=0.1)
    if ON and settings.mode_file
    else None
)
working: collections.deque[str] = collections.deque()
"""Orders acknowledged and not yet cancelled, oldest first (what /cancel cancels)."""


def _url(path: str) -> str:
    """The path on the sites: through the pool (policies on), or the next site in turn."""
    return path if ON else f"{next(_turns)}{path}"


def _refused(e: Exception) -> JSONResponse:
    if isinstance(e, Rejected):  # the throttle: come back later
        after = max(1, round(e.retry_after or 1))
        return JSONResponse({"error": type(e).__name__}, 503, {"Retry-After": str(after)})
    return JSONResponse({"error": f"{type(e).__name__}: {e}"[:300]}, 503)


def _order(body: Any) -> dict[str, Any]:
    """The load driver's ``{order_id, sku, qty}`` as an order: ``sku-07`` trades ``SYM07``."""
    order_id, sku, qty = str(body["order_id"]), str(body["sku"]), int(body["qty"])
    n = int(sku[-2:]) if sku[-2:].isdigit() else 0
    return {
        "order_id": order_id,
        "symbol": f"SYM{n:02d}",
        "side": "buy" if n % 2 else "sell",
        "qty": 100 * qty,
        "price": 10_000 + 25 * n,
    }


async def _place(order: dict[str, Any]) -> JSONResponse:
    r = await orders_client.post(
        _url("/orders"), json=order, headers={"Idempotency-Key": order["order_id"]}
    )
    if r.status_code == 200:
        working.append(order["order_id"])
        return JSONResponse(r.json())
    if 400 <= r.status_code < 500 and r.status_code not in (409, 429):
        return JSONResponse({"error": r.text[:300]}, 400)  # refused: definitely not placed
    return JSONResponse({"error": f"sites: HTTP {r.status_code}"}, 503)


async def new_order(request: Request) -> JSONResponse:
    try:
        order = _order(await request.json())
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku, qty"}, 400)
    try:
        return await _place(order)
    except Exception as e:  # nothing acknowledged
        return _refused(e)


async def algo_order(request: Request) -> JSONResponse:
    try:
        order = _order(await request.json())
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku, qty"}, 400)
    if modes is not None and not modes.is_on("algo-orders"):
        return JSONResponse({"error": "kill switch: the strategy's new orders are stopped"}, 403)
    try:
        if throttle is not None:
            placed: JSONResponse = await throttle.call_async(_place, order)
            return placed
        return await _place(order)
    except Exception as e:
        return _refused(e)


async def cancel(request: Request) -> JSONResponse:
    if not working:
        return JSONResponse({"status": "nothing to cancel"})
    order_id = working.popleft()
    try:
        r = await orders_client.post(
            _url("/cancel"),
            json={"order_id": order_id},
            headers={"Idempotency-Key": f"cancel-{order_id}"},
        )
    except Exception as e:
        working.appendleft(order_id)  # still working: the next cancel tries it again
        return _refused(e)
    if r.status_code != 200:
        working.appendleft(order_id)
        return JSONResponse({"error": f"sites: HTTP {r.status_code}"}, 503)
    return JSONResponse(r.json())


async def quote(request: Request) -> JSONResponse:
    symbol = request.query_params.get("symbol", "SYM00")
    try:
        r = await quotes_client.get(_url("/quote"), params={"symbol": symbol})
    except Exception as e:
        return _refused(e)
    if r.status_code != 200:
        return JSONResponse({"error": f"sites: HTTP {r.status_code}"}, 503)
    return JSONResponse(r.json())


# -- SLIs (the desk's own view; the lab judges the users'), health ------------------------------

ROUTES = {"/orders": "order", "/algo": "algo", "/cancel": "cancel", "/quote": "quote"}
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
    if recorder is None:
        return
    for name, limit in _slis.get(ROUTES.get(route, ""), ()):
        recorder.record(name, 1 if good and (limit is None or latency <= limit) else 0, 1)


async def _warm_up() -> None:
    """Open the connections to both sites (and theirs to the venue) before the first order, as a
    desk logs its sessions on before the market opens: a quote and a cancel of an order that does
    not exist, a few times over, so the pool's least-request choice reaches both sites."""
    for _ in range(4):
        with contextlib.suppress(Exception):
            await quotes_client.get(_url("/quote"), params={"symbol": "SYM00"})
            await orders_client.post(_url("/cancel"), json={"order_id": "warm-up"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await _warm_up()
    yield
    await orders_client.aclose()
    if quotes_client is not orders_client:
        await quotes_client.aclose()
    if recorder is not None:
        recorder.close()


app = HealthApp(
    HealthRegistry(service_id="desk"),
    app=ResilienceMiddleware(
        Starlette(
            routes=[
                Route("/orders", new_order, methods=["POST"]),
                Route("/algo", algo_order, methods=["POST"]),
                Route("/cancel", cancel, methods=["POST"]),
                Route("/quote", quote, methods=["GET"]),
            ],
            lifespan=lifespan,
        ),
        routes={path: RoutePolicy() for path in ROUTES},
        deadline_header="X-Buttress-Deadline-Ms" if ON else None,
        recorder=record,
    ),
)
