"""The outbox's events (``buttress_outbox_<kind>``), labelled ``pipeline`` = the relay's name and
``policy`` = the queue.  With :mod:`buttress.telemetry` installed they become metrics:
``delivered`` carries ``duration`` (enqueue to acknowledgement, so delivery latency lands in
``buttress_duration_seconds``), ``retry_scheduled`` carries ``delay``, and every event counts in
``buttress_events_total``."""

from __future__ import annotations

from buttress.events import EventFamily

__all__ = [
    "MessageDeadLettered",
    "MessageDelivered",
    "MessageFenced",
    "MessageRetryScheduled",
    "OutboxEvent",
]


class OutboxEvent(EventFamily, policy_type="outbox"):
    """The family of a relay's events about one ``message`` (its id in the queue)."""

    message: int


class MessageDelivered(OutboxEvent, kind="delivered"):
    """Delivered and acknowledged; ``duration``: seconds from enqueue to acknowledgement."""

    duration: float
    attempts: int


class MessageRetryScheduled(OutboxEvent, kind="retry_scheduled"):
    """A delivery failed; the message is due again after ``delay`` seconds."""

    attempt: int
    delay: float
    error: str


class MessageDeadLettered(OutboxEvent, kind="dead_lettered"):
    """Moved to the dead-letter queue; ``reason``: ``permanent``, ``attempts``, ``elapsed`` or
    ``not_retryable``."""

    attempts: int
    reason: str
    error: str


class MessageFenced(OutboxEvent, kind="fenced"):
    """This relay's lease on the message was lost (expired, or another relay took it): its
    acknowledgement or verdict was refused, and the message will be delivered again."""

    operation: str
