"""The catalogue: product listings, prices, and recommendations, all on one product database.

    GET /products           a page of the catalogue (a browse)            cost LIST_COST
    GET /price?sku=sku-07   one product's price and availability (checkout) cost PRICE_COST
    GET /recommendations    "customers also bought": a join over orders     cost RECS_COST

Capacity is modelled as a database server has it: at most ``POOL`` queries run at once (a
connection pool, FIFO), each holding its connection for its cost in seconds.  SQLite answers a
20-row catalogue far too fast for a laptop to overload it; the model is what the lab needs, and it
is written in reliability.yaml (``experiments.system.catalogue.env``).  The figures, and why
recommendations cost four times a listing, are in docs/examples/surge.md.

Every kind of query shares the pool: a price check a checkout needs waits behind the browsing
queries ahead of it.  That is what makes a browsing surge a checkout outage unless the api limits
what it sends here (its adaptive limit) and sheds browsing first.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthApp, HealthRegistry

POOL = int(os.environ.get("SURGE_CATALOGUE_POOL", "4"))
LIST_COST = float(os.environ.get("SURGE_LIST_COST", "0.03"))
PRICE_COST = float(os.environ.get("SURGE_PRICE_COST", "0.01"))
RECS_COST = float(os.environ.get("SURGE_RECS_COST", "0.12"))
PRODUCTS = [{"sku": f"sku-{i:02d}", "price": 500 + 125 * i} for i in range(20)]
PRICES = {p["sku"]: p["price"] for p in PRODUCTS}

_pool: asyncio.Semaphore | None = None


async def query(cost: float) -> None:
    """Hold one of the pool's connections for ``cost`` seconds (waiting for one first)."""
    global _pool
    if _pool is None:
        _pool = asyncio.Semaphore(POOL)
    async with _pool:
        await asyncio.sleep(cost)


async def products(request: Request) -> JSONResponse:
    await query(LIST_COST)
    return JSONResponse({"products": PRODUCTS})


async def price(request: Request) -> JSONResponse:
    sku = request.query_params.get("sku", "")
    if sku not in PRICES:
        return JSONResponse({"error": f"unknown sku {sku!r} (sku-00..sku-19)"}, 404)
    await query(PRICE_COST)
    return JSONResponse({"sku": sku, "price": PRICES[sku], "available": True})


async def recommendations(request: Request) -> JSONResponse:
    sku = request.query_params.get("sku", "sku-00")
    await query(RECS_COST)
    n = int(sku[-2:]) if sku[-2:].isdigit() else 0
    return JSONResponse({"skus": [f"sku-{(n + k) % 20:02d}" for k in (1, 2, 3)]})


app = HealthApp(
    HealthRegistry(service_id="catalogue"),
    app=Starlette(
        routes=[
            Route("/products", products, methods=["GET"]),
            Route("/price", price, methods=["GET"]),
            Route("/recommendations", recommendations, methods=["GET"]),
        ]
    ),
)
