"""Events of the failover-aware pools, named ``buttress_db_pool_<kind>`` and labelled
``pipeline=<pool name>``, ``policy="write_pool"`` or ``"read_pool"``.

Per-host events carry the host as ``host:port`` in a field (``host``), not in a label: the
telemetry counts them in ``buttress_events_total{event=...}`` and the logs say which host.  Every
event is built only when someone listens (``if em.active:``).

The write pool's events during a move (``primary_lost``, breaker transitions, ``demoted``) are
emitted as they happen, while the moving thread holds the pool's lock, so that an outage is visible
while it lasts rather than when it ends: a listener must not call the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from buttress.events import Emitter, Event

__all__ = [
    "HostBreakerClosed",
    "HostBreakerHalfOpened",
    "HostBreakerOpened",
    "HostBreakerTransition",
    "HostEjected",
    "HostHealthChanged",
    "HostReturned",
    "PrimaryDemoted",
    "PrimaryFound",
    "PrimaryLost",
    "ReadFellBack",
    "emitter",
]


# --- the primary ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrimaryLost(Event, policy_type="db_pool", kind="primary_lost"):
    """The write pool stopped trusting ``primary`` (``host:port``); ``reason`` says what it saw."""

    primary: str
    reason: str


@dataclass(frozen=True, slots=True)
class PrimaryDemoted(Event, policy_type="db_pool", kind="demoted"):
    """``host``, the write pool's primary, answers as a standby now (``pg_is_in_recovery()`` true,
    or a ``read_only_sql_transaction`` error): it was demoted, not merely unreachable."""

    host: str
    detail: str


@dataclass(frozen=True, slots=True)
class PrimaryFound(Event, policy_type="db_pool", kind="primary_found"):
    """The write pool now writes to ``primary``; ``previous`` is the primary before (empty when
    the pool opened); ``duration``: seconds spent finding it and opening connections."""

    primary: str
    previous: str
    duration: float


# --- reads ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadFellBack(Event, policy_type="db_pool", kind="read_fell_back"):
    """A read went to the primary: no standby was fresh enough (``reason``)."""

    reason: str


@dataclass(frozen=True, slots=True)
class HostHealthChanged(Event, policy_type="db_pool", kind="host_health_changed"):
    """A standby started or stopped qualifying for reads (``detail``: ``fresh``, ``lag 1.3 s``,
    ``not a standby``, ``unreachable``)."""

    host: str
    healthy: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HostEjected(Event, policy_type="db_pool", kind="host_ejected"):
    """Outlier detection took a standby out of rotation for ``seconds`` after failed reads
    (``reason``: the detector, as in :class:`~buttress.failover.events.EndpointEjected`)."""

    host: str
    reason: str
    seconds: float
    times: int


@dataclass(frozen=True, slots=True)
class HostReturned(Event, policy_type="db_pool", kind="host_returned"):
    """An ejected standby's ejection time ran out: it serves reads again when fresh."""

    host: str
    ejected_for: float


# --- per-host breakers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostBreakerTransition(Event, policy_type="db_pool", kind="breaker_transition"):
    """Base of the per-host breaker's transitions; the counts are those the decision saw."""

    host: str
    from_state: str
    to_state: str
    trigger: str
    calls: int
    failures: int


@dataclass(frozen=True, slots=True)
class HostBreakerOpened(HostBreakerTransition, kind="breaker_opened"):
    """``host`` is skipped, with no connection attempt, for ``break_duration`` seconds."""

    break_duration: float


@dataclass(frozen=True, slots=True)
class HostBreakerHalfOpened(HostBreakerTransition, kind="breaker_half_opened"):
    """The break is over: the next attempt on ``host`` is a probe."""


@dataclass(frozen=True, slots=True)
class HostBreakerClosed(HostBreakerTransition, kind="breaker_closed"):
    """A probe succeeded: ``host`` is tried again."""


_emitter: Emitter | None = None


def emitter() -> Emitter:
    """The emitter of the pools' events, made on first use."""
    global _emitter
    if _emitter is None:
        _emitter = Emitter("db")
    return _emitter
