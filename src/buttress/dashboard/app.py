"""The dashboard's Starlette app and a helper that serves it with uvicorn.

Routes::

    GET /                       the page (template + bundled static files; no CDN)
    GET /api/snapshot           everything as one JSON document
    GET /api/stream             server-sent events: states, slos, journals, lab, incidents,
                                assessment, error
    GET /api/incidents          the incidents section's payload
    GET /api/journals/{file}    one journal, whole
    GET /healthz                {"status": "pass"}
    GET /static/...             charts.js, dashboard.js, CSS, vendor/uPlot.*

Everything the page needs is in the package, so the dashboard works offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from buttress.errors import ButtressError, MissingExtra

from .report import script_json
from .state import DashboardConfig, DashboardData

__all__ = ["create_app", "make_server"]


def _starlette() -> Any:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as e:
        raise MissingExtra("buttress dashboard", "dashboard", e.name or "starlette") from None


class _JSON:
    """``JSONResponse`` with NaN refused (payloads are cleaned before) and compact output."""

    @staticmethod
    def response(data: Any, status: int = 200) -> Any:
        from starlette.responses import Response

        body = json.dumps(data, separators=(",", ":"), allow_nan=False)
        return Response(
            body,
            status_code=status,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


def create_app(config: DashboardConfig, *, data: DashboardData | None = None) -> Any:
    """The Starlette app for ``config`` (opens the store and loads the spec now, so bad input fails
    here with a clear :class:`~buttress.errors.ButtressError`)."""
    _starlette()
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    from .sse import Hub

    d = data if data is not None else DashboardData(config)
    hub = Hub(d)
    pkg = resources.files("buttress.dashboard")
    templates = Jinja2Templates(directory=str(pkg.joinpath("templates")))
    static_dir = str(pkg.joinpath("static"))

    async def index(request: Request) -> Response:
        boot = {
            "store": str(config.store),
            "spec": str(config.spec) if config.spec else None,
            "journals": str(config.journals) if config.journals else None,
            "incidents": str(config.incidents) if config.incidents else None,
            "stale_after": config.stale_after,
        }
        return templates.TemplateResponse(
            request,
            "index.html",
            {"store": str(config.store), "spec": boot["spec"], "boot": script_json(boot)},
            headers={"Cache-Control": "no-store"},
        )

    async def snapshot(request: Request) -> Response:
        return _JSON.response(await asyncio.to_thread(d.snapshot))  # type: ignore[no-any-return]

    async def stream(request: Request) -> Response:
        return StreamingResponse(
            hub.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def incidents(request: Request) -> Response:
        return _JSON.response(await asyncio.to_thread(d.incidents_payload))  # type: ignore[no-any-return]

    async def journal(request: Request) -> Response:
        name = request.path_params["file"]
        try:
            body = await asyncio.to_thread(d.journal, name)
        except ButtressError as e:
            return _JSON.response({"error": str(e)}, 404)  # type: ignore[no-any-return]
        return _JSON.response(body)  # type: ignore[no-any-return]

    async def healthz(request: Request) -> Response:
        return _JSON.response({"status": "pass", "clients": hub.clients})  # type: ignore[no-any-return]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await hub.close()
            if data is None:
                d.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/snapshot", snapshot),
            Route("/api/stream", stream),
            Route("/api/incidents", incidents),
            Route("/api/journals/{file:path}", journal),
            Route("/healthz", healthz),
            Mount("/static", app=StaticFiles(directory=static_dir), name="static"),
        ],
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.data = d
    return app


def make_server(app: Any, *, host: str = "127.0.0.1", port: int = 8765) -> Any:
    """A ``uvicorn.Server`` for ``app`` (call ``.run()``, or ``.serve()`` in a loop); open event
    streams are closed within 1 s of a shutdown request."""
    try:
        import uvicorn
    except ImportError:
        raise MissingExtra("buttress dashboard", "dashboard", "uvicorn") from None

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # End the event streams first, so the connections close and shutdown is clean.
            hub = getattr(getattr(app, "state", None), "hub", None)
            if hub is not None:
                await hub.close()
            await super().shutdown(sockets)

    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    return _Server(cfg)


def static_path() -> Path:
    """Where the packaged static files are (for tools that want to copy them)."""
    return Path(str(resources.files("buttress.dashboard").joinpath("static")))
