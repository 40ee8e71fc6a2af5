"""Inventory: reserves stock for an order.

POST /reserve   {order_id, sku, qty} -> 200 {"reserved": true}; 409 when out of stock.
                Idempotent on order_id: reserving the same order twice takes stock once.
GET  /stock     -> {sku: units left}
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthRegistry

from .common import Settings, with_health

settings = Settings.from_env("inventory")
stock: dict[str, int] = {f"sku-{i:02d}": 1_000_000 for i in range(20)}
reservations: dict[str, tuple[str, int]] = {}


async def reserve(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, sku, qty = str(body["order_id"]), str(body["sku"]), int(body["qty"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, sku, qty"}, status_code=400)
    if order_id in reservations:
        return JSONResponse({"reserved": True, "repeat": True})
    if stock.get(sku, 0) < qty or qty < 1:
        return JSONResponse({"error": f"{sku}: out of stock"}, status_code=409)
    stock[sku] -= qty
    reservations[order_id] = (sku, qty)
    return JSONResponse({"reserved": True})


async def show_stock(request: Request) -> JSONResponse:
    return JSONResponse(stock)


app = with_health(
    Starlette(
        routes=[
            Route("/reserve", reserve, methods=["POST"]),
            Route("/stock", show_stock, methods=["GET"]),
        ]
    ),
    HealthRegistry(service_id=settings.instance),
)
