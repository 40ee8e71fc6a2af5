"""Endpoint pools with Envoy's failover semantics: priorities and panic routing, weights, active
health checking, passive outlier ejection, power-of-two-choices or weighted round-robin selection;
and shuffle sharding of tenants over endpoints (:mod:`buttress.failover.shuffle`).

Everything except :mod:`buttress.failover.driver` (the probes) is sans-I/O and reads time from an
injected clock.  See ``docs/failover.md``.
"""

from __future__ import annotations

from . import events
from .active import ActiveHealth, HealthCheck, ProbeResult
from .driver import HealthCheckDriver, probe, probe_async
from .events import *  # noqa: F403 - the events, listed once in events.__all__
from .outlier import OutlierDetection, OutlierDetector, success_rate_threshold
from .pool import Endpoint, EndpointPool, EndpointStatus, PoolSnapshot, parse_endpoint
from .priority import PriorityLoad, choose_priority, compute_priority_load, level_health
from .selection import LeastRequest, Selector, WeightedRoundRobin
from .shuffle import overlap_odds, shard_count, shuffle_shard

__all__ = [
    # pool
    "Endpoint",
    "EndpointPool",
    "EndpointStatus",
    "PoolSnapshot",
    "parse_endpoint",
    # priorities
    "PriorityLoad",
    "choose_priority",
    "compute_priority_load",
    "level_health",
    # outlier detection
    "OutlierDetection",
    "OutlierDetector",
    "success_rate_threshold",
    # active health checking
    "ActiveHealth",
    "HealthCheck",
    "HealthCheckDriver",
    "ProbeResult",
    "probe",
    "probe_async",
    # selection
    "LeastRequest",
    "Selector",
    "WeightedRoundRobin",
    # shuffle sharding
    "overlap_odds",
    "shard_count",
    "shuffle_shard",
]
__all__ += events.__all__  # the events, listed once in buttress.failover.events
