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
import enum
import itertools
import math
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ButtressError, CircuitOpen, ConfigError, Rejected
from buttress.events import Emitter, Event

from .backoff import Backoff
from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .windows import FAILURE, SLOW_FAILURE, SLOW_SUCCESS, SUCCESS, CountWindow, TimeWindow

__all__ = [
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
    "BreakerRejected",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStore",
    "BreakerThresholdExceeded",
    "BreakerTransition",
    "CircuitBreaker",
    "IllegalTransition",
    "MemoryBreakerStore",
    "Permit",
    "Reject",
    "Transition",
    "Trigger",
    "state_diagram",
]

R = TypeVar("R")
Outcome = Literal["success", "failure", "ignored"]

_NEVER_COUNT = (Rejected, asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class BreakerState(enum.Enum):
    """A breaker's state: the three automatic ones and the three set by hand."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"
    METRICS_ONLY = "metrics_only"


class Trigger(enum.Enum):
    """Why a transition happens (the second key of :data:`TRANSITIONS`)."""

    THRESHOLD = "threshold"  # a rate reached its threshold
    BREAK_ELAPSED = "break_elapsed"  # the open state's break is over (seen on the next call)
    PROBES_PASSED = "probes_passed"
    PROBES_FAILED = "probes_failed"
    PROBE_TIMEOUT = "probe_timeout"  # half-open got no probe result within half_open_timeout
    RESET = "reset"
    DISABLE = "disable"
    FORCE_OPEN = "force_open"
    METRICS_ONLY = "metrics_only"


CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
DISABLED = BreakerState.DISABLED
FORCED_OPEN = BreakerState.FORCED_OPEN
METRICS_ONLY = BreakerState.METRICS_ONLY

_MANUAL = {
    Trigger.RESET: CLOSED,
    Trigger.DISABLE: DISABLED,
    Trigger.FORCE_OPEN: FORCED_OPEN,
    Trigger.METRICS_ONLY: METRICS_ONLY,
}

TRANSITIONS: dict[tuple[BreakerState, Trigger], BreakerState] = {
    (CLOSED, Trigger.THRESHOLD): OPEN,
    (OPEN, Trigger.BREAK_ELAPSED): HALF_OPEN,
    (HALF_OPEN, Trigger.PROBES_PASSED): CLOSED,
    (HALF_OPEN, Trigger.PROBES_FAILED): OPEN,
    (HALF_OPEN, Trigger.PROBE_TIMEOUT): OPEN,
    # Manual changes: from every state to any *other* state (reset also from closed: it clears).
    **{
        (s, t): to
        for t, to in _MANUAL.items()
        for s in BreakerState
        if s is not to or t is Trigger.RESET
    },
}
"""Every legal transition: ``(state, trigger) -> new state``.  Anything else raises."""


def state_diagram() -> str:
    """The transition table as a Mermaid ``stateDiagram-v2`` (the docs embed exactly this text)."""
    lines = ["stateDiagram-v2", "    [*] --> closed"]
    manual: dict[tuple[BreakerState, Trigger], list[BreakerState]] = {}
    for (frm, trig), to in TRANSITIONS.items():
        if trig in _MANUAL:
            manual.setdefault((to, trig), []).append(frm)
            continue
        lines.append(f"    {frm.value} --> {to.value}: {trig.value}")
    for (to, trig), froms in manual.items():
        if len(froms) >= len(BreakerState) - 1:
            lines.append(f"    note right of {to.value}: {trig.value}() from any state")
        else:  # pragma: no cover - every manual trigger is reachable from every state
            for frm in froms:
                lines.append(f"    {frm.value} --> {to.value}: {trig.value}")
    return "\n".join(lines) + "\n"


class IllegalTransition(ButtressError, RuntimeError):
    """A trigger was applied in a state that has no transition for it (a bug, never user input)."""

    def __init__(self, state: BreakerState, trigger: Trigger) -> None:
        self.state = state
        self.trigger = trigger
        super().__init__(f"no transition from {state.value} on {trigger.value}")


# --- decisions and records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change, with the window's totals just before it."""

    time: float
    from_state: BreakerState
    to_state: BreakerState
    trigger: Trigger
    calls: int
    failures: int
    slow_calls: int
    break_duration: float | None = None  # set when entering open


@dataclass(frozen=True, slots=True)
class BreakerAlarm:
    """In ``metrics_only``: a threshold was crossed (the breaker would have opened)."""

    time: float
    calls: int
    failures: int
    slow_calls: int


Note = Transition | BreakerAlarm


@dataclass(frozen=True, slots=True)
class Permit:
    """Go ahead.  Hand it back to :meth:`BreakerMachine.on_result`."""

    generation: int
    probe: bool
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True, slots=True)
class Reject:
    """Do not call.  ``retry_after``: seconds until the break ends (``None`` when unknown)."""

    state: BreakerState
    retry_after: float | None
    notes: tuple[Note, ...] = ()


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """The breaker's state and window metrics at one moment.

    ``retry_after`` is the time left in the break when open; ``probes_available`` the half-open
    slots not yet handed out; ``probe_*`` the half-open results so far.
    """

    state: BreakerState
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    retry_after: float | None
    probes_available: int
    probe_calls: int
    probe_failures: int
    probe_slow_calls: int
    consecutive_opens: int
    generation: int


