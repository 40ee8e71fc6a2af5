"""The outbox's events (``buttress_outbox_<kind>``), labelled ``pipeline`` = the relay's name and
``policy`` = the queue.  With :mod:`buttress.telemetry` installed they become metrics:
``delivered`` carries ``duration`` (enqueue to acknowledgement, so delivery latency lands in
``buttress_duration_seconds``), ``retry_scheduled`` carries ``delay``, and every event counts in
``buttress_events_total``."""

from __future__ import annotations

from dataclasses import dataclass

from buttress.events import Event

__all__ = ["MessageDeadLettered", "MessageDelivered", "MessageFenced", "MessageRetryScheduled"]


@dataclass(frozen=True, slots=True)
class MessageDelivered(Event, policy_type="outbox", kind="delivered"):
    """Delivered and acknowledged; ``duration``: seconds from enqueue to acknowledgement."""

    message: int
    duration: float
    attempts: int


@dataclass(frozen=True, slots=True)
class MessageRetryScheduled(Event, policy_type="outbox", kind="retry_scheduled"):
    """A delivery failed; the message is due again after ``delay`` seconds."""

    message: int
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, slots=True)
class MessageDeadLettered(Event, policy_type="outbox", kind="dead_lettered"):
    """Moved to the dead-letter queue; ``reason``: ``permanent``, ``attempts``, ``elapsed`` or
    ``not_retryable``."""

    message: int
    attempts: int
    reason: str
    error: str


@dataclass(frozen=True, slots=True)
class MessageFenced(Event, policy_type="outbox", kind="fenced"):
    """This relay's lease on the message was lost (expired, or another relay took it): its
    acknowledgement or verdict was refused, and the message will be delivered again."""

    message: int
    operation: str
