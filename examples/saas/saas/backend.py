"""A backend instance: serves any tenant's reports, with a fixed capacity.

    GET /t/{tenant}/report   -> 200 {"tenant", "instance"} after SAAS_COST seconds of work,
                                at most SAAS_SLOTS at once (the rest wait their turn, FIFO)

Capacity is modelled explicitly, as the shop models its datastore's: ``SAAS_SLOTS`` requests at
once, ``SAAS_COST`` seconds each (an asyncio sleep: the machine's CPU is not what saturates), so
an instance serves at most ``SAAS_SLOTS / SAAS_COST`` requests a second and a flood queues.  With
the policies on, the caller's deadline (``X-Buttress-Deadline-Ms``) bounds the work: a request
nobody waits for any more is cancelled instead of taking a slot.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from buttress.health import HealthApp, HealthRegistry
from buttress.integrations.asgi import ResilienceMiddleware

from .common import Settings, env_number

settings = Settings.from_env("backend")
SLOTS = int(env_number("SAAS_SLOTS", 2))
COST = env_number("SAAS_COST", 0.1)
_slots = asyncio.Semaphore(SLOTS)


async def report(request: Request) -> JSONResponse:
    async with _slots:
        await asyncio.sleep(COST)
    tenant = request.path_params["tenant"]
    return JSONResponse({"tenant": tenant, "instance": settings.instance})


_app = Starlette(routes=[Route("/t/{tenant}/report", report, methods=["GET"])])
app = HealthApp(
    HealthRegistry(service_id=settings.instance),
    app=ResilienceMiddleware(_app) if settings.policies else _app,
)