# --- state storage --------------------------------------------------------------------------------


class BreakerData:
    """The mutable state of one breaker.  Only the machine's ``*_locked`` methods change it."""

    __slots__ = (
        "alarmed",
        "consecutive_opens",
        "fast_until",
        "generation",
        "half_open_deadline",
        "last_tick",
        "open_until",
        "probe_calls",
        "probe_failures",
        "probe_slow",
        "probes_left",
        "since",
        "state",
        "ticks",
        "window",
    )

    def __init__(self, window: CountWindow | TimeWindow, now: float) -> None:
        self.state = CLOSED
        self.generation = 0
        self.window = window
        self.since = now
        self.open_until = 0.0
        self.half_open_deadline = 0.0
        self.probes_left = 0
        self.probe_calls = 0
        self.probe_failures = 0
        self.probe_slow = 0
        self.consecutive_opens = 0
        self.alarmed = False
        # The lock-free success path: while closed and ``now < fast_until`` a fast success only
        # ticks ``ticks`` (``next()`` on an itertools.count is atomic); the ticks are folded into
        # the window at the start of every locked step.  ``fast_until`` is -inf whenever a success
        # could change a decision (fewer than minimum_calls, another state, a time bucket about to
        # expire).
        self.ticks = itertools.count()
        self.last_tick = next(self.ticks)
        self.fast_until = -math.inf

    def fold_locked(self) -> None:
        """Add the successes ticked since the last fold to the window (closed only; else drop
        them)."""
        v = next(self.ticks)
        n = v - self.last_tick - 1
        self.last_tick = v
        if n and self.state is CLOSED:
            self.window.add_successes(n)


class BreakerStore(Protocol):
    """Where a breaker's :class:`BreakerData` lives.

    ``atomically(fn, *args)`` runs ``fn(data, *args)`` as one atomic step and returns its result;
    ``fn`` never blocks and never calls user code.  A shared store performs each such step in one
    round trip.
    """

    def atomically(self, fn: Callable[..., R], /, *args: Any) -> R: ...


class MemoryBreakerStore:
    """The default store: a :class:`BreakerData` and a :class:`threading.Lock` (safe for threads and
    asyncio alike, since nothing awaits while holding it)."""

    __slots__ = ("data", "lock")

    def __init__(self, data: BreakerData) -> None:
        self.data = data
        self.lock = threading.Lock()

    def atomically(self, fn: Callable[..., R], /, *args: Any) -> R:
        with self.lock:
            return fn(self.data, *args)


# --- the sans-I/O machine -------------------------------------------------------------------------


def _check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(name, value, "a rate threshold must be within (0, 1]")
    return float(value)


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(name, value, "must be a finite number of seconds > 0")
    return float(value)


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, value, "must be an integer >= 1")
    return value


BreakDuration = float | Backoff | Callable[[int], float]


