"""The health endpoints as a WSGI app (Flask, Django, gunicorn sync workers).

Same routes, statuses and headers as :class:`~buttress.health.asgi.HealthApp`.  Checks run on
the registry's own event-loop thread (:meth:`HealthRegistry.respond_sync`), so async checks, the
TTL cache and single-flight coalescing work unchanged across WSGI worker threads::

    app = HealthWSGIApp(registry, app=flask_app.wsgi_app)   # probes first, the rest to Flask
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .asgi import ProbeRoutes
from .healthjson import CACHE_CONTROL, MEDIA_TYPE

__all__ = ["HealthWSGIApp"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {200: "200 OK", 404: "404 Not Found", 405: "405 Method Not Allowed"}
_REASONS[503] = "503 Service Unavailable"


class HealthWSGIApp(ProbeRoutes[WSGIApp]):
    """WSGI app answering health probes from a :class:`HealthRegistry`.

    :param registry: the checks.
    :param paths: ``path -> group`` (``"*"`` for every check).  Default the ASGI app's paths.
    :param app: a WSGI app for every other request (default: 404).
    """

    __slots__ = ()

    app_kind = "a WSGI application"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        group = self.paths.get(path)
        if group is None:
            group = self.paths.get(environ.get("SCRIPT_NAME", "") + path)
        if group is None:
            if self.app is not None:
                return self.app(environ, start_response)
            start_response(_REASONS[404], [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response(_REASONS[405], [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        status, body = self.registry.respond_sync(group)
        start_response(
            _REASONS[status],
            [
                ("Content-Type", MEDIA_TYPE),
                ("Cache-Control", CACHE_CONTROL),
                ("Content-Length", str(len(body))),
            ],
        )
        return [b"" if method == "HEAD" else body]
