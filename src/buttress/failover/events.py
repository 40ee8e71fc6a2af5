"""Events of endpoint pools: every ejection, return, health change and failover.

Metric names follow the house scheme ``buttress_endpoint_pool_<kind>``; ``policy`` is the pool's
name.  Pools build them only when someone listens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar

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
class EndpointEjected(Event):
    """Outlier detection took ``endpoint`` out of rotation for ``duration`` seconds.

    ``reason``: ``consecutive_5xx``, ``consecutive_gateway_failure``, ``success_rate`` or
    ``failure_percentage``; ``times``: the ejection multiplier used (ejections in a row).
    """

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "ejected"
    endpoint: str
    reason: str
    duration: float
    times: int


@dataclass(frozen=True, slots=True)
class EndpointReturned(Event):
    """An ejected endpoint's ejection time ran out: it is back in rotation."""

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "returned"
    endpoint: str
    ejected_for: float


@dataclass(frozen=True, slots=True)
class EjectionSkipped(Event):
    """``endpoint`` was found an outlier but not ejected: ``cap`` (``max_ejection_percent`` reached)
    or ``not_enforced`` (the enforcing percentage said no)."""

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "ejection_skipped"
    endpoint: str
    reason: str
    detector: str


@dataclass(frozen=True, slots=True)
class EndpointHealthChanged(Event):
    """Active health checking changed ``endpoint``'s state (after the thresholds were met)."""

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "health_changed"
    endpoint: str
    healthy: bool
    detail: str


@dataclass(frozen=True, slots=True)
class PriorityLoadChanged(Event):
    """Traffic moved between priority levels: a failover (or a failback).

    ``loads`` and ``previous`` are the percentages per priority, highest priority first.
    """

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "failover"
    loads: tuple[int, ...]
    previous: tuple[int, ...]
    panic: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class PanicChanged(Event):
    """Panic routing switched on or off for some priority levels (``panic`` per level)."""

    policy_type: ClassVar[str] = "endpoint_pool"
    kind: ClassVar[str] = "panic"
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