class BreakerMachine:
    """The breaker's decisions, with no I/O and no clock of its own: times are passed in.

    See the module docstring for the rules; the parameters are those of :class:`CircuitBreaker`.
    """

    __slots__ = (
        "_break",
        "failure_rate_threshold",
        "half_open_timeout",
        "minimum_calls",
        "permitted_calls_in_half_open",
        "slow_call_duration",
        "slow_call_rate_threshold",
        "store",
    )

    def __init__(
        self,
        *,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float = 60.0,
        minimum_calls: int = 100,
        window_type: Literal["count", "time"] = "count",
        window_size: float = 100,
        window_buckets: int | None = None,
        permitted_calls_in_half_open: int = 10,
        half_open_timeout: float = 60.0,
        break_duration: BreakDuration = 60.0,
        now: float = 0.0,
        store: BreakerStore | None = None,
    ) -> None:
        self.failure_rate_threshold = _check_rate("failure_rate_threshold", failure_rate_threshold)
        self.slow_call_rate_threshold = _check_rate(
            "slow_call_rate_threshold", slow_call_rate_threshold
        )
        self.slow_call_duration = _check_seconds("slow_call_duration", slow_call_duration)
        self.minimum_calls = _check_count("minimum_calls", minimum_calls)
        self.permitted_calls_in_half_open = _check_count(
            "permitted_calls_in_half_open", permitted_calls_in_half_open
        )
        self.half_open_timeout = _check_seconds("half_open_timeout", half_open_timeout)
        window: CountWindow | TimeWindow
        if window_type == "count":
            if window_buckets is not None:
                raise ConfigError("window_buckets", window_buckets, "applies to time windows only")
            if isinstance(window_size, float) and window_size.is_integer():
                window_size = int(window_size)
            window = CountWindow(window_size)  # type: ignore[arg-type]
            # As in resilience4j: a count window can never hold more than its size.
            self.minimum_calls = min(self.minimum_calls, window.size)
        elif window_type == "time":
            window = TimeWindow(window_size, window_buckets)
        else:
            raise ConfigError("window_type", window_type, "must be 'count' or 'time'")
        if isinstance(break_duration, Backoff):
            backoff = break_duration
            self._break: Callable[[int], float] = backoff.delay
        elif callable(break_duration):
            self._break = break_duration
        else:
            fixed = _check_seconds("break_duration", break_duration)
            self._break = lambda n: fixed
        if store is None:
            store = MemoryBreakerStore(BreakerData(window, now))
        else:
            # A shared store (buttress.state) learns the configuration and gets a local copy of
            # the state to decide from while it is unavailable.
            bind = getattr(store, "bind", None)
            if bind is not None:
                bind(self, BreakerData(window, now))
        self.store = store

    # -- public, sans-I/O --------------------------------------------------------------------------

    def before_call(self, now: float) -> Permit | Reject:
        """May a call start at ``now``?"""
        return self.store.atomically(self._acquire_locked, now)

    def on_result(
        self, now: float, permit: Permit, outcome: Outcome, duration: float
    ) -> tuple[Note, ...]:
        """Record the outcome of a permitted call; returns the transitions (and alarms) it
        caused."""
        if outcome == "ignored":
            code = 0
        else:
            code = (
                (SLOW_FAILURE if outcome == "failure" else SLOW_SUCCESS)
                if duration > self.slow_call_duration
                else (FAILURE if outcome == "failure" else SUCCESS)
            )
        return self.store.atomically(
            self._record_locked, now, permit.generation, permit.probe, code
        )

    def apply(self, now: float, trigger: Trigger) -> Transition:
        """Apply ``trigger`` now (manual changes use this); raises :class:`IllegalTransition`."""
        return self.store.atomically(self._move_locked, now, trigger)

    def snapshot(self, now: float) -> BreakerSnapshot:
        return self.store.atomically(self._snapshot_locked, now)

    # -- the decisions, run under the store's lock -------------------------------------------------

    def _move_locked(self, d: BreakerData, now: float, trigger: Trigger) -> Transition:
        """The one place where the state changes."""
        d.fold_locked()
        d.fast_until = -math.inf
        frm = d.state
        to = TRANSITIONS.get((frm, trigger))
        if to is None:
            raise IllegalTransition(frm, trigger)
        w = d.window
        calls, failures, slow = w.totals(now)
        brk: float | None = None
        if to is OPEN:
            d.consecutive_opens += 1
            brk = float(self._break(d.consecutive_opens))
            if not brk >= 0:
                brk = 0.0
            d.open_until = now + brk
        elif to is HALF_OPEN:
            d.probes_left = self.permitted_calls_in_half_open
            d.probe_calls = d.probe_failures = d.probe_slow = 0
            d.half_open_deadline = now + self.half_open_timeout
        elif to is CLOSED:
            w.reset()
            d.consecutive_opens = 0
        elif to is METRICS_ONLY:
            d.alarmed = False
        if frm is HALF_OPEN:
            calls, failures, slow = d.probe_calls, d.probe_failures, d.probe_slow
        d.since = now
        d.state = to
        d.generation += 1
        return Transition(now, frm, to, trigger, calls, failures, slow, brk)

    def _manual_locked(self, d: BreakerData, now: float, trigger: Trigger) -> Transition | None:
        """A change made by hand (``reset()``, ``force_open()``...); ``None`` when the breaker is
        already in that state (a reset always applies: it clears the window)."""
        if d.state is _MANUAL[trigger] and trigger is not Trigger.RESET:
            return None
        return self._move_locked(d, now, trigger)

    def _above(self, calls: int, failures: int, slow: int) -> bool:
        # Rates by division, as the docs define them (``f >= t * n`` can differ by a rounding).
        return calls >= self.minimum_calls and (
            failures / calls >= self.failure_rate_threshold
            or slow / calls >= self.slow_call_rate_threshold
        )

    def _acquire_locked(self, d: BreakerData, now: float) -> Permit | Reject:
        d.fold_locked()
        s = d.state
        if s is CLOSED or s is METRICS_ONLY or s is DISABLED:
            return Permit(d.generation, False)
        if s is FORCED_OPEN:
            return Reject(s, None)
        notes: tuple[Note, ...] = ()
        if s is OPEN:
            if now < d.open_until:
                return Reject(s, d.open_until - now)
            notes = (self._move_locked(d, now, Trigger.BREAK_ELAPSED),)
        # half-open
        if now >= d.half_open_deadline:
            t = self._move_locked(d, now, Trigger.PROBE_TIMEOUT)
            return Reject(OPEN, d.open_until - now, (*notes, t))
        if d.probes_left > 0:
            d.probes_left -= 1
            return Permit(d.generation, True, notes)
        return Reject(HALF_OPEN, None, notes)

    def _record_locked(
        self, d: BreakerData, now: float, generation: int, probe: bool, code: int
    ) -> tuple[Note, ...]:
        d.fold_locked()
        if generation != d.generation:
            return ()  # started before a transition: not evidence about the current state
        s = d.state
        if s is CLOSED or s is METRICS_ONLY:
            if code == 0:
                return ()
            w = d.window
            w.add(now, code)
            return self._check_locked(d, now)
        if s is HALF_OPEN and probe:
            if code == 0:
                d.probes_left += 1  # an ignored probe gives its slot back
                return ()
            d.probe_calls += 1
            if code in (FAILURE, SLOW_FAILURE):
                d.probe_failures += 1
            if code >= SLOW_SUCCESS:
                d.probe_slow += 1
            d.half_open_deadline = now + self.half_open_timeout
            if d.probe_calls < self.permitted_calls_in_half_open:
                return ()
            n = d.probe_calls
            bad = (
                d.probe_failures / n >= self.failure_rate_threshold
                or d.probe_slow / n >= self.slow_call_rate_threshold
            )
            trig = Trigger.PROBES_FAILED if bad else Trigger.PROBES_PASSED
            return (self._move_locked(d, now, trig),)
        return ()  # disabled (records nothing); open states never hand out this generation

    def _check_locked(self, d: BreakerData, now: float) -> tuple[Note, ...]:
        w = d.window
        calls, failures, slow = w.totals(now)
        if not self._above(calls, failures, slow):
            if d.state is METRICS_ONLY:
                d.alarmed = False
            elif calls >= self.minimum_calls:
                d.fast_until = w.horizon()
            else:
                d.fast_until = -math.inf
            return ()
        if d.state is CLOSED:
            return (self._move_locked(d, now, Trigger.THRESHOLD),)
        if d.alarmed:
            return ()
        d.alarmed = True
        return (BreakerAlarm(now, calls, failures, slow),)

    def _snapshot_locked(self, d: BreakerData, now: float) -> BreakerSnapshot:
        d.fold_locked()
        calls, failures, slow = d.window.totals(now)
        retry_after = None
        if d.state is OPEN:
            retry_after = max(0.0, d.open_until - now)
        return BreakerSnapshot(
            d.state,
            calls,
            failures,
            slow,
            failures / calls if calls else 0.0,
            slow / calls if calls else 0.0,
            retry_after,
            d.probes_left if d.state is HALF_OPEN else 0,
            d.probe_calls,
            d.probe_failures,
            d.probe_slow,
            d.consecutive_opens,
            d.generation,
        )


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreakerTransition(Event):
    """Base of the transition events; ``trigger`` says why, the counts are those the decision saw
    (the window's, or the probes' when leaving half-open)."""

    policy_type: ClassVar[str] = "circuit_breaker"
    kind: ClassVar[str] = "transition"
    from_state: str
    to_state: str
    trigger: str
    calls: int
    failures: int
    slow_calls: int


