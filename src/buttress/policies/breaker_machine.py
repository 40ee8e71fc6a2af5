"""The circuit breaker's decisions, sans-I/O: :class:`BreakerMachine` and its options.

``before_call(now)`` answers with a :class:`~buttress.policies.breaker_state.Permit` or a
:class:`~buttress.policies.breaker_state.Reject` (with ``retry_after``), and ``on_result(now,
permit, outcome, duration)`` records what happened.  The rules are in
:mod:`buttress.policies.breaker`'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.errors import ConfigError
from buttress.options import (
    Options,
    callable_or_none,
    choice,
    custom,
    duration,
    exceptions,
    integer,
    number,
)

from .backoff import Backoff, BackoffOptions
from .breaker_state import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    MANUAL_TRIGGERS,
    METRICS_ONLY,
    OPEN,
    TRANSITIONS,
    BreakerAlarm,
    BreakerData,
    BreakerSnapshot,
    BreakerStore,
    IllegalTransition,
    MemoryBreakerStore,
    Note,
    Outcome,
    Permit,
    Reject,
    Transition,
    Trigger,
)
from .windows import FAILURE, SLOW_FAILURE, SLOW_SUCCESS, SUCCESS, CountWindow, TimeWindow

# --- the sans-I/O machine -------------------------------------------------------------------------


BreakDuration = float | BackoffOptions | Callable[[int], float]


def _break_duration(name: str, v: object) -> object:
    if isinstance(v, Backoff):
        return v.options
    if isinstance(v, BackoffOptions) or (callable(v) and not isinstance(v, type)):
        return v
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
        raise ConfigError(
            name, v, "must be a finite number of seconds > 0, a Backoff, or f(opens) -> seconds"
        )
    return float(v)


@dataclass(frozen=True, kw_only=True)
class BreakerOptions(Options):
    """Options of :class:`~buttress.policies.breaker.CircuitBreaker` (``circuit_breaker:`` in
    ``reliability.yaml``); resilience4j's defaults."""

    policy: ClassVar[str] = "CircuitBreaker"

    failure_rate_threshold: float = number(
        0.5, "Open at or above this failure rate over the window", gt=0, le=1
    )
    slow_call_rate_threshold: float = number(
        1.0,
        "Open at or above this slow-call rate (1.0: only when every call in the window is slow)",
        gt=0,
        le=1,
    )
    slow_call_duration: float = duration(
        60.0, "A call longer than this many seconds is slow", gt=0, ge=None
    )
    minimum_calls: int = integer(
        100,
        "No decision before the window holds this many calls (capped at a count window's size)",
        ge=1,
    )
    window_type: Literal["count", "time"] = choice(
        "count",
        "count: the last window_size calls; time: the last window_size seconds",
        ("count", "time"),
    )
    window_size: float = number(100, "Calls (count window) or seconds (time window)", gt=0)
    window_buckets: int | None = integer(
        None, "Time windows only: buckets; default one per second, at most 60", ge=1, optional=True
    )
    permitted_calls_in_half_open: int = integer(10, "Probes admitted in half-open", ge=1)
    half_open_timeout: float = duration(
        60.0, "Seconds half-open waits for a probe result before re-opening", gt=0, ge=None
    )
    break_duration: BreakDuration = custom(
        60.0,
        "Seconds open before probing: a number, a Backoff (growing with consecutive opens), or "
        "f(consecutive_opens) -> seconds",
        check=_break_duration,
        spec=True,
        shown="60.0",
    )
    record_on: tuple[type[BaseException], ...] = exceptions(
        (Exception,), "Exception types counted as failures (others count as successes)"
    )
    ignore_on: tuple[type[BaseException], ...] = exceptions(
        (), "Exception types not counted at all (checked first)"
    )
    failure_if_result: Callable[[Any], bool] | None = custom(
        None, "result -> bool: results that count as failures", check=callable_or_none
    )

    def check(self) -> None:
        if self.window_type == "count":
            if self.window_buckets is not None:
                raise ConfigError(
                    "window_buckets", self.window_buckets, "applies to time windows only"
                )
            if not float(self.window_size).is_integer():
                raise ConfigError(
                    "window_size", self.window_size, "a count window holds a whole number of calls"
                )

    def window(self) -> CountWindow | TimeWindow:
        """A fresh, empty sliding window of this shape."""
        if self.window_type == "count":
            return CountWindow(int(self.window_size))
        return TimeWindow(self.window_size, self.window_buckets)

    def break_function(self) -> Callable[[int], float]:
        """``n`` consecutive opens to the break's length in seconds."""
        bd = self.break_duration
        if isinstance(bd, BackoffOptions):
            return Backoff.from_options(bd).delay
        if callable(bd):
            return bd
        fixed = float(bd)
        return lambda n: fixed


