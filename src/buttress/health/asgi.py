"""The health endpoints as a pure ASGI 3 app (no dependency), mountable anywhere.

Default routes (``GET`` and ``HEAD``)::

    /health/live     -> liveness       /health/ready    -> readiness
    /health/started  -> startup        /health          -> every check ("*")

Each answers ``application/health+json`` with ``Cache-Control: no-cache``: 200 for ``pass`` and
``warn``, 503 for ``fail``.  Other methods get 405; other paths 404, or go to the wrapped ``app``.

Use it on its own, in front of an app, or mounted::

    app = HealthApp(registry)                        # serve only the probes
    app = HealthApp(registry, app=my_app)            # probes first, everything else to my_app
    Starlette(routes=[Mount("/health", app=HealthApp(registry))])   # in Starlette / FastAPI
    fastapi_app.mount("/health", HealthApp(registry))

Paths are matched against the full path and against the path below the mount point
(``root_path``), so both ``/health/ready`` and ``/ready`` work under ``Mount("/health")``.  When
the app receives the ASGI lifespan (as the top-level app, or wrapping one), it starts the registry's
background refresh at startup and stops it at shutdown; mounted apps do not get lifespan events in
Starlette, so the refresh also starts on the first probe.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, ClassVar, Generic, TypeVar

from buttress.errors import ConfigError

from .healthjson import CACHE_CONTROL, MEDIA_TYPE
from .registry import ALL, LIVENESS, READINESS, STARTUP, HealthRegistry

__all__ = ["DEFAULT_PATHS", "HealthApp", "ProbeRoutes", "resolve_paths"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_PATHS: Mapping[str, str] = {
    "/health/live": LIVENESS,
    "/health/ready": READINESS,
    "/health/started": STARTUP,
    "/health": ALL,
}


def resolve_paths(registry: HealthRegistry, paths: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a ``path -> group`` mapping against ``registry`` (unknown groups and paths not
    starting with ``/`` raise :class:`~buttress.errors.ConfigError`)."""
    if not isinstance(registry, HealthRegistry):
        raise ConfigError("registry", registry, "must be a buttress.health.HealthRegistry")
    table = dict(DEFAULT_PATHS if paths is None else paths)
    if not table:
        raise ConfigError("paths", paths, "must map at least one path to a group")
    for path, group in table.items():
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("paths", path, "each path must start with '/'")
        registry.check_group("paths", group, allow_all=True)
    return table


_NOT_FOUND = b"not found"


_App = TypeVar("_App")


@functools.lru_cache(maxsize=64)  # bodies of a few sizes: keep their header lists
def _probe_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", _MEDIA),
        (b"cache-control", _NO_CACHE),
        (b"content-length", str(length).encode()),
    ]


class ProbeRoutes(Generic[_App]):
    """What the ASGI and WSGI health apps share: the registry, which path probes which group, and
    the app for every other request."""

    __slots__ = ("app", "paths", "registry")

    app_kind: ClassVar[str] = "an application"
    """What ``app`` must be, in words (for :class:`~buttress.errors.ConfigError`)."""

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        paths: Mapping[str, str] | None = None,
        app: _App | None = None,
    ) -> None:
        self.paths = resolve_paths(registry, paths)
        self.registry = registry
        if app is not None and not callable(app):
            raise ConfigError("app", app, f"must be {self.app_kind}")
        self.app = app

    def __repr__(self) -> str:
        return f"{type(self).__name__}(paths={self.paths!r})"


class HealthApp(ProbeRoutes[ASGIApp]):
    """ASGI app answering health probes from a :class:`HealthRegistry`.

    :param registry: the checks.
    :param paths: ``path -> group`` (``"*"`` for every check).  Default :data:`DEFAULT_PATHS`.
    :param app: an ASGI app for every other request (and for lifespan/websocket scopes).
    """

    __slots__ = ()

    app_kind = "an ASGI application"

    def _group(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        group = self.paths.get(path)
        if group is None:
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                group = self.paths.get(path[len(root) :] or "/")
        return group

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            group = self._group(scope)
            if group is not None:
                await self._probe(scope, send, group)
                return
            if self.app is not None:
                await self.app(scope, receive, send)
                return
            await _plain(send, 404, _NOT_FOUND)
            return
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self.app is not None:
            await self.app(scope, receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def _probe(self, scope: Scope, send: Send, group: str) -> None:
        method = scope["method"]
        if method not in {"GET", "HEAD"}:
            await send(
                {
                    "type": "http.response.start",
                    "status": 405,
                    "headers": [(b"allow", b"GET, HEAD"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        status, body = await self.registry.respond(group)
        headers = _probe_headers(len(body))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        registry = self.registry
        if self.app is None:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await registry.start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await registry.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await registry.start()
            elif message["type"] == "lifespan.shutdown":
                await registry.stop()
            return message

        assert self.app is not None
        await self.app(scope, wrapped_receive, send)


_MEDIA = MEDIA_TYPE.encode()
_NO_CACHE = CACHE_CONTROL.encode()


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