@dataclass(frozen=True, slots=True)
class BreakerOpened(BreakerTransition):
    kind: ClassVar[str] = "opened"
    break_duration: float


@dataclass(frozen=True, slots=True)
class BreakerHalfOpened(BreakerTransition):
    kind: ClassVar[str] = "half_opened"


@dataclass(frozen=True, slots=True)
class BreakerClosed(BreakerTransition):
    kind: ClassVar[str] = "closed"


@dataclass(frozen=True, slots=True)
class BreakerDisabled(BreakerTransition):
    kind: ClassVar[str] = "disabled"


@dataclass(frozen=True, slots=True)
class BreakerForcedOpen(BreakerTransition):
    kind: ClassVar[str] = "forced_open"


@dataclass(frozen=True, slots=True)
class BreakerMetricsOnly(BreakerTransition):
    kind: ClassVar[str] = "metrics_only"


@dataclass(frozen=True, slots=True)
class BreakerRejected(Event):
    """A call was refused (``state``: open, half_open with every probe slot taken, or
    forced_open)."""

    policy_type: ClassVar[str] = "circuit_breaker"
    kind: ClassVar[str] = "rejected"
    state: str
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class BreakerThresholdExceeded(Event):
    """In ``metrics_only``: a threshold was crossed; the breaker would have opened."""

    policy_type: ClassVar[str] = "circuit_breaker"
    kind: ClassVar[str] = "threshold_exceeded"
    calls: int
    failures: int
    slow_calls: int


