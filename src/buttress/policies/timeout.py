"""Timeouts: a bound on one attempt or on the whole call, carried as a deadline.

``Timeout(seconds)`` sets a deadline of ``now + seconds`` (or keeps an earlier one already in force) for
everything nested under it, so retries stop sleeping past it and integrations pass the remaining time on.

* **asyncio**: the awaited work is cancelled when the time is up, and the policy raises
  :class:`~buttress.errors.DeadlineExceeded` (``scope="total"``) or
  :class:`~buttress.errors.AttemptTimeout` (``scope="attempt"``, retryable).
* **threads, cooperative** (default): Python cannot interrupt a running function, so the deadline bounds
  every *wait* inside it (retry sleeps, bulkhead queues, integrations that read
  :func:`buttress.remaining`).  If the deadline has already passed when the layer is entered, the call is
  not started.
* **threads, hard** (``hard=True``): the call runs in a worker thread and the caller stops waiting at the
  deadline.  The worker is *not* stopped: it runs to completion in the background and its result is
  discarded; at most ``max_workers`` such calls run at once, further calls queue.  Use it only for calls
  that are safe to abandon.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from ..clock import SYSTEM_CLOCK, Clock
from ..context import _DEADLINE
from ..errors import AttemptTimeout, ConfigError, DeadlineExceeded
from ..events import DeadlineHit, Emitter, TimeoutEvent
from .base import AsyncNext, Policy, SyncNext, invoke_sync

__all__ = ["Timeout"]


class Timeout(Policy):
    """Bound a call (``scope="total"``, the default) or each attempt (``scope="attempt"``).

    :param seconds: the bound, ``> 0``.
    :param hard: sync only; run the call in a worker thread and stop waiting at the bound.
    :param max_workers: worker threads for ``hard`` timeouts.
    """

    kind: ClassVar[str] = "timeout"
    __slots__ = ("_pool", "clock", "hard", "max_workers", "name", "scope", "seconds")

    def __init__(
        self,
        seconds: float,
        *,
        scope: Literal["total", "attempt"] = "total",
        hard: bool = False,
        max_workers: int = 32,
        clock: Clock = SYSTEM_CLOCK,
        name: str | None = None,
    ) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds < math.inf
        ):
            raise ConfigError("seconds", seconds, "a timeout must be a finite number > 0")
        if scope not in ("total", "attempt"):
            raise ConfigError("scope", scope, "must be 'total' or 'attempt'")
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError("max_workers", max_workers, "must be an integer >= 1")
        self.seconds = float(seconds)
        self.scope = scope
        self.hard = hard
        self.max_workers = max_workers
        self.clock = clock
        self.name = name or ("timeout" if scope == "total" else "attempt_timeout")
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def order(self) -> int:  # type: ignore[override]
        # Total timeout sits outside the retry; an attempt timeout innermost.
        return 20 if self.scope == "total" else 70

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g}, scope={self.scope!r}, hard={self.hard})"

    def _error(self) -> Exception:
        if self.scope == "attempt":
            return AttemptTimeout(self.seconds, policy=self.name)
        return DeadlineExceeded(f"timed out after {self.seconds:g}s", policy=self.name)

    def _event(self, em: Emitter) -> None:
        cls = TimeoutEvent if self.scope == "attempt" else DeadlineHit
        em.emit(cls(em.pipeline, self.name, self.clock.monotonic(), self.seconds))

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = _DEADLINE
        em = emitter
        if self.hard:
            return self._hard_layer(nxt, emitter)
        direct = nxt is invoke_sync

        def timeout_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            now = mono()
            at = now + seconds
            outer = var.get()
            if outer is not None and outer < at:
                if outer <= now:
                    if em.active:
                        self._event(em)
                    raise self._error()
                at = outer
            token = var.set(at)
            try:
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            finally:
                var.reset(token)

        return timeout_call

    def _hard_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = _DEADLINE

        def hard_timeout_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            at = now + seconds
            outer = var.get()
            if outer is not None and outer < at:
                at = outer
            if at <= now:
                if emitter.active:
                    self._event(emitter)
                raise self._error()
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix=f"buttress-{self.name}"
                )
            token = var.set(at)
            try:
                ctx = contextvars.copy_context()
            finally:
                var.reset(token)
            future = self._pool.submit(ctx.run, nxt, fn, args, kwargs)
            try:
                return future.result(timeout=max(0.0, at - mono()))
            except concurrent.futures.TimeoutError:
                future.cancel()
                if emitter.active:
                    self._event(emitter)
                raise self._error() from None

        return hard_timeout_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = _DEADLINE
        em = emitter

        async def timeout_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            at = now + seconds
            outer = var.get()
            if outer is not None and outer < at:
                at = outer
            left = at - now
            if left <= 0:
                if em.active:
                    self._event(em)
                raise self._error()
            token = var.set(at)
            try:
                async with asyncio.timeout(left) as cm:
                    return await nxt(fn, args, kwargs)
            except TimeoutError:
                if cm.expired():
                    if em.active:
                        self._event(em)
                    raise self._error() from None
                raise
            finally:
                var.reset(token)

        return timeout_call_async
