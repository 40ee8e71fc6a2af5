"""The circuit breaker's events: transitions, rejections, threshold alarms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from buttress.events import Event

from .breaker_state import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    OPEN,
    BreakerAlarm,
    BreakerState,
    Note,
)


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


def to_event(pipeline: str, policy: str, note: Note) -> Event:
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