_EVENT_FOR: dict[BreakerState, type[BreakerTransition]] = {
    CLOSED: BreakerClosed,
    HALF_OPEN: BreakerHalfOpened,
    DISABLED: BreakerDisabled,
    FORCED_OPEN: BreakerForcedOpen,
    METRICS_ONLY: BreakerMetricsOnly,
}


def _to_event(pipeline: str, policy: str, note: Note) -> Event:
    if isinstance(note, BreakerAlarm):
        return BreakerThresholdExceeded(
            pipeline, policy, note.time, note.calls, note.failures, note.slow_calls
        )
    args = (
        pipeline,
        policy,
        note.time,
        note.from_state.value,
        note.to_state.value,
        note.trigger.value,
        note.calls,
        note.failures,
        note.slow_calls,
    )
    if note.to_state is OPEN:
        return BreakerOpened(*args, note.break_duration or 0.0)
    return _EVENT_FOR[note.to_state](*args)


# --- the policy -----------------------------------------------------------------------------------


class CircuitBreaker(Policy):
    """A circuit breaker (default pipeline rank 40: inside retries and hedges, outside limits).

    :param failure_rate_threshold: open at or above this failure rate, in (0, 1].  Default 0.5.
    :param slow_call_rate_threshold: open at or above this slow-call rate, in (0, 1].  Default 1.0
        (only when every call in the window is slow).
    :param slow_call_duration: a call longer than this many seconds is slow (> 0).  Default 60.
    :param minimum_calls: no decision before the window holds this many calls (>= 1; capped at a
        count window's size).  Default 100.
    :param window_type: ``"count"`` (the last ``window_size`` calls) or ``"time"`` (the last
        ``window_size`` seconds).  Default ``"count"``.
    :param window_size: calls (count) or seconds (time), > 0.  Default 100.
    :param window_buckets: time windows only: buckets (>= 1); default one per second, at most 60.
    :param permitted_calls_in_half_open: probes admitted in half-open (>= 1).  Default 10.
    :param half_open_timeout: seconds half-open waits for a probe result before re-opening (> 0).
        Default 60.
    :param break_duration: seconds open before probing: a number (> 0), a
        :class:`~buttress.policies.backoff.Backoff`, or ``f(consecutive_opens) -> seconds``.
        Default 60.
    :param record_on: exception types counted as failures.  Default :class:`Exception`.
    :param ignore_on: exception types not counted at all (checked first).  Default none.
    :param failure_if_result: ``result -> bool``: results that count as failures.
    :param store: where the state lives (default in memory).
    """

    kind: ClassVar[str] = "circuit_breaker"
    order: ClassVar[int] = 40

    __slots__ = (
        "_emitters",
        "_ignored",
        "clock",
        "failure_if_result",
        "ignore_on",
        "machine",
        "name",
        "record_on",
    )

    def __init__(
        self,
        *,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float = 60.0,
        minimum_calls: int = 100,
        window_type: Literal["count", "time"] = "count",
        window_size: float = 100,
        window_buckets: int | None = None,
        permitted_calls_in_half_open: int = 10,
        half_open_timeout: float = 60.0,
        break_duration: BreakDuration = 60.0,
        record_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        ignore_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        failure_if_result: Callable[[Any], bool] | None = None,
        store: BreakerStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "circuit_breaker",
    ) -> None:
        self.record_on = _types("record_on", record_on)
        self.ignore_on = _types("ignore_on", ignore_on)
        self._ignored = _NEVER_COUNT + self.ignore_on
        if failure_if_result is not None and not callable(failure_if_result):
            raise ConfigError("failure_if_result", failure_if_result, "must be callable")
        self.failure_if_result = failure_if_result
        self.clock = clock
        self.name = name
        self.machine = BreakerMachine(
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration,
            minimum_calls=minimum_calls,
            window_type=window_type,
            window_size=window_size,
            window_buckets=window_buckets,
            permitted_calls_in_half_open=permitted_calls_in_half_open,
            half_open_timeout=half_open_timeout,
            break_duration=break_duration,
            now=clock.monotonic(),
            store=store,
        )
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
        t = m.store.atomically(m._manual_locked, self.clock.monotonic(), trigger)
        if t is not None:
            for em in list(self._emitters):
                if em.active:
                    em.emit(_to_event(em.pipeline, self.name, t))

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
            em.emit(_to_event(em.pipeline, self.name, n))

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
        self._emitters.add(emitter)
        m = self.machine
        store = m.store
        mono = self.clock.monotonic
        slow_after = m.slow_call_duration
        rif = self.failure_if_result
        direct = nxt is invoke_sync
        record = self._record_fn(emitter)
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

    def _record_fn(self, em: Emitter) -> Callable[..., None]:
        """Classify and record one outcome (the paths other than the plain fast success)."""
        m = self.machine
        atomically = m.store.atomically
        rec = m._record_locked
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

    def _sync_guarded(self, nxt: SyncNext, em: Emitter, record: Callable[..., None]) -> SyncNext:
        atomically = self.machine.store.atomically
        acq = self.machine._acquire_locked
        mono = self.clock.monotonic
        direct = nxt is invoke_sync

        def breaker_guarded(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            t0 = mono()
            d = atomically(acq, t0)
            if type(d) is Reject:
                raise self._reject(em, d)
            assert isinstance(d, Permit)
            if d.notes and em.active:
                self._emit(em, d.notes)
            try:
                result = fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            except BaseException as exc:
                record(t0, d.generation, d.probe, exc, None)
                raise
            record(t0, d.generation, d.probe, None, result)
            return result

        return breaker_guarded

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        self._emitters.add(emitter)
        m = self.machine
        store = m.store
        mono = self.clock.monotonic
        slow_after = m.slow_call_duration
        rif = self.failure_if_result
        em = emitter
        direct = nxt is invoke_async
        record = self._record_fn(emitter)
        atomically = store.atomically
        acq = m._acquire_locked

        async def breaker_guarded_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            t0 = mono()
            d = atomically(acq, t0)
            if type(d) is Reject:
                raise self._reject(em, d)
            assert isinstance(d, Permit)
            if d.notes and em.active:
                self._emit(em, d.notes)
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                record(t0, d.generation, d.probe, exc, None)
                raise
            record(t0, d.generation, d.probe, None, result)
            return result

        if not isinstance(store, MemoryBreakerStore):
            return breaker_guarded_async
        data = store.data
        tick = data.ticks.__next__
        plain = rif is None

        async def breaker_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            gen = data.generation
            if data.state is not CLOSED:
                return await breaker_guarded_async(fn, args, kwargs)
            t0 = mono()
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                record(t0, gen, False, exc, None)
                raise
            t1 = mono()
            if t1 < data.fast_until and t1 - t0 <= slow_after and plain:
                tick()
                return result
            record(t0, gen, False, None, result)
            return result

        return breaker_call_async


def _types(
    name: str, value: type[BaseException] | tuple[type[BaseException], ...]
) -> tuple[type[BaseException], ...]:
    t = value if isinstance(value, tuple) else (value,)
    for x in t:
        if not (isinstance(x, type) and issubclass(x, BaseException)):
            raise ConfigError(name, value, "must be an exception type or a tuple of them")
    return t
