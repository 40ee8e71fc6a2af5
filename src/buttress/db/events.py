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

from buttress.events import Emitter, EventFamily

__all__ = [
    "DbPoolEvent",
    "HostBreakerClosed",
    "HostBreakerHalfOpened",
    "HostBreakerOpened",
    "HostBreakerTransition",
    "HostEjected",
    "HostEvent",
    "HostHealthChanged",
    "HostReturned",
    "PrimaryDemoted",
    "PrimaryFound",
    "PrimaryLost",
    "ReadFellBack",
    "emitter",
]


class DbPoolEvent(EventFamily, policy_type="db_pool"):
    """The family of the pools' events."""


class HostEvent(DbPoolEvent):
    """The family of the events about one host, named in ``host`` (``host:port``)."""

    host: str


# --- the primary ----------------------------------------------------------------------------------


class PrimaryLost(DbPoolEvent, kind="primary_lost"):
    """The write pool stopped trusting ``primary`` (``host:port``); ``reason`` says what it saw."""

    primary: str
    reason: str


class PrimaryDemoted(HostEvent, kind="demoted"):
    """``host``, the write pool's primary, answers as a standby now (``pg_is_in_recovery()`` true,
    or a ``read_only_sql_transaction`` error): it was demoted, not merely unreachable."""

    detail: str


class PrimaryFound(DbPoolEvent, kind="primary_found"):
    """The write pool now writes to ``primary``; ``previous`` is the primary before (empty when
    the pool opened); ``duration``: seconds spent finding it and opening connections."""

    primary: str
    previous: str
    duration: float


# --- reads ----------------------------------------------------------------------------------------


class ReadFellBack(DbPoolEvent, kind="read_fell_back"):
    """A read went to the primary: no standby was fresh enough (``reason``)."""

    reason: str


class HostHealthChanged(HostEvent, kind="host_health_changed"):
    """A standby started or stopped qualifying for reads (``detail``: ``fresh``, ``lag 1.3 s``,
    ``not a standby``, ``unreachable``)."""

    healthy: bool
    detail: str


class HostEjected(HostEvent, kind="host_ejected"):
    """Outlier detection took a standby out of rotation for ``seconds`` after failed reads
    (``reason``: the detector, as in :class:`~buttress.failover.events.EndpointEjected`)."""

    reason: str
    seconds: float
    times: int


class HostReturned(HostEvent, kind="host_returned"):
    """An ejected standby's ejection time ran out: it serves reads again when fresh."""

    ejected_for: float


# --- per-host breakers ----------------------------------------------------------------------------


class HostBreakerTransition(HostEvent):
    """The family of the per-host breaker's transitions; the counts are those the decision saw."""

    from_state: str
    to_state: str
    trigger: str
    calls: int
    failures: int


class HostBreakerOpened(HostBreakerTransition, kind="breaker_opened"):
    """``host`` is skipped, with no connection attempt, for ``break_duration`` seconds."""

    break_duration: float


class HostBreakerHalfOpened(HostBreakerTransition, kind="breaker_half_opened"):
    """The break is over: the next attempt on ``host`` is a probe."""


class HostBreakerClosed(HostBreakerTransition, kind="breaker_closed"):
    """A probe succeeded: ``host`` is tried again."""


_emitter: Emitter | None = None


def emitter() -> Emitter:
    """The emitter of the pools' events, made on first use."""
    global _emitter
    if _emitter is None:
        _emitter = Emitter("db")
    return _emitter
