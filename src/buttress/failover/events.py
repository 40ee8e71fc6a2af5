"""Events of endpoint pools: every ejection, return, health change and failover.

Metric names follow the house scheme ``buttress_endpoint_pool_<kind>``; ``policy`` is the pool's
name.  Pools build them only when someone listens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from buttress.events import Event

__all__ = [
    "EjectionSkipped",
    "EndpointEjected",
    "EndpointHealthChanged",
    "EndpointReturned",
    "PanicChanged",
    "PriorityLoadChanged",
]


@dataclass(frozen=True, slots=True)
class EndpointEjected(Event, policy_type="endpoint_pool", kind="ejected"):
    """Outlier detection took ``endpoint`` out of rotation for ``duration`` seconds.

    ``reason``: ``consecutive_5xx``, ``consecutive_gateway_failure``, ``success_rate`` or
    ``failure_percentage``; ``times``: the ejection multiplier used (ejections in a row).
    """

    endpoint: str
    reason: str
    duration: float
    times: int


@dataclass(frozen=True, slots=True)
class EndpointReturned(Event, policy_type="endpoint_pool", kind="returned"):
    """An ejected endpoint's ejection time ran out: it is back in rotation."""

    endpoint: str
    ejected_for: float


@dataclass(frozen=True, slots=True)
class EjectionSkipped(Event, policy_type="endpoint_pool", kind="ejection_skipped"):
    """``endpoint`` was found an outlier but not ejected: ``cap`` (``max_ejection_percent`` reached)
    or ``not_enforced`` (the enforcing percentage said no)."""

    endpoint: str
    reason: str
    detector: str


@dataclass(frozen=True, slots=True)
class EndpointHealthChanged(Event, policy_type="endpoint_pool", kind="health_changed"):
    """Active health checking changed ``endpoint``'s state (after the thresholds were met)."""

    endpoint: str
    healthy: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PriorityLoadChanged(Event, policy_type="endpoint_pool", kind="failover"):
    """Traffic moved between priority levels: a failover (or a failback).

    ``loads`` and ``previous`` are the percentages per priority, highest priority first.
    """

    loads: tuple[int, ...]
    previous: tuple[int, ...]
    panic: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class PanicChanged(Event, policy_type="endpoint_pool", kind="panic"):
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
