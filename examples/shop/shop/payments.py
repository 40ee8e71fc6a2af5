"""Payments: charges an order (runs as several instances, payments-1 ... payments-n).

POST /charge   {order_id, amount} -> 200 {"charge_id", "instance"}
               Idempotent on order_id (the Idempotency-Key of a real payment API), so the API
               may retry a charge on another instance without charging twice per instance.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthRegistry

from .common import Settings, with_health

settings = Settings.from_env("payments")
charges: dict[str, int] = {}


async def charge(request: Request) -> JSONResponse:
    try:
        body = await request.json()
        order_id, amount = str(body["order_id"]), int(body["amount"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "need order_id, amount"}, status_code=400)
    if amount <= 0:
        return JSONResponse({"error": "amount must be > 0"}, status_code=400)
    charges.setdefault(order_id, amount)
    return JSONResponse(
        {"charge_id": f"{settings.instance}:{order_id}", "instance": settings.instance}
    )


app = with_health(
    Starlette(routes=[Route("/charge", charge, methods=["POST"])]),
    HealthRegistry(service_id=settings.instance),
)
