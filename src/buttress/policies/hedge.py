"""Hedging: when a call is slow, start another copy of it and take whichever answers first.

Algorithm (for one call)::

    start attempt 1
    loop:
        wait until an attempt finishes, or ``delay`` has passed since the last attempt started
        a success                      -> the winner: cancel every other attempt, return its result
        a failure (an ``on`` error)    -> start the next attempt now (if any are left and the budget
        allows) a rejection (Rejected)         -> start no more attempts; keep waiting for those in
        flight any other error                -> final: cancel the others and raise it
        the delay passed               -> start the next attempt (if any are left and the budget
        allows) nothing in flight, none left   -> raise the last error (a real failure before a
        rejection)

At most ``1 + max_hedges`` attempts run for one call.  Each extra attempt takes one token from the
retry budget (:meth:`~buttress.policies.budget.Budget.try_withdraw`); without a token no more hedges
start for this call and a ``budget_exhausted`` event is emitted.  The call deposits one request into
the budget (``counts_requests`` budgets), unless ``count_requests=False`` (use that when the same
budget is shared with a :class:`~buttress.policies.retry.Retry` in the same pipeline, which already
deposits).

The delay is fixed (``delay``), or adaptive (``percentile=p``): the p-quantile (nearest rank) of the
latencies of the last ``samples`` winning attempts (each from its start to the hedge seeing its
answer, as the caller waits), clamped to ``[min_delay, max_delay]``; ``delay``
is used until ``min_samples`` latencies are known.  The quantile is recomputed every
``refresh_every`` observations, so observing costs O(1) amortised plus a sort of ``samples`` values
per refresh.

asyncio: each attempt is a task; losers are cancelled and awaited, so nothing is left running.

Threads (``threads=True``): attempts run in a thread pool of ``max_workers``.  A loser that has not
started is cancelled; one already running **cannot be stopped** (Python has no way to kill a
thread): it runs to the end in the background and its result is discarded.  Hedge only idempotent
calls whose abandoned copies are harmless.  Without ``threads=True`` the sync path does not hedge
(it calls straight through).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import Rejected
from buttress.events import Emitter, Event
from buttress.options import (
    Options,
    check_order,
    custom,
    documented,
    duration,
    exceptions,
    flag,
    integer,
    number,
    number_or_none,
)

from .base import AsyncNext, Policy, SyncNext
from .budget import Budget, BudgetOptions, RetryBudgetOptions, budget_options, build_budget

__all__ = [
    "HedgeOptions",
    "AdaptiveDelay",
    "Hedge",
    "HedgeBudgetExhausted",
    "HedgeLaunched",
    "HedgeLosersCancelled",
    "HedgeWon",
]


@dataclass(frozen=True, slots=True)
class HedgeLaunched(Event, policy_type="hedge", kind="launched"):
    """Attempt number ``attempt`` (2 = the first hedge) started; ``reason``: ``delay`` or
    ``failure``."""

    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class HedgeWon(Event, policy_type="hedge", kind="won"):
    """Attempt ``attempt`` answered first, out of ``launched`` attempts (emitted when hedges
    ran)."""

    attempt: int
    launched: int


@dataclass(frozen=True, slots=True)
class HedgeLosersCancelled(Event, policy_type="hedge", kind="losers_cancelled"):
    count: int


@dataclass(frozen=True, slots=True)
class HedgeBudgetExhausted(Event, policy_type="hedge", kind="budget_exhausted"):
    attempt: int


def _min_le_max(o: HedgeOptions | AdaptiveDelayOptions) -> None:
    check_order("min_delay", o.min_delay, "max_delay", o.max_delay)


@dataclass(frozen=True, kw_only=True)
class AdaptiveDelayOptions(Options):
    """Options of :class:`AdaptiveDelay` (a hedge with ``percentile`` builds one from its own)."""

    policy: ClassVar[str] = "AdaptiveDelay"

    percentile: float = number(0.95, "The quantile of the latencies that is the delay", gt=0, le=1)
    initial: float = duration(0.05, "The delay until min_samples latencies are known")
    samples: int = integer(1000, "Latencies remembered", ge=1)
    min_samples: int = integer(20, "Latencies needed before the delay adapts", ge=1)
    refresh_every: int = integer(50, "Observations between two computations of the quantile", ge=1)
    min_delay: float = duration(0.0, "The shortest delay, in seconds")
    max_delay: float | None = duration(
        None, "The longest delay, in seconds; None: no bound", optional=True
    )

    def check(self) -> None:
        _min_le_max(self)


@documented(AdaptiveDelayOptions)
class AdaptiveDelay:
    """The hedge delay from recent latencies (sans-I/O; thread-safe).

    ``current()`` is the ``percentile`` quantile (nearest rank: the value at index
    ``ceil(p * n) - 1`` of the sorted samples) of the last ``samples`` observed latencies, clamped
    to ``[min_delay, max_delay]``; ``initial`` until ``min_samples`` latencies have been observed.
    """

    __slots__ = ("_count", "_current", "_i", "_lock", "_ring", "options")

    def __init__(
        self,
        *,
        percentile: float = AdaptiveDelayOptions.percentile,
        initial: float = AdaptiveDelayOptions.initial,
        samples: int = AdaptiveDelayOptions.samples,
        min_samples: int = AdaptiveDelayOptions.min_samples,
        refresh_every: int = AdaptiveDelayOptions.refresh_every,
        min_delay: float = AdaptiveDelayOptions.min_delay,
        max_delay: float | None = AdaptiveDelayOptions.max_delay,
    ) -> None:
        self.options = AdaptiveDelayOptions.from_arguments(locals())
        self._current = self._clamp(self.options.initial)
        self._ring: list[float] = []
        self._i = 0
        self._count = 0
        self._lock = threading.Lock()

    def _clamp(self, d: float) -> float:
        o = self.options
        d = max(d, o.min_delay)
        if o.max_delay is not None and d > o.max_delay:
            d = o.max_delay
        return d

    def current(self) -> float:
        return self._current

    def observe(self, latency: float) -> None:
        """Add one latency (seconds)."""
        o = self.options
        with self._lock:
            ring = self._ring
            if len(ring) < o.samples:
                ring.append(latency)
            else:
                ring[self._i] = latency
                self._i = (self._i + 1) % o.samples
            self._count += 1
            if len(ring) >= o.min_samples and (
                self._count % o.refresh_every == 0 or len(ring) == o.min_samples
            ):
                self._current = self._clamp(self.quantile(ring, o.percentile))

    @staticmethod
    def quantile(values: list[float], p: float) -> float:
        """Nearest-rank quantile: ``sorted(values)[ceil(p * n) - 1]``."""
        s = sorted(values)
        k = max(1, math.ceil(p * len(s)))
        return s[k - 1]


@dataclass(frozen=True, kw_only=True)
class HedgeOptions(Options):
    """Options of :class:`Hedge` (``hedge:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "Hedge"

    delay: float = duration(
        0.05,
        "Seconds to wait before each extra attempt; with percentile, the delay used until "
        "enough latencies are known",
    )
    max_hedges: int = integer(1, "Extra attempts at most", ge=1)
    percentile: float | None = number_or_none(
        None, "Hedge at this quantile of recent winning latencies (adaptive delay)", gt=0, le=1
    )
    samples: int = integer(1000, "Adaptive delay: latencies remembered", ge=1)
    min_samples: int = integer(20, "Adaptive delay: latencies needed before it adapts", ge=1)
    min_delay: float = duration(0.0, "Adaptive delay: the shortest delay, in seconds")
    max_delay: float | None = duration(
        None, "Adaptive delay: the longest delay, in seconds; None: no bound", optional=True
    )
    on: tuple[type[BaseException], ...] = exceptions(
        (Exception,),
        "Exception types that count as a failed attempt and start the next one at once (never a "
        "Rejected)",
    )
    budget: BudgetOptions | None = custom(
        RetryBudgetOptions(),
        "The retry budget hedges draw on: a Budget to share, options for a fresh one, or None for "
        "unlimited.  In a pipeline, hedges share the retry's budget",
        check=budget_options,
        optional=True,
        shown="a fresh RetryBudget",
    )
    count_requests: bool = flag(
        True,
        "Deposit one request per call into the budget (off when the budget is shared with a "
        "retry that already counts them)",
        spec=False,
    )
    threads: bool = flag(False, "Hedge sync calls too, in a thread pool of max_workers")
    max_workers: int = integer(32, "Threads for hedged sync calls", ge=1)

    def check(self) -> None:
        _min_le_max(self)


@documented(HedgeOptions)
class Hedge(Policy):
    """Hedged requests (default pipeline rank 35: inside retries, outside the circuit breaker, so
    every hedge passes the breaker)."""

    kind: ClassVar[str] = "hedge"
    order: ClassVar[int] = 35

    def __init__(
        self,
        *,
        delay: float = HedgeOptions.delay,
        max_hedges: int = HedgeOptions.max_hedges,
        percentile: float | None = HedgeOptions.percentile,
        samples: int = HedgeOptions.samples,
        min_samples: int = HedgeOptions.min_samples,
        min_delay: float = HedgeOptions.min_delay,
        max_delay: float | None = HedgeOptions.max_delay,
        on: type[BaseException] | tuple[type[BaseException], ...] = HedgeOptions.on,
        budget: Budget | BudgetOptions | None = HedgeOptions.budget,
        count_requests: bool = HedgeOptions.count_requests,
        threads: bool = HedgeOptions.threads,
        max_workers: int = HedgeOptions.max_workers,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "hedge",
    ) -> None:
        o = self.options = HedgeOptions.from_arguments(locals())
        self.max_hedges = o.max_hedges
        self.max_workers = o.max_workers
        self.delays: AdaptiveDelay | None = None
        if o.percentile is not None:
            self.delays = AdaptiveDelay(
                percentile=o.percentile,
                initial=o.delay,
                samples=o.samples,
                min_samples=o.min_samples,
                min_delay=o.min_delay,
                max_delay=o.max_delay,
            )
        self._fixed = o.delay
        self.on: tuple[type[BaseException], ...] = o.on
        self.budget: Budget | None = build_budget(budget, o.budget, clock)
        self.count_requests = o.count_requests
        self.threads = o.threads
        self.clock = clock
        self.name = name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        how = (
            f"percentile={self.delays.options.percentile:g}"
            if self.delays
            else f"delay={self._fixed:g}"
        )
        return f"Hedge(name={self.name!r}, {how}, max_hedges={self.max_hedges})"

    def current_delay(self) -> float:
        """The delay the next call will use."""
        return self.delays.current() if self.delays is not None else self._fixed

    # -- shared decisions --------------------------------------------------------------------------

    def _deposit(self) -> None:
        b = self.budget
        if b is not None and self.count_requests and b.counts_requests:
            b.on_request(self.clock.monotonic())

    def _kind_of(self, exc: BaseException) -> str:
        if isinstance(exc, Rejected):
            return "rejected"
        if isinstance(exc, self.on) and isinstance(exc, Exception):
            return "failure"
        return "final"

    # -- asyncio -----------------------------------------------------------------------------------

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        em = emitter

        async def hedge_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            self._deposit()
            delay = self.current_delay()
            call = _HedgedCall(self, em)
            pending = {call.started(asyncio.ensure_future(nxt(fn, args, kwargs)))}
            try:
                while True:
                    done, pending = await asyncio.wait(
                        pending, timeout=call.timeout(delay), return_when=asyncio.FIRST_COMPLETED
                    )
                    if call.settle(done):
                        return call.winner.result()
                    if call.hedge_now():
                        pending.add(call.started(asyncio.ensure_future(nxt(fn, args, kwargs))))
                    if not pending:
                        raise call.last_error()
            finally:
                if pending:
                    for loser in pending:
                        loser.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    call.cancelled(len(pending))

        return hedge_call_async

    # -- threads -----------------------------------------------------------------------------------

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        self.max_workers, thread_name_prefix=f"buttress-{self.name}"
                    )
                pool = self._pool
        return pool

    def shutdown(self, wait: bool = True) -> None:
        """Stop the thread pool of ``threads=True`` hedges (a new one starts on the next call)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=True)

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        if not self.threads:
            return nxt
        em = emitter
        wait = concurrent.futures.wait
        first_completed = concurrent.futures.FIRST_COMPLETED

        def submit(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            ctx = contextvars.copy_context()
            return self._executor().submit(ctx.run, nxt, fn, args, kwargs)

        def hedge_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            self._deposit()
            delay = self.current_delay()
            call = _HedgedCall(self, em)
            pending = {call.started(submit(fn, args, kwargs))}
            try:
                while True:
                    done, pending = wait(
                        pending, timeout=call.timeout(delay), return_when=first_completed
                    )
                    if call.settle(done):
                        return call.winner.result()
                    if call.hedge_now():
                        pending.add(call.started(submit(fn, args, kwargs)))
                    if not pending:
                        raise call.last_error()
            finally:
                if pending:
                    for f in pending:
                        f.cancel()  # stops only those not yet running; running ones finish unseen
                    call.cancelled(len(pending))

        return hedge_call


class _HedgedCall:
    """One hedged call's attempts, for both executors (asyncio tasks or thread futures): the
    decisions, sans-I/O.  The executor starts each attempt (and registers it with
    :meth:`started`), waits for :meth:`timeout`, hands the finished ones to :meth:`settle`, starts
    another when :meth:`hedge_now` says so, and cancels the losers."""

    __slots__ = ("em", "errors", "launched", "more", "number", "policy", "start_now", "winner")

    def __init__(self, policy: Hedge, em: Emitter) -> None:
        self.policy = policy
        self.em = em
        self.number: dict[Any, tuple[int, float]] = {}  # attempt -> its number (from 1), start
        self.launched = 0
        self.more = True  # may more attempts start?
        self.start_now = ""  # why to start the next attempt now: "delay", "failure" or not now
        self.errors: list[BaseException] = []
        self.winner: Any = None

    def started(self, f: Any) -> Any:
        """Count attempt ``f`` (a task or a future), just started; returns it."""
        self.launched += 1
        self.number[f] = (self.launched, self.policy.clock.monotonic())
        return f

    def _can_start(self) -> bool:
        return self.more and self.launched <= self.policy.max_hedges

    def timeout(self, delay: float) -> float | None:
        """How long to wait for the attempts in flight: ``delay``, or as long as they take when
        no more may start."""
        return delay if self._can_start() else None

    def settle(self, done: set[Any]) -> bool:
        """Take in the attempts that finished since the last wait: ``True`` when one succeeded
        (it is :attr:`winner`).  A final error is raised; the others are kept."""
        self.start_now = "delay" if not done else ""
        for f in sorted(done, key=_failed_first_last):  # a success wins first
            if f.cancelled():
                self.errors.append(asyncio.CancelledError())
                continue
            exc = f.exception()
            if exc is None:
                p, em = self.policy, self.em
                attempt, started = self.number[f]
                if p.delays is not None:
                    p.delays.observe(p.clock.monotonic() - started)
                if self.launched > 1 and em.active:
                    now = p.clock.monotonic()
                    em.emit(HedgeWon(em.pipeline, p.name, now, attempt, self.launched))
                self.winner = f
                return True
            self.errors.append(exc)
            k = self.policy._kind_of(exc)
            if k == "final":
                raise exc
            if k == "rejected":
                self.more = False
            else:
                self.start_now = "failure"
        return False

    def hedge_now(self) -> bool:
        """Should the next attempt start now?  Takes its budget token (else no more start)."""
        if not (self.start_now and self._can_start()):
            return False
        p, em = self.policy, self.em
        now = p.clock.monotonic()
        attempt = self.launched + 1
        b = p.budget
        if b is not None and not b.try_withdraw(now):
            if em.active:
                em.emit(HedgeBudgetExhausted(em.pipeline, p.name, now, attempt))
            self.more = False
            return False
        if em.active:
            em.emit(HedgeLaunched(em.pipeline, p.name, now, attempt, self.start_now))
        return True

    def last_error(self) -> BaseException:
        """The error to raise when every attempt failed: the last real failure, else the last
        rejection."""
        for e in reversed(self.errors):
            if not isinstance(e, Rejected | asyncio.CancelledError):
                return e
        return self.errors[-1]

    def cancelled(self, count: int) -> None:
        """The executor cancelled ``count`` losers."""
        em = self.em
        if em.active:
            p = self.policy
            em.emit(HedgeLosersCancelled(em.pipeline, p.name, p.clock.monotonic(), count))


def _failed_first_last(f: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> bool:
    """Sort key putting the successes of a batch of finished attempts first."""
    return f.cancelled() or f.exception() is not None
