"""Circuit breaker: stop calling a dependency that is failing, probe it, and resume when it
recovers.

The decision logic is sans-I/O (:class:`BreakerMachine`): ``before_call(now)`` answers with a
:class:`Permit` or a :class:`Reject` (with ``retry_after``), and ``on_result(now, permit, outcome,
duration)`` records what happened.  Every state change goes through one table, :data:`TRANSITIONS`;
a change that is not in it raises :class:`IllegalTransition`.  The mutable state (state, generation,
the sliding window, half-open slots) lives in a :class:`BreakerData` held by a *store*
(:class:`MemoryBreakerStore` by default) whose one operation, ``atomically(fn, *args)``, applies a
decision to it as one atomic step: a lock in memory, one round trip for a shared store.

States::

    closed ──(failure or slow-call rate >= threshold, after minimum_calls)──> open
    open ──(break duration elapsed, on the next call)──> half_open
    half_open ──(all probes in, rates below thresholds)──> closed
    half_open ──(all probes in, a rate at or above its threshold)──> open
    half_open ──(no probe result within half_open_timeout)──> open
    any ──reset()──> closed;  any ──disable() / force_open() / metrics_only()──> that state

Rules:

* ``failure_rate = failures / calls`` and ``slow_call_rate = slow / calls`` over the sliding window
  (:mod:`buttress.policies.windows`); a call is *slow* when ``duration > slow_call_duration``.  The
  breaker opens when ``calls >= minimum_calls`` and either rate is at or above its threshold.
* Half-open admits exactly ``permitted_calls_in_half_open`` probes (slots handed out under the
  store's lock); further calls are rejected.  When every probe has reported, the same thresholds
  applied to the probes' outcomes decide.  A probe ending in an ignored error gives its slot back.
* Every transition bumps a *generation*; a result reported under an older generation (a call that
  started before the transition) is not counted.
* Errors that are instances of ``record_on`` (default :class:`Exception`) are failures, unless they
  match ``ignore_on``; other errors count as successes (as in resilience4j).  Rejections
  (:class:`~buttress.errors.Rejected`), cancellation and interrupts are never counted.
  ``failure_if_result(result) -> bool`` makes results count as failures.
* The break lasts ``break_duration`` seconds: a number, a
  :class:`~buttress.policies.backoff.Backoff` (``delay(n)``), or a function of ``n``, the number of
  consecutive opens (1 the first time; reset on closing).

No lock is held across the protected call.  The success path in the closed state reads the state
without a lock, calls the function and ticks a counter (``next()`` on an :func:`itertools.count`,
atomic): no lock at all.  The ticks are folded into the window at the next locked step, and the
lock-free path is taken only while a success cannot change any decision (``fast_until``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import CircuitOpen, Rejected
from buttress.events import Emitter
from buttress.options import documented

from .backoff import Backoff
from .base import FUSE_BREAKER, AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .breaker_events import (
    BreakerClosed,
    BreakerDisabled,
    BreakerForcedOpen,
    BreakerHalfOpened,
    BreakerMetricsOnly,
    BreakerOpened,
    BreakerRejected,
    BreakerThresholdExceeded,
    BreakerTransition,
    to_event,
)
from .breaker_machine import BreakDuration, BreakerMachine, BreakerOptions
from .breaker_state import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    TRANSITIONS,
    BreakerAlarm,
    BreakerData,
    BreakerSnapshot,
    BreakerState,
    BreakerStore,
    IllegalTransition,
    MemoryBreakerStore,
    Note,
    Outcome,
    Permit,
    Reject,
    Transition,
    Trigger,
    state_diagram,
)
from .windows import FAILURE, SUCCESS

# Never counted as a failure or a success: a refusal says nothing about the dependency.
_NEVER_COUNT = (Rejected, asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)

__all__ = [
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "METRICS_ONLY",
    "OPEN",
    "TRANSITIONS",
    "BreakerAlarm",
    "BreakerClosed",
    "BreakerData",
    "BreakerDisabled",
    "BreakerForcedOpen",
    "BreakerHalfOpened",
    "BreakerMachine",
    "BreakerMetricsOnly",
    "BreakerOpened",
    "BreakerOptions",
    "BreakerRejected",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStore",
    "BreakerThresholdExceeded",
    "BreakerTransition",
    "CircuitBreaker",
    "IllegalTransition",
    "MemoryBreakerStore",
    "Note",
    "Permit",
    "Reject",
    "Transition",
    "Trigger",
    "state_diagram",
]


# --- the policy -----------------------------------------------------------------------------------


@documented(BreakerOptions)
class CircuitBreaker(Policy):
    """A circuit breaker (default pipeline rank 40: inside retries and hedges, outside limits).

    ``store`` is where the state lives (default in memory; :mod:`buttress.state` for shared).
    """

    kind: ClassVar[str] = "circuit_breaker"
    order: ClassVar[int] = 40

    def __init__(
        self,
        *,
        failure_rate_threshold: float = BreakerOptions.failure_rate_threshold,
        slow_call_rate_threshold: float = BreakerOptions.slow_call_rate_threshold,
        slow_call_duration: float = BreakerOptions.slow_call_duration,
        minimum_calls: int = BreakerOptions.minimum_calls,
        window_type: Literal["count", "time"] = BreakerOptions.window_type,
        window_size: float = BreakerOptions.window_size,
        window_buckets: int | None = BreakerOptions.window_buckets,
        permitted_calls_in_half_open: int = BreakerOptions.permitted_calls_in_half_open,
        half_open_timeout: float = BreakerOptions.half_open_timeout,
        break_duration: BreakDuration | Backoff = BreakerOptions.break_duration,
        record_on: type[BaseException] | tuple[type[BaseException], ...] = BreakerOptions.record_on,
        ignore_on: type[BaseException] | tuple[type[BaseException], ...] = BreakerOptions.ignore_on,
        failure_if_result: Callable[[Any], bool] | None = BreakerOptions.failure_if_result,
        store: BreakerStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "circuit_breaker",
    ) -> None:
        o = self.options = BreakerOptions.from_arguments(locals())
        self.record_on = o.record_on
        self.ignore_on = o.ignore_on
        self._ignored = _NEVER_COUNT + o.ignore_on
        self.failure_if_result = o.failure_if_result
        self.clock = clock
        self.name = name
        self.machine = BreakerMachine(o, now=clock.monotonic(), store=store)
        self._emitters: weakref.WeakSet[Emitter] = weakref.WeakSet()

    def __repr__(self) -> str:
        m = self.machine
        return (
            f"CircuitBreaker(name={self.name!r}, "
            f"failure_rate_threshold={m.failure_rate_threshold:g}, "
            f"slow_call_rate_threshold={m.slow_call_rate_threshold:g}, "
            f"minimum_calls={m.minimum_calls}, state={self.state.value})"
        )

    # -- reading and steering ----------------------------------------------------------------------

    def snapshot(self) -> BreakerSnapshot:
        """State and window metrics now."""
        return self.machine.snapshot(self.clock.monotonic())

    @property
    def state(self) -> BreakerState:
        return self.snapshot().state

    def reset(self) -> None:
        """Back to closed with an empty window."""
        self._manual(Trigger.RESET)

    def disable(self) -> None:
        """Permit every call and record nothing, until :meth:`reset`."""
        self._manual(Trigger.DISABLE)

    def force_open(self) -> None:
        """Reject every call, until :meth:`reset`."""
        self._manual(Trigger.FORCE_OPEN)

    def metrics_only(self) -> None:
        """Permit every call and keep the window; report crossings as events, never open."""
        self._manual(Trigger.METRICS_ONLY)

    def _manual(self, trigger: Trigger) -> None:
        m = self.machine
        t = m.store.atomically(m.manual_step, self.clock.monotonic(), trigger)
        if t is not None:
            for em in list(self._emitters):
                if em.active:
                    em.emit(to_event(em.pipeline, self.name, t))

    # -- classification ----------------------------------------------------------------------------

    def classify(self, exc: BaseException) -> Outcome:
        """How an error counts: ``ignored``, ``failure`` or ``success``."""
        if isinstance(exc, self._ignored):
            return "ignored"
        if isinstance(exc, self.record_on):
            return "failure"
        return "success"

    def _emit(self, em: Emitter, notes: tuple[Note, ...]) -> None:
        for n in notes:
            em.emit(to_event(em.pipeline, self.name, n))

    def _reject(self, em: Emitter, r: Reject) -> CircuitOpen:
        if em.active:
            self._emit(em, r.notes)
            em.emit(
                BreakerRejected(
                    em.pipeline, self.name, self.clock.monotonic(), r.state.value, r.retry_after
                )
            )
        ra = r.retry_after
        why = f"retry after {ra:.3g}s" if ra is not None else "no probe slot free"
        if r.state is FORCED_OPEN:
            why = "forced open"
        return CircuitOpen(
            f"circuit breaker {self.name!r} is {r.state.value}: {why}",
            policy=self.name,
            retry_after=ra,
        )

    # -- executors ---------------------------------------------------------------------------------

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        m = self.machine
        store = m.store
        mono = self.clock.monotonic
        slow_after = m.slow_call_duration
        rif = self.failure_if_result
        direct = nxt is invoke_sync
        record = self.recorder(emitter)
        guarded = self._sync_guarded(nxt, emitter, record)
        if not isinstance(store, MemoryBreakerStore):
            return guarded
        data = store.data
        tick = data.ticks.__next__
        plain = rif is None

        def breaker_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            gen = data.generation
            if data.state is not CLOSED:
                return guarded(fn, args, kwargs)
            t0 = mono()
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except BaseException as exc:
                record(t0, gen, False, exc, None)
                raise
            t1 = mono()
            if t1 < data.fast_until and t1 - t0 <= slow_after and plain:
                tick()  # lock-free: folded into the window at the next locked step
                return result
            record(t0, gen, False, None, result)
            return result

        return breaker_call

    def fused_slot(self) -> int | None:
        # The fused layer runs the in-memory store's lock-free fast path.
        memory = isinstance(self.machine.store, MemoryBreakerStore)
        return FUSE_BREAKER if memory and self.failure_if_result is None else None

    def recorder(self, emitter: Emitter) -> Callable[..., None]:
        """``record(started, generation, probe, exc, result)``: classify and record one outcome of
        a call made for ``emitter``'s pipeline, whose listeners also hear this breaker's
        transitions from now on (the layers and :mod:`buttress.policies.fused` record through
        this)."""
        self._emitters.add(emitter)
        return self._record_fn(emitter)

    def _record_fn(self, em: Emitter) -> Callable[..., None]:
        """Classify and record one outcome (the paths other than the plain fast success)."""
        m = self.machine
        atomically = m.store.atomically
        rec = m.record_step
        mono = self.clock.monotonic
        slow_after = m.slow_call_duration
        rif = self.failure_if_result
        classify = self.classify

        def record(
            t0: float, gen: int, probe: bool, exc: BaseException | None, result: Any
        ) -> None:
            t1 = mono()
            if exc is not None:
                outcome = classify(exc)
                if outcome == "ignored":
                    if not probe:
                        return
                    code = 0
                else:
                    code = FAILURE if outcome == "failure" else SUCCESS
            else:
                code = FAILURE if rif is not None and rif(result) else SUCCESS
            if code and t1 - t0 > slow_after:
                code += 2
            notes = atomically(rec, t1, gen, probe, code)
            if notes and em.active:
                self._emit(em, notes)

        return record

    def _permit(self, em: Emitter, now: float) -> Permit:
        """The locked path's admission, for both executors: one atomic step of the machine; a
        refusal is raised (:class:`~buttress.errors.CircuitOpen`), a permit returned (its notes
        emitted)."""
        d = self.machine.store.atomically(self.machine.acquire_step, now)
        if type(d) is Reject:
            raise self._reject(em, d)
        assert isinstance(d, Permit)
        if d.notes and em.active:
            self._emit(em, d.notes)
        return d

    def _sync_guarded(self, nxt: SyncNext, em: Emitter, record: Callable[..., None]) -> SyncNext:
        permit = self._permit
        mono = self.clock.monotonic
        direct = nxt is invoke_sync

        def breaker_guarded(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            t0 = mono()
            d = permit(em, t0)
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except BaseException as exc:
                record(t0, d.generation, d.probe, exc, None)
                raise
            record(t0, d.generation, d.probe, None, result)
            return result

        return breaker_guarded

    def _async_guarded(self, nxt: AsyncNext, em: Emitter, record: Callable[..., None]) -> AsyncNext:
        permit = self._permit
        mono = self.clock.monotonic
        direct = nxt is invoke_async

        async def breaker_guarded_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            t0 = mono()
            d = permit(em, t0)
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                record(t0, d.generation, d.probe, exc, None)
                raise
            record(t0, d.generation, d.probe, None, result)
            return result

        return breaker_guarded_async

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        m = self.machine
        store = m.store
        mono = self.clock.monotonic
        slow_after = m.slow_call_duration
        rif = self.failure_if_result
        direct = nxt is invoke_async
        record = self.recorder(emitter)
        guarded = self._async_guarded(nxt, emitter, record)
        if not isinstance(store, MemoryBreakerStore):
            return guarded
        data = store.data
        tick = data.ticks.__next__
        plain = rif is None

        async def breaker_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            gen = data.generation
            if data.state is not CLOSED:
                return await guarded(fn, args, kwargs)
            t0 = mono()
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                record(t0, gen, False, exc, None)
                raise
            t1 = mono()
            if t1 < data.fast_until and t1 - t0 <= slow_after and plain:
                tick()  # lock-free: folded into the window at the next locked step
                return result
            record(t0, gen, False, None, result)
            return result

        return breaker_call_async
