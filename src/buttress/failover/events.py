"""Events of endpoint pools: every ejection, return, health change and failover.

Metric names follow the house scheme ``buttress_endpoint_pool_<kind>``; ``policy`` is the pool's
name.  Pools build them only when someone listens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from buttress.events import Event, EventFamily

__all__ = [
    "EjectionSkipped",
    "EndpointEjected",
    "EndpointEvent",
    "EndpointHealthChanged",
    "EndpointPoolEvent",
    "EndpointReturned",
    "PanicChanged",
    "PriorityLoadChanged",
]


class EndpointPoolEvent(EventFamily, policy_type="endpoint_pool"):
    """The family of the endpoint pools' events."""


class EndpointEvent(EndpointPoolEvent):
    """The family of the events about one ``endpoint``."""

    endpoint: str


class EndpointEjected(EndpointEvent, kind="ejected"):
    """Outlier detection took ``endpoint`` out of rotation for ``duration`` seconds.

    ``reason``: ``consecutive_5xx``, ``consecutive_gateway_failure``, ``success_rate`` or
    ``failure_percentage``; ``times``: the ejection multiplier used (ejections in a row).
    """

    reason: str
    duration: float
    times: int


class EndpointReturned(EndpointEvent, kind="returned"):
    """An ejected endpoint's ejection time ran out: it is back in rotation."""

    ejected_for: float


class EjectionSkipped(EndpointEvent, kind="ejection_skipped"):
    """``endpoint`` was found an outlier but not ejected: ``cap`` (``max_ejection_percent`` reached)
    or ``not_enforced`` (the enforcing percentage said no)."""

    reason: str
    detector: str


class EndpointHealthChanged(EndpointEvent, kind="health_changed"):
    """Active health checking changed ``endpoint``'s state (after the thresholds were met)."""

    healthy: bool
    detail: str


class PriorityLoadChanged(EndpointPoolEvent, kind="failover"):
    """Traffic moved between priority levels: a failover (or a failback).

    ``loads`` and ``previous`` are the percentages per priority, highest priority first.
    """

    loads: tuple[int, ...]
    previous: tuple[int, ...]
    panic: tuple[bool, ...]


class PanicChanged(EndpointPoolEvent, kind="panic"):
    """Panic routing switched on or off for some priority levels (``panic`` per level)."""

    panic: tuple[bool, ...]
    previous: tuple[bool, ...]


BY_NOTE: Mapping[str, Callable[..., Event]] = {
    "ejected": EndpointEjected,
    "returned": EndpointReturned,
    "skipped": EjectionSkipped,
    "health": EndpointHealthChanged,
    "load": PriorityLoadChanged,
    "panic": PanicChanged,
}
"""The event of each kind of note a pool takes under its lock: ``(kind, *fields)`` becomes
``BY_NOTE[kind](pipeline, pool, time, *fields)`` once the lock is released."""