class BreakerMachine:
    """The breaker's decisions, with no I/O and no clock of its own: times are passed in.

    See :mod:`buttress.policies.breaker` for the rules; the options are :class:`BreakerOptions`
    (given whole, or as keywords over the defaults).
    """

    def __init__(
        self,
        options: BreakerOptions | None = None,
        /,
        *,
        now: float = 0.0,
        store: BreakerStore | None = None,
        **overrides: Any,
    ) -> None:
        o = options if options is not None else BreakerOptions()
        if overrides:
            o = o.replace(**overrides)
        self.options = o
        self.failure_rate_threshold = o.failure_rate_threshold
        self.slow_call_rate_threshold = o.slow_call_rate_threshold
        self.slow_call_duration = o.slow_call_duration
        self.permitted_calls_in_half_open = o.permitted_calls_in_half_open
        self.half_open_timeout = o.half_open_timeout
        window = o.window()
        # As in resilience4j: a count window can never hold more than its size.
        self.minimum_calls = (
            min(o.minimum_calls, window.size)
            if isinstance(window, CountWindow)
            else o.minimum_calls
        )
        self.break_length: Callable[[int], float] = o.break_function()
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
        return self.store.atomically(self.acquire_step, now)

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
        return self.store.atomically(self.record_step, now, permit.generation, permit.probe, code)

    def apply(self, now: float, trigger: Trigger) -> Transition:
        """Apply ``trigger`` now (manual changes use this); raises :class:`IllegalTransition`."""
        return self.store.atomically(self.move_step, now, trigger)

    def snapshot(self, now: float) -> BreakerSnapshot:
        return self.store.atomically(self.snapshot_step, now)

    # -- the decisions, run under the store's lock -------------------------------------------------

    def move_step(self, d: BreakerData, now: float, trigger: Trigger) -> Transition:
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
            brk = float(self.break_length(d.consecutive_opens))
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

    def manual_step(self, d: BreakerData, now: float, trigger: Trigger) -> Transition | None:
        """A change made by hand (``reset()``, ``force_open()``...); ``None`` when the breaker is
        already in that state (a reset always applies: it clears the window)."""
        if d.state is MANUAL_TRIGGERS[trigger] and trigger is not Trigger.RESET:
            return None
        return self.move_step(d, now, trigger)

    def _above(self, calls: int, failures: int, slow: int) -> bool:
        # Rates by division, as the docs define them (``f >= t * n`` can differ by a rounding).
        return calls >= self.minimum_calls and (
            failures / calls >= self.failure_rate_threshold
            or slow / calls >= self.slow_call_rate_threshold
        )

    def acquire_step(self, d: BreakerData, now: float) -> Permit | Reject:
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
            notes = (self.move_step(d, now, Trigger.BREAK_ELAPSED),)
        # half-open
        if now >= d.half_open_deadline:
            t = self.move_step(d, now, Trigger.PROBE_TIMEOUT)
            return Reject(OPEN, d.open_until - now, (*notes, t))
        if d.probes_left > 0:
            d.probes_left -= 1
            return Permit(d.generation, True, notes)
        return Reject(HALF_OPEN, None, notes)

    def record_step(
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
            return (self.move_step(d, now, trig),)
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
            return (self.move_step(d, now, Trigger.THRESHOLD),)
        if d.alarmed:
            return ()
        d.alarmed = True
        return (BreakerAlarm(now, calls, failures, slow),)

    def snapshot_step(self, d: BreakerData, now: float) -> BreakerSnapshot:
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
