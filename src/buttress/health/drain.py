"""Graceful drain: on SIGTERM fail readiness first, keep serving, then stop and let requests finish.

Why in that order: when Kubernetes (or any orchestrator) stops a pod, it sends SIGTERM and, at the
same time, starts removing the pod from the load balancers; that removal takes seconds to reach
every proxy.  A server that stops accepting at once refuses the requests still routed to it.  So::

    t = 0            SIGTERM: readiness fails (``server:draining``), requests are still served,
                     responses carry ``Connection: close`` so keep-alive clients reconnect elsewhere
    t = delay        stop accepting connections; requests in flight keep running
    t <= delay+grace every in-flight request has finished (or is cancelled at the grace limit);
                     the server exits

Pick ``delay + grace < terminationGracePeriodSeconds`` (default 30 s) so the kubelet never has to
SIGKILL: the defaults are ``delay = 5`` s (time for endpoint removal to propagate) and
``grace = 20`` s (the longest request you expect), leaving 5 s to spare.  A second SIGTERM/SIGINT
skips the rest of the delay; a third exits at once.

For uvicorn, :func:`draining_server` returns a ``uvicorn.Server`` that does all of this.  For any
other ASGI server, wrap the app with :meth:`Drainer.middleware` and call :meth:`Drainer.install`
with a function that stops your server, then await :meth:`Drainer.wait_idle`.
"""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError, MissingExtra

from .registry import HealthRegistry

if TYPE_CHECKING:
    import uvicorn

__all__ = ["DEFAULT_DRAIN_DELAY", "DEFAULT_GRACE", "Drainer", "draining_server"]

DEFAULT_DRAIN_DELAY = 5.0
DEFAULT_GRACE = 20.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _seconds(parameter: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(parameter, value, "must be a number of seconds")
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ConfigError(parameter, value, "must be finite and >= 0")
    return v


class Drainer:
    """The drain sequence's state: when it began, whether stopping is due, requests in flight.

    :param registry: the registry whose drain groups (readiness) fail while draining.
    :param delay: seconds from SIGTERM until the server stops accepting (>= 0).  Default 5.
    :param grace: seconds in-flight requests get after that (>= 0).  Default 20.
    :param clock: monotonic time.
    """

    __slots__ = ("_loop", "began", "clock", "delay", "grace", "in_flight", "registry", "skip_delay")

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        delay: float = DEFAULT_DRAIN_DELAY,
        grace: float = DEFAULT_GRACE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(registry, HealthRegistry):
            raise ConfigError("registry", registry, "must be a buttress.health.HealthRegistry")
        self.registry = registry
        self.delay = _seconds("delay", delay)
        self.grace = _seconds("grace", grace)
        self.clock = clock
        self.began: float | None = None
        self.skip_delay = False
        self.in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return (
            f"Drainer(delay={self.delay:g}, grace={self.grace:g}, draining={self.draining}, "
            f"in_flight={self.in_flight})"
        )

    @property
    def draining(self) -> bool:
        """True once :meth:`begin` was called."""
        return self.began is not None

    @property
    def stop_due(self) -> bool:
        """True once ``delay`` seconds have passed since :meth:`begin` (or the delay was
        skipped): time to stop accepting connections."""
        began = self.began
        if began is None:
            return False
        return self.skip_delay or self.clock.monotonic() - began >= self.delay

    def begin(self) -> None:
        """Start draining: the drain groups fail from now on.  Idempotent; safe in a signal
        handler (it only writes attributes)."""
        if self.began is None:
            self.began = self.clock.monotonic()
            self.registry.set_draining(True)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app``: count HTTP requests in flight, and add ``Connection: close`` to responses
        while draining so keep-alive clients move to another instance."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_closing(message: Message) -> None:
                if message["type"] == "http.response.start" and self.began is not None:
                    headers = [
                        (k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"
                    ]
                    headers.append((b"connection", b"close"))
                    message = {**message, "headers": headers}
                await send(message)

            self.in_flight += 1
            try:
                await app(scope, receive, send_closing)
            finally:
                self.in_flight -= 1

        return counted

    def install(
        self,
        stop: Callable[[], object],
        *,
        signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """For servers other than uvicorn: on the first of ``signals`` begin draining and call
        ``stop()`` (sync or async) ``delay`` seconds later; a second signal calls it at once."""
        lp = loop or asyncio.get_running_loop()
        self._loop = lp
        stopped = [False]

        def call_stop() -> None:
            if stopped[0]:
                return
            stopped[0] = True
            out = stop()
            if asyncio.iscoroutine(out):
                lp.create_task(out)

        def on_signal() -> None:
            if self.began is None:
                self.begin()
                lp.call_later(self.delay, call_stop)
            else:
                self.skip_delay = True
                call_stop()

        for sig in signals:
            lp.add_signal_handler(sig, on_signal)

    async def wait_idle(self, timeout: float | None = None, *, poll: float = 0.01) -> bool:
        """Wait until no request is in flight (counted by :meth:`middleware`), at most
        ``timeout`` seconds (default ``grace``).  Returns True when idle."""
        limit = self.grace if timeout is None else timeout
        end = self.clock.monotonic() + limit
        while self.in_flight:
            if self.clock.monotonic() >= end:
                return False
            await self.clock.sleep_async(poll)
        return True


_server_class: type[Any] | None = None


def _draining_class() -> type[Any]:
    global _server_class
    if _server_class is not None:
        return _server_class
    try:
        import uvicorn
    except ImportError:
        raise MissingExtra("draining_server", "health", "uvicorn") from None

    class DrainingServer(uvicorn.Server):
        """``uvicorn.Server`` that drains on SIGTERM/SIGINT (see :mod:`buttress.health.drain`)."""

        drainer: Drainer

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            d = self.drainer
            if not d.draining:
                d.begin()  # readiness fails now; uvicorn keeps serving until the delay is over
            elif not self.should_exit:
                d.skip_delay = True
                self.should_exit = True
            else:
                self.force_exit = True

        async def on_tick(self, counter: int) -> bool:
            if not self.should_exit and self.drainer.stop_due:
                self.should_exit = True
            return bool(await super().on_tick(counter))

    _server_class = DrainingServer
    return DrainingServer


def draining_server(config: uvicorn.Config, drainer: Drainer) -> uvicorn.Server:
    """A ``uvicorn.Server`` for ``config`` that drains with ``drainer`` on SIGTERM/SIGINT.

    The app is wrapped with :meth:`Drainer.middleware` (``Connection: close`` while draining), and
    ``config.timeout_graceful_shutdown`` is set to ``drainer.grace`` unless already set.  Run it as
    usual: ``draining_server(config, drainer).run()``.  After a drain the process exits normally
    (status 0); uvicorn's habit of re-raising the signal is skipped because the drain handled it.
    """
    if not isinstance(drainer, Drainer):
        raise ConfigError("drainer", drainer, "must be a buttress.health.Drainer")
    cls = _draining_class()
    if config.timeout_graceful_shutdown is None:
        config.timeout_graceful_shutdown = max(1, math.ceil(drainer.grace))
    if not config.loaded:
        config.load()
    config.loaded_app = drainer.middleware(config.loaded_app)
    server = cls(config)
    server.drainer = drainer
    return cast("uvicorn.Server", server)
