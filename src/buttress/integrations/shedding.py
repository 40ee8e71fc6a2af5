"""ASGI middleware for priority load shedding.

Reads each request's criticality from a header (``X-Buttress-Criticality:
sheddable|low|high|critical``), asks a :class:`~buttress.policies.shed.LoadShedder` whether to admit
it, and either runs the app with the criticality set for everything the request does (so nested
pipelines see it too) or answers at once::

    HTTP/1.1 503 Service Unavailable
    Retry-After: 1
    Content-Type: text/plain; charset=utf-8

    shed: low request at utilisation 7/10

The request holds its place from the moment it is admitted until the app has sent the whole
response. Pure ASGI 3: works under uvicorn, hypercorn, Starlette, FastAPI and anything else speaking
ASGI; it needs no dependency.  Non-HTTP scopes (lifespan, websockets) pass through untouched.

::

    from buttress.integrations import LoadSheddingMiddleware
    from buttress.policies.shed import LoadShedder

    app = LoadSheddingMiddleware(app, LoadShedder(64))
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from buttress.errors import ConfigError
from buttress.events import Emitter
from buttress.policies.shed import Criticality, LoadShedder, criticality, parse_criticality

__all__ = ["DEFAULT_HEADER", "LoadSheddingMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_HEADER = "X-Buttress-Criticality"

_BY_LABEL = {c.label: c for c in Criticality}


class LoadSheddingMiddleware:
    """Shed HTTP requests by criticality, answering ``503`` with ``Retry-After``.

    :param app: the ASGI app to protect.
    :param shedder: the :class:`LoadShedder` deciding (default: ``LoadShedder(100)``, its own limit
        of 100 concurrent requests).
    :param header: the request header carrying the class.  Default ``X-Buttress-Criticality``.
    :param default: the class of requests without the header, or with a value that names no class
        (a client cannot escalate by sending garbage).  Default: the shedder's ``default``.
    :param status: the status of a shed response (``4xx``/``5xx``).  Default 503.
    :param exempt_paths: paths never shed and not counted (health checks, metrics).
    :param emitter: where :class:`~buttress.policies.shed.Shed` events go (default an emitter named
        ``"asgi"``, which global listeners reach).

    ``Retry-After`` is the shedder's ``retry_after`` rounded up to whole seconds (at least 1), as
    HTTP requires.
    """

    __slots__ = (
        "_header",
        "_retry_after",
        "app",
        "default",
        "emitter",
        "exempt_paths",
        "shedder",
        "status",
    )

    def __init__(
        self,
        app: ASGIApp,
        shedder: LoadShedder | None = None,
        *,
        header: str = DEFAULT_HEADER,
        default: str | Criticality | None = None,
        status: int = 503,
        exempt_paths: Iterable[str] = (),
        emitter: Emitter | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigError("app", app, "must be an ASGI application")
        if shedder is None:
            shedder = LoadShedder(100)
        if not isinstance(shedder, LoadShedder):
            raise ConfigError("shedder", shedder, "must be a LoadShedder")
        if not isinstance(header, str) or not header.strip():
            raise ConfigError("header", header, "must be a non-empty header name")
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ConfigError("status", status, "must be an HTTP error status (400-599)")
        self.app = app
        self.shedder = shedder
        self._header = header.strip().lower().encode("latin-1")
        self.default = shedder.default if default is None else parse_criticality(default, "default")
        self.status = status
        self.exempt_paths = frozenset(exempt_paths)
        self.emitter = emitter if emitter is not None else Emitter("asgi")
        self._retry_after = str(max(1, math.ceil(shedder.retry_after))).encode("ascii")

    def __repr__(self) -> str:
        header = self._header.decode("latin-1")
        return f"LoadSheddingMiddleware({self.shedder!r}, header={header!r}, status={self.status})"

    def _class_of(self, scope: Scope) -> Criticality:
        name = self._header
        for k, v in scope.get("headers", ()):
            if k == name:
                found = _BY_LABEL.get(v.decode("latin-1").strip().lower())
                return self.default if found is None else found
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        shedder = self.shedder
        c = self._class_of(scope)
        if not shedder.try_acquire(c):
            await self._shed(c, send)
            return
        try:
            with criticality(c):
                await self.app(scope, receive, send)
        finally:
            shedder.release()

    async def _shed(self, c: Criticality, send: Send) -> None:
        shedder = self.shedder
        shedder.report_shed(c, self.emitter)
        body = f"shed: {c.label} request at utilisation {shedder.inflight}/{shedder.limit}\n"
        payload = body.encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"retry-after", self._retry_after),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(payload)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
