"""ASGI middleware: the caller's deadline, per-route bulkheads and priority shedding, SLI events.

::

    from buttress import Bulkhead, LoadShedder
    from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy

    orders = Bulkhead(32, max_queue=64, max_wait=0.5)
    app = ResilienceMiddleware(
        app,
        routes={"/orders": RoutePolicy(bulkhead=orders, shedder=LoadShedder(orders))},
        recorder=lambda route, good, latency: print(route, good, latency),
    )

Per HTTP request (pure ASGI 3, no dependency; lifespan and websocket scopes pass through)::

    route = route_of(scope), else the longest matching prefix in `routes`, else "*"
    X-Buttress-Deadline-Ms: n   -> the request runs under buttress.deadline(n / 1000)
                                   (capped by max_deadline); n == 0 -> 504 at once
    shedder (by X-Buttress-Criticality)   -> 503 + Retry-After when shed
    bulkhead (queue, max_wait, deadline)  -> 503 + Retry-After when full
    the app                                  (cancelled at the deadline -> 504 if nothing was sent)
    recorder(route, good, latency_s)         good: status < 500

**Deadline.** The header is the one :class:`buttress.integrations.http.ResilientTransport`
sends: the caller's remaining time in milliseconds.  Inside the request :func:`buttress.remaining`
answers it, so retries stop sleeping past it and outgoing calls pass it on.  With
``enforce_deadline`` (default) the app is *cancelled* when the time is up: nobody is waiting for
the answer any more, so the work stops.  A value that is not a number, or is negative, is ignored
(a client bug must not fail requests).

**Shedding** reuses :class:`~buttress.integrations.shedding.LoadSheddingMiddleware` per route, so
the criticality header, ``Retry-After`` and :class:`~buttress.policies.shed.Shed` events are the
same.  Give the shedder the route's bulkhead as its capacity to shed by the bulkhead's utilisation.

**SLI events.** ``recorder`` is any ``record(route, good, latency_seconds)`` callable, or a
:class:`buttress.slo.SLIRecorder` (each route is then an SLI of that name; see :func:`slo_recorder`
to map routes to SLIs and count slow responses as bad).  Shed and refused requests count as bad: the
client did not get its answer.  A recorder that raises is logged and never breaks the request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import deadline
from buttress.errors import BulkheadFull, ConfigError, DeadlineExceeded
from buttress.events import Emitter
from buttress.options import check_seconds
from buttress.policies.base import invoke_async
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.shed import LoadShedder

from .shedding import DEFAULT_HEADER as CRITICALITY_HEADER
from .shedding import LoadSheddingMiddleware

__all__ = [
    "DEADLINE_HEADER",
    "ResilienceMiddleware",
    "RoutePolicy",
    "SLIRecorderLike",
    "slo_recorder",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Recorder = Callable[[str, bool, float], None]

DEADLINE_HEADER = "X-Buttress-Deadline-Ms"
_log = logging.getLogger("buttress.integrations.asgi")


class SLIRecorderLike(Protocol):
    """What :func:`slo_recorder` needs: :meth:`buttress.slo.SLIRecorder.record`."""

    def record(self, sli: str, good: int, total: int) -> None: ...


def slo_recorder(
    recorder: SLIRecorderLike,
    sli: str | Mapping[str, str] | None = None,
    *,
    latency_threshold: float | None = None,
) -> Recorder:
    """Adapt a :class:`buttress.slo.SLIRecorder` to the middleware's ``recorder``.

    :param sli: the SLI name for every route (a string), per route (a mapping; unmapped routes are
        not recorded), or ``None``: the route itself.
    :param latency_threshold: seconds; a slower answer counts as bad (a latency SLI).
    """
    if not callable(getattr(recorder, "record", None)):
        raise ConfigError("recorder", recorder, "must have record(sli, good, total)")
    if latency_threshold is not None:
        check_seconds("latency_threshold", latency_threshold, gt=0)
    names = dict(sli) if isinstance(sli, Mapping) else None

    def record(route: str, good: bool, latency: float) -> None:
        if names is not None:
            name = names.get(route)
            if name is None:
                return
        else:
            name = sli if isinstance(sli, str) else route
        ok = good and (latency_threshold is None or latency <= latency_threshold)
        recorder.record(name, 1 if ok else 0, 1)

    return record


class RoutePolicy:
    """What protects one route: a :class:`~buttress.Bulkhead`, a
    :class:`~buttress.LoadShedder`, both or neither."""

    __slots__ = ("bulkhead", "shedder")

    def __init__(
        self, *, bulkhead: Bulkhead | None = None, shedder: LoadShedder | None = None
    ) -> None:
        if bulkhead is not None and not isinstance(bulkhead, Bulkhead):
            raise ConfigError("bulkhead", bulkhead, "must be a buttress.Bulkhead")
        if shedder is not None and not isinstance(shedder, LoadShedder):
            raise ConfigError("shedder", shedder, "must be a buttress.LoadShedder")
        self.bulkhead = bulkhead
        self.shedder = shedder

    def __repr__(self) -> str:
        return f"RoutePolicy(bulkhead={self.bulkhead!r}, shedder={self.shedder!r})"


async def _send_refusal(send: Send, status: int, retry_after: str | None, text: str) -> None:
    body = text.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if retry_after is not None:
        headers.insert(0, (b"retry-after", retry_after.encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _BulkheadApp:
    """Runs the app inside the bulkhead's own asyncio layer (its queue, wait bound, deadline and
    events, sent to the middleware's emitter); answers 503 with Retry-After when it is full."""

    __slots__ = ("app", "layer", "retry_after")

    def __init__(
        self, app: ASGIApp, bulkhead: Bulkhead, retry_after: str, emitter: Emitter
    ) -> None:
        self.app = app
        self.layer = bulkhead.async_layer(invoke_async, emitter)
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.layer(self.app, (scope, receive, send), {})
        except BulkheadFull as e:
            await _send_refusal(send, 503, self.retry_after, f"{e}\n")


