"""The circuit breaker's states, transition table and mutable data (see
:mod:`buttress.policies.breaker` for the rules).

Every state change goes through one table, :data:`TRANSITIONS`; a change that is not in it raises
:class:`IllegalTransition`.  The mutable state (state, generation, the sliding window, half-open
slots) lives in a :class:`BreakerData` held by a *store* (:class:`MemoryBreakerStore` by default)
whose one operation, ``atomically(fn, *args)``, applies a decision to it as one atomic step: a lock
in memory, one round trip for a shared store.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from buttress.errors import ButtressError

from .windows import CountWindow, TimeWindow

R = TypeVar("R")
Outcome = Literal["success", "failure", "ignored"]


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

MANUAL_TRIGGERS = {
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
        for t, to in MANUAL_TRIGGERS.items()
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
        if trig in MANUAL_TRIGGERS:
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
