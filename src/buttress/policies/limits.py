"""Adaptive concurrency limits, after Netflix's concurrency-limits: the policy.

The algorithms (AIMD, Vegas, Gradient2) live in :mod:`buttress.policies.limit_algorithms`, the
windowed sampler in :mod:`buttress.policies.limit_window`; both are sans-I/O and re-exported here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import LoadShed, Rejected
from buttress.events import Emitter, Event
from buttress.options import Options, custom, documented, exceptions

from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .limit_algorithms import (
    AIMD,
    AIMDOptions,
    AlgorithmOptions,
    Gradient2,
    Gradient2Options,
    LimitAlgorithm,
    Vegas,
    VegasOptions,
    algorithm_options,
    build_algorithm,
    log10_root,
)
from .limit_window import SampleWindow, WindowOptions, WindowSample, WindowSpec, window_options

__all__ = [
    "AIMD",
    "AIMDOptions",
    "AdaptiveLimit",
    "AdaptiveLimitOptions",
    "ConcurrencyLimitExceeded",
    "Gradient2",
    "Gradient2Options",
    "LimitAlgorithm",
    "LimitChanged",
    "LimitRejected",
    "SampleWindow",
    "Vegas",
    "VegasOptions",
    "WindowOptions",
    "WindowSample",
    "WindowSpec",
    "log10_root",
]


class ConcurrencyLimitExceeded(LoadShed):
    """The adaptive concurrency limit is reached: the call was refused without running.

    ``limit`` and ``inflight`` are the values seen when it was refused.
    """

    def __init__(
        self, message: str = "", *, policy: str = "", limit: int = 0, inflight: int = 0
    ) -> None:
        self.limit = limit
        self.inflight = inflight
        super().__init__(message, policy=policy)


@dataclass(frozen=True, slots=True)
class LimitChanged(Event, policy_type="adaptive_limit", kind="changed"):
    """The adaptive limit moved from ``old`` to ``new``."""

    old: int
    new: int


@dataclass(frozen=True, slots=True)
class LimitRejected(Event, policy_type="adaptive_limit", kind="rejected"):
    """A call was refused: ``inflight`` calls were running against a limit of ``limit``."""

    limit: int
    inflight: int


_NOT_SAMPLED = (Rejected, asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass(frozen=True, kw_only=True)
class AdaptiveLimitOptions(Options):
    """Options of :class:`AdaptiveLimit` (``adaptive_limit:`` in ``reliability.yaml``, where the
    algorithm's own options sit beside ``algorithm:``)."""

    policy: ClassVar[str] = "AdaptiveLimit"

    algorithm: AlgorithmOptions = custom(
        VegasOptions(),
        "The algorithm: an AIMD, Vegas or Gradient2 (or its options); Vegas is Netflix's default",
        check=algorithm_options,
        spec=True,
        shown="Vegas()",
    )
    drop_on: tuple[type[BaseException], ...] = exceptions(
        (TimeoutError,),
        "Exception types that count as drops (the dependency is overloaded); other errors are not "
        "sampled, nor are refusals by inner policies and cancellations",
    )
    window: WindowOptions | None = custom(
        None,
        "None or False: the algorithm sees every call's sample; a WindowOptions, or True for "
        "Netflix's (1 s windows of at least 10 samples, samples under 100 us ignored, the average "
        "rtt): one aggregated sample per window",
        check=window_options,
        optional=True,
        spec=True,
    )


@documented(AdaptiveLimitOptions)
class AdaptiveLimit(Policy):
    """Admit calls while fewer than the learned limit are in flight; learn the limit from each call.

    A call is admitted when ``inflight < limit`` (checked and counted under one lock) and refused
    with :class:`ConcurrencyLimitExceeded` otherwise.  ``limit`` and ``inflight`` read the state;
    every change of the limit emits :class:`LimitChanged`, and ``on_change`` callbacks (``old,
    new``) run after the lock is released.  ``clock`` is the clock rtts (and windows) are measured
    on; ``name`` the ``policy`` label in events.

    Why per-sample is the default: it is Netflix's default (``WindowedLimit`` is an explicit
    wrapper there too), it reacts within one call, and it works at any call rate, whereas a
    window of 10 samples per second never moves the limit of a dependency called fewer than 10
    times a second.  Turn windowing on for Vegas or Gradient2 in front of a dependency whose
    latency varies from call to call (see ``docs/adaptive-concurrency.md``).
    """

    kind: ClassVar[str] = "adaptive_limit"
    order: ClassVar[int] = 58

    # Slots: the hot path reads and writes these (measured slower through a __dict__).
    __slots__ = (
        "_inflight",
        "_limit",
        "_listeners",
        "_lock",
        "algorithm",
        "clock",
        "drop_on",
        "name",
        "options",
        "sample_window",
        "window",
    )

    def __init__(
        self,
        algorithm: LimitAlgorithm | AlgorithmOptions | None = AdaptiveLimitOptions.algorithm,
        *,
        drop_on: type[BaseException]
        | tuple[type[BaseException], ...] = AdaptiveLimitOptions.drop_on,
        window: WindowOptions | bool | None = AdaptiveLimitOptions.window,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "adaptive_limit",
    ) -> None:
        o = self.options = AdaptiveLimitOptions.from_arguments(locals())
        self.algorithm = (
            algorithm if isinstance(algorithm, LimitAlgorithm) else build_algorithm(o.algorithm)
        )
        self.drop_on: tuple[type[BaseException], ...] = o.drop_on
        self.window: WindowOptions | None = o.window
        """The windowing, or ``None`` when the algorithm sees every sample."""
        self.sample_window: SampleWindow | None = (
            None if o.window is None else SampleWindow(o.window)
        )
        """The running window (its counters and ``last`` closed window), when windowed."""
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._inflight = 0
        self._limit = self.algorithm.limit
        self._listeners: list[Callable[[int, int], None]] = []

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimit(name={self.name!r}, limit={self._limit}, algorithm={self.algorithm!r}"
            + ("" if self.window is None else f", window={self.window!r}")
            + ")"
        )

    @property
    def limit(self) -> int:
        """The current concurrency limit."""
        return self._limit

    @property
    def inflight(self) -> int:
        """Calls admitted and not yet finished."""
        return self._inflight

    def on_change(self, callback: Callable[[int, int], None]) -> Callable[[], None]:
        """Call ``callback(old, new)`` on every limit change.  Returns a function that removes
        it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # -- the decisions (sans-I/O apart from the lock) ----------------------------------------------

    def try_acquire(self) -> int:
        """Admit one call if ``inflight < limit``: returns the in-flight count including it (the
        sample's ``inflight``), or 0 when refused.  Pair every admission with :meth:`release`."""
        with self._lock:
            n = self._inflight
            if n >= self._limit:
                return 0
            n += 1
            self._inflight = n
            return n

    def release(
        self, rtt: float | None, inflight: int, dropped: bool = False, *, now: float | None = None
    ) -> tuple[int, int]:
        """End one admitted call; ``rtt=None`` means "not sampled".  Returns ``(old, new)``
        limits.

        ``now`` is the clock reading at the call's end, which places the sample in a window
        (read from the policy's clock when omitted; unused without windowing)."""
        win = self.sample_window
        if win is not None and rtt is not None and now is None:
            now = self.clock.monotonic()
        with self._lock:
            self._inflight -= 1
            old = self._limit
            if rtt is None:
                return old, old
            if win is None:
                new = self.algorithm.update(rtt, inflight, dropped)
            else:
                closed = win.add(now, rtt, inflight, dropped)  # type: ignore[arg-type]
                if closed is None:
                    return old, old
                new = self.algorithm.update(closed.rtt, closed.inflight, closed.dropped)
            self._limit = new
        return old, new

    def _changed(self, em: Emitter, old: int, new: int) -> None:
        if em.active:
            em.emit(LimitChanged(em.pipeline, self.name, self.clock.monotonic(), old, new))
        for cb in tuple(self._listeners):
            cb(old, new)

    def _refuse(self, em: Emitter) -> ConcurrencyLimitExceeded:
        limit, inflight = self._limit, self._inflight
        if em.active:
            em.emit(LimitRejected(em.pipeline, self.name, self.clock.monotonic(), limit, inflight))
        return ConcurrencyLimitExceeded(
            f"adaptive limit {self.name!r}: {inflight} calls in flight, limit {limit}",
            policy=self.name,
            limit=limit,
            inflight=inflight,
        )

    def _finish(self, em: Emitter, start: float, n: int, exc: BaseException) -> None:
        if isinstance(exc, self.drop_on) and not isinstance(exc, _NOT_SAMPLED):
            end = self.clock.monotonic()
            old, new = self.release(end - start, n, True, now=end)
        else:
            old, new = self.release(None, n)
        if old != new:
            self._changed(em, old, new)

    # -- executors ---------------------------------------------------------------------------------
    # The sync and async layers are twins: the same body around a call and an await.  The success
    # path feeds the algorithm inline (one lock, no extra call); a windowed limit adds the sample to
    # its window and updates the algorithm only when a window closes.

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        lock = self._lock
        update = self.algorithm.update
        add = None if self.sample_window is None else self.sample_window.add
        finish = self._finish
        changed = self._changed
        refuse = self._refuse
        direct = nxt is invoke_sync
        em = emitter
        me = self

        def adaptive_limit_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                n = me._inflight
                ok = n < me._limit
                if ok:
                    n += 1
                    me._inflight = n
            if not ok:
                raise refuse(em)
            start = mono()
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except BaseException as exc:
                finish(em, start, n, exc)
                raise
            end = mono()
            with lock:
                me._inflight -= 1
                old = new = me._limit
                if add is None:
                    new = me._limit = update(end - start, n, False)
                else:
                    closed = add(end, end - start, n, False)
                    if closed is not None:
                        new = me._limit = update(closed.rtt, closed.inflight, closed.dropped)
            if old != new:
                changed(em, old, new)
            return result

        return adaptive_limit_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        lock = self._lock
        update = self.algorithm.update
        add = None if self.sample_window is None else self.sample_window.add
        finish = self._finish
        changed = self._changed
        refuse = self._refuse
        direct = nxt is invoke_async
        em = emitter
        me = self

        async def adaptive_limit_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                n = me._inflight
                ok = n < me._limit
                if ok:
                    n += 1
                    me._inflight = n
            if not ok:
                raise refuse(em)
            start = mono()
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                finish(em, start, n, exc)
                raise
            end = mono()
            with lock:
                me._inflight -= 1
                old = new = me._limit
                if add is None:
                    new = me._limit = update(end - start, n, False)
                else:
                    closed = add(end, end - start, n, False)
                    if closed is not None:
                        new = me._limit = update(closed.rtt, closed.inflight, closed.dropped)
            if old != new:
                changed(em, old, new)
            return result

        return adaptive_limit_call_async