class ResilienceMiddleware:
    """Deadline propagation, per-route bulkheads and shedding, and SLI recording for an ASGI app.

    :param app: the ASGI application.
    :param routes: path prefix -> :class:`RoutePolicy`; the longest prefix matching a request's
        path applies (``"/orders"`` matches ``/orders`` and ``/orders/42``, not ``/ordersx``), and
        names the route in SLI events.
    :param default: the policy of requests no prefix matches (default none), route ``"*"``.
    :param route_of: ``scope -> route name`` instead of prefixes (its result must be a key of
        ``routes`` to get that route's policy).
    :param deadline_header: the header with the caller's remaining time in milliseconds (default
        ``X-Buttress-Deadline-Ms``; ``None``: not read).
    :param max_deadline: a cap, in seconds, on any deadline a caller asks for (default none).
    :param enforce_deadline: cancel the app when the deadline passes (default ``True``); ``False``:
        the deadline is only advice (:func:`buttress.remaining`).
    :param recorder: ``record(route, good, latency_seconds)``, or an object with
        ``record(sli, good, total)`` (:class:`buttress.slo.SLIRecorder`).
    :param criticality_header: the shedders' criticality header (default
        ``X-Buttress-Criticality``).
    :param retry_after: seconds suggested in ``Retry-After`` when a bulkhead refuses (default 1).
    :param exempt_paths: paths passed straight through (health checks, metrics).
    :param clock: the clock of deadlines and latencies.
    :param emitter: where shedding and bulkhead events go (default an emitter named ``"asgi"``).
    """

    __slots__ = (
        "_chains",
        "_default_chain",
        "_header",
        "_prefixes",
        "app",
        "clock",
        "emitter",
        "enforce_deadline",
        "exempt_paths",
        "max_deadline",
        "recorder",
        "route_of",
    )

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Mapping[str, RoutePolicy] | None = None,
        default: RoutePolicy | None = None,
        route_of: Callable[[Scope], str] | None = None,
        deadline_header: str | None = DEADLINE_HEADER,
        max_deadline: float | None = None,
        enforce_deadline: bool = True,
        recorder: Recorder | SLIRecorderLike | None = None,
        criticality_header: str = CRITICALITY_HEADER,
        retry_after: float = 1.0,
        exempt_paths: Iterable[str] = (),
        clock: Clock = SYSTEM_CLOCK,
        emitter: Emitter | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigError("app", app, "must be an ASGI application")
        routes = dict(routes or {})
        for prefix, policy in routes.items():
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                raise ConfigError(f"routes[{prefix!r}]", prefix, "a route must start with '/'")
            if not isinstance(policy, RoutePolicy):
                raise ConfigError(f"routes[{prefix!r}]", policy, "must be a RoutePolicy")
        if default is not None and not isinstance(default, RoutePolicy):
            raise ConfigError("default", default, "must be a RoutePolicy or None")
        if route_of is not None and not callable(route_of):
            raise ConfigError("route_of", route_of, "must be callable: scope -> route name")
        if deadline_header is not None and (
            not isinstance(deadline_header, str) or not deadline_header.strip()
        ):
            raise ConfigError("deadline_header", deadline_header, "must be a header name or None")
        if max_deadline is not None:
            check_seconds("max_deadline", max_deadline, gt=0)
        check_seconds("retry_after", retry_after, gt=0)
        if recorder is not None and not callable(recorder):
            if not callable(getattr(recorder, "record", None)):
                raise ConfigError(
                    "recorder", recorder, "must be record(route, good, latency) or an SLIRecorder"
                )
            recorder = slo_recorder(recorder)
        self.app = app
        self.route_of = route_of
        self._header = (
            deadline_header.strip().lower().encode("latin-1") if deadline_header else None
        )
        self.max_deadline = None if max_deadline is None else float(max_deadline)
        self.enforce_deadline = bool(enforce_deadline)
        self.recorder: Recorder | None = recorder
        self.exempt_paths = frozenset(exempt_paths)
        self.clock = clock
        self.emitter = emitter if emitter is not None else Emitter("asgi")
        ra = str(max(1, math.ceil(retry_after)))

        def chain(route: str, policy: RoutePolicy | None) -> ASGIApp:
            inner: ASGIApp = app
            if policy is None:
                return inner
            if policy.bulkhead is not None:
                inner = _BulkheadApp(inner, policy.bulkhead, ra, self.emitter)
            if policy.shedder is not None:
                inner = LoadSheddingMiddleware(
                    inner, policy.shedder, header=criticality_header, emitter=self.emitter
                )
            return inner

        self._chains = {route: chain(route, p) for route, p in routes.items()}
        self._default_chain = chain("*", default)
        self._prefixes = sorted(routes, key=len, reverse=True)

    def __repr__(self) -> str:
        return f"ResilienceMiddleware(routes={list(self._chains)})"

    # -- per request -------------------------------------------------------------------------------

    def _route(self, scope: Scope) -> tuple[str, ASGIApp]:
        if self.route_of is not None:
            name = self.route_of(scope)
            return name, self._chains.get(name, self._default_chain)
        path: str = scope.get("path", "")
        for prefix in self._prefixes:
            if path.startswith(prefix) and (
                len(path) == len(prefix) or path[len(prefix)] == "/" or prefix.endswith("/")
            ):
                return prefix, self._chains[prefix]
        return "*", self._default_chain

    def _deadline_of(self, scope: Scope) -> float | None:
        name = self._header
        if name is None:
            return None
        for k, v in scope.get("headers", ()):
            if k == name:
                try:
                    ms = float(v.decode("latin-1"))
                except ValueError:
                    return None
                if not 0 <= ms < math.inf:
                    return None
                seconds = ms / 1000.0
                if self.max_deadline is not None:
                    seconds = min(seconds, self.max_deadline)
                return seconds
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        mono = self.clock.monotonic
        start = mono()
        route, target = self._route(scope)
        seconds = self._deadline_of(scope)
        status = [0]

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if seconds is None:
                await target(scope, receive, send_tracking)
            elif seconds <= 0:
                await _send_refusal(send_tracking, 504, None, "deadline already passed\n")
            elif self.enforce_deadline:
                try:
                    async with deadline(seconds, clock=self.clock):
                        await target(scope, receive, send_tracking)
                except DeadlineExceeded:
                    if status[0] == 0:
                        await _send_refusal(
                            send_tracking, 504, None, f"deadline of {seconds:g}s exceeded\n"
                        )
            else:
                with deadline(seconds, clock=self.clock):
                    await target(scope, receive, send_tracking)
        except BaseException:
            if status[0] == 0:
                status[0] = 500
            raise
        finally:
            rec = self.recorder
            if rec is not None:
                try:
                    rec(route, 0 < status[0] < 500, mono() - start)
                except Exception:
                    _log.exception("SLI recorder %r failed for route %r", rec, route)
