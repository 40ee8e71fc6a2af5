"""The circuit breaker's events: transitions, rejections, threshold alarms."""

from __future__ import annotations

from buttress.events import Event, EventFamily

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


class BreakerEvent(EventFamily, policy_type="circuit_breaker"):
    """The family of the circuit breaker's events (``buttress_circuit_breaker_<kind>``)."""


class BreakerTransition(BreakerEvent):
    """The family of the transition events; ``trigger`` says why, the counts are those the decision
    saw (the window's, or the probes' when leaving half-open)."""

    from_state: str
    to_state: str
    trigger: str
    calls: int
    failures: int
    slow_calls: int


class BreakerOpened(BreakerTransition, kind="opened"):
    """The breaker opened: calls are refused for ``break_duration`` seconds."""

    break_duration: float


class BreakerHalfOpened(BreakerTransition, kind="half_opened"):
    """The breaker went half-open: probes are admitted."""


class BreakerClosed(BreakerTransition, kind="closed"):
    """The breaker closed: calls flow again."""


class BreakerDisabled(BreakerTransition, kind="disabled"):
    """The breaker was disabled: every call is permitted, nothing recorded."""


class BreakerForcedOpen(BreakerTransition, kind="forced_open"):
    """The breaker was forced open: every call is refused."""


class BreakerMetricsOnly(BreakerTransition, kind="metrics_only"):
    """The breaker records and reports only; it never opens."""


class BreakerRejected(BreakerEvent, kind="rejected"):
    """A call was refused (``state``: open, half_open with every probe slot taken, or
    forced_open)."""

    state: str
    retry_after: float | None


class BreakerThresholdExceeded(BreakerEvent, kind="threshold_exceeded"):
    """In ``metrics_only``: a threshold was crossed; the breaker would have opened."""

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
