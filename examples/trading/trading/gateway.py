"""A site's order gateway (gateway-1 in site A, gateway-2 in site B): both sites active at once.

    POST /orders   {order_id, symbol, side, qty, price} + Idempotency-Key
                   -> pre-trade risk checks, then the site's own session on the venue
                   (venue-1 for site A, venue-2 for site B) -> the venue's acknowledgement, with
                   this site's ``transact_time`` (its wall clock) and ``site``
    POST /cancel   {order_id} -> the venue's answer
    GET  /quote    ?symbol=SYM07 -> {"symbol", "bid", "ask", "site"} from the site's market-data
                   cache: most quotes take well under a millisecond, ``TRADING_QUOTE_SLOW_SHARE``
                   of them (a cache rebuild, a GC pause) ``TRADING_QUOTE_SLOW`` seconds

**Deadlines and clock skew.**  With the policies on, the caller's deadline arrives as the time it
has *left* (``X-Buttress-Deadline-Ms``, read by
:class:`~buttress.integrations.asgi.ResilienceMiddleware`), counted down on this process's
monotonic clock: the call to the venue is cut off when the desk has stopped waiting, and the
answer is a 504 instead of an order placed after the trader gave up.  Nothing in it reads the wall
clock, so a site whose wall clock is off (``TRADING_CLOCK_SKEW``: gateway-2 runs 2.5 s ahead)
honours the same deadlines as the other; only the ``transact_time`` it stamps shows its skew.  An
absolute deadline ("expire at 12:00:00.250") compared with that clock would have expired every
order 2.5 s early on site B (docs/examples/trading.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.asgi import ResilienceMiddleware

from .common import Settings, SkewedClock, env_number

settings = Settings.from_env("gateway")
clock = SkewedClock(settings.skew)
VENUES = settings.upstream("venue")
venue_url = VENUES[settings.index % len(VENUES)]  # this site's session on the venue
SLOW_SHARE = env_number("TRADING_QUOTE_SLOW_SHARE", 0.03)
SLOW = env_number("TRADING_QUOTE_SLOW", 0.08)
MAX_QTY = 10_000  # the fat-finger limit of the pre-trade risk checks
_rng = random.Random()

client = httpx.AsyncClient(
    timeout=5.0 if settings.policies else None,
    transport=httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)
    ),
)


def _risk(order: dict[str, Any]) -> str | None:
    """Pre-trade risk checks (SEC rule 15c3-5 asks for them before an order reaches a venue)."""
    if order.get("side") not in ("buy", "sell"):
        return "side must be buy or sell"
    qty, price = order.get("qty"), order.get("price")
    if not isinstance(qty, int) or not 0 < qty <= MAX_QTY:
        return f"qty must be 1..{MAX_QTY}"
    if not isinstance(price, int) or price <= 0:
        return "price must be > 0"
    return None


async def _forward(path: str, body: Any, headers: dict[str, str]) -> JSONResponse:
    r = await client.post(f"{venue_url}{path}", json=body, headers=headers)
    if r.status_code >= 500:
        return JSONResponse({"error": f"venue: HTTP {r.status_code}"}, 502)
    out = r.json()
    if isinstance(out, dict) and r.status_code == 200:
        out |= {"site": settings.instance, "transact_time": round(clock.wall(), 3)}
    return JSONResponse(out, r.status_code)


async def new_order(request: Request) -> JSONResponse:
    try:
        order = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be JSON"}, 400)
    problem = _risk(order) if isinstance(order, dict) else "the body must be an object"
    if problem is not None:
        return JSONResponse({"error": problem}, 400)
    key = request.headers.get("idempotency-key")
    return await _forward("/orders", order, {"Idempotency-Key": key} if key else {})


async def cancel(request: Request) -> JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"error": "the body must be JSON"}, 400)
    return await _forward("/cancel", body, {})


async def quote(request: Request) -> JSONResponse:
    symbol = request.query_params.get("symbol", "SYM00")
    if _rng.random() < SLOW_SHARE:
        await asyncio.sleep(SLOW)
    n = int(symbol[-2:]) if symbol[-2:].isdigit() else 0
    mid = 10_000 + 25 * n
    return JSONResponse(
        {"symbol": symbol, "bid": mid - 1, "ask": mid + 1, "site": settings.instance}
    )


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await client.aclose()


_app = Starlette(
    routes=[
        Route("/orders", new_order, methods=["POST"]),
        Route("/cancel", cancel, methods=["POST"]),
        Route("/quote", quote, methods=["GET"]),
    ],
    lifespan=lifespan,
)
app = HealthApp(
    HealthRegistry(service_id=settings.instance),
    app=ResilienceMiddleware(_app, clock=clock) if settings.policies else _app,
)
