"""Per-host machinery of the pools: a circuit breaker per host, and the endpoint pool that chooses
among standbys.  Both are the house's sans-I/O cores, reused as they are:

* :class:`HostBreaker` wraps a :class:`~buttress.policies.breaker.BreakerMachine` for one host.
  Every attempt to talk to the host (a connection, a lag check, a probe for the primary, a read)
  asks it first; while it is open the host is skipped with no connection attempt, so a dead or
  hung host costs one ``connect_timeout`` per break instead of one per attempt.  Only connection
  failures count against it (``OperationalError``: refused, timed out, lost, the server shutting
  down); an SQL error in the caller's code says nothing about the host.
* :func:`endpoint_pool` builds a :class:`~buttress.failover.pool.EndpointPool` over the standbys.
  Its endpoints are identities only (``tcp://standby-<i>:<port>``, named ``host:port``, so that a
  Unix-socket directory or an IPv6 address needs no URL form): the pool never connects to them.
  Lag checks feed its active health (``report_probe``), read outcomes feed its outlier detection
  (``release``), and it picks the standby (power of two choices, least requests in flight).  Its
  events are turned into ``buttress_db_pool_*`` events by :class:`EndpointEvents`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, cast

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.events import Emitter, Event
from buttress.failover import (
    Endpoint,
    EndpointEjected,
    EndpointHealthChanged,
    EndpointPool,
    EndpointReturned,
    HealthCheck,
    OutlierDetection,
)
from buttress.policies.backoff import BackoffOptions
from buttress.policies.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerMachine,
    BreakerOptions,
    Note,
    Permit,
    Transition,
)

from .events import (
    HostBreakerClosed,
    HostBreakerHalfOpened,
    HostBreakerOpened,
    HostEjected,
    HostHealthChanged,
    HostReturned,
    emitter,
)

__all__ = [
    "HOST_BREAKER",
    "READ_OUTLIER_DETECTION",
    "EndpointEvents",
    "HostBreaker",
    "endpoint_pool",
    "host_label",
]

HOST_BREAKER = BreakerOptions(
    window_size=5,
    minimum_calls=3,
    failure_rate_threshold=0.5,
    permitted_calls_in_half_open=1,
    half_open_timeout=30.0,
    break_duration=BackoffOptions(
        kind="exponential", base=1.0, multiplier=2.0, cap=30.0, jitter="none"
    ),
)
"""The per-host breaker's defaults: open when at least half of the last 5 attempts (3 at least)
failed to connect; skip the host for 1 s, then let one probe through; each time the probe fails
too the break doubles, up to 30 s.  Connection failures of a healthy host are rare, so 2 in 3 is a
dead or flapping host.  A host that restarts is back in use about a second after it accepts
connections; one that stays dead costs one connect timeout per 30 s."""

READ_OUTLIER_DETECTION = OutlierDetection(
    consecutive_5xx=3, base_ejection_time=10.0, max_ejection_time=120.0, interval=5.0
)
"""Outlier detection for standbys: 3 failed reads in a row eject one for 10 s (20 s, 30 s ... on
repeats, at most 120 s).  Envoy's 5 and 30 s suit many interchangeable HTTP servers; a cluster
has a handful of standbys and the primary to fall back on."""


def host_label(host: str, port: str) -> str:
    """``host:port``: how events and messages name a host."""
    return f"{host}:{port}"


class HostBreaker:
    """A circuit breaker for one host: :meth:`permit` before an attempt, :meth:`record` after."""

    __slots__ = ("clock", "label", "machine", "on_open", "policy", "pool_name")

    def __init__(
        self,
        label: str,
        options: BreakerOptions,
        *,
        pool_name: str,
        policy: str,
        clock: Clock = SYSTEM_CLOCK,
        on_open: Callable[[], None] | None = None,
    ) -> None:
        self.label = label
        self.pool_name = pool_name
        self.policy = policy
        self.clock = clock
        self.on_open = on_open
        self.machine = BreakerMachine(options, now=clock.monotonic())

    @property
    def is_open(self) -> bool:
        """Open now, break not yet over (no attempt would be let through)."""
        snap = self.machine.snapshot(self.clock.monotonic())
        return snap.state is OPEN and (snap.retry_after or 0.0) > 0

    def permit(self) -> Permit | None:
        """A permit for one attempt, or ``None``: skip this host."""
        decision = self.machine.before_call(self.clock.monotonic())
        self._notes(decision.notes)
        return decision if isinstance(decision, Permit) else None

    def record(self, permit: Permit, connected: bool | None, started: float) -> None:
        """The attempt made under ``permit`` reached the host (``True``), failed to (``False``),
        or was not about the host (``None``: an error in the caller's own SQL)."""
        now = self.clock.monotonic()
        outcome: Literal["success", "failure", "ignored"] = (
            "ignored" if connected is None else "success" if connected else "failure"
        )
        self._notes(self.machine.on_result(now, permit, outcome, now - started))

    def _notes(self, notes: Sequence[Note]) -> None:
        for note in notes:
            if not isinstance(note, Transition):
                continue
            if note.to_state is OPEN and self.on_open is not None:
                self.on_open()
            em = emitter()
            if em.active:
                em.emit(self._event(note))

    def _event(self, t: Transition) -> Event:
        args = (
            self.pool_name,
            self.policy,
            t.time,
            self.label,
            t.from_state.value,
            t.to_state.value,
            t.trigger.value,
            t.calls,
            t.failures,
        )
        if t.to_state is OPEN:
            return HostBreakerOpened(*args, t.break_duration or 0.0)
        if t.to_state is HALF_OPEN:
            return HostBreakerHalfOpened(*args)
        if t.to_state is CLOSED:
            return HostBreakerClosed(*args)
        # Only reset(), disable(), force_open() or metrics_only() reach the other states, and
        # nothing here calls them.
        raise AssertionError(f"unexpected breaker transition to {t.to_state.value}")


class EndpointEvents:
    """What an :class:`~buttress.failover.pool.EndpointPool` takes as its emitter: it turns the
    pool's ejections, returns and health changes into ``buttress_db_pool_*`` events on the pools'
    emitter, and is ``active`` only when that emitter is (so nothing is built unheard).  Priority
    load and panic events are dropped: a read pool has one priority and no panic routing."""

    __slots__ = ("policy", "pool_name")

    def __init__(self, pool_name: str, policy: str) -> None:
        self.pool_name = pool_name
        self.policy = policy

    @property
    def active(self) -> bool:
        return emitter().active

    @property
    def pipeline(self) -> str:
        return self.pool_name

    def emit(self, event: Event) -> None:
        out: Event | None = None
        p, pol, now = self.pool_name, self.policy, event.time
        if isinstance(event, EndpointEjected):
            ep = event.endpoint
            out = HostEjected(p, pol, now, ep, event.reason, event.duration, event.times)
        elif isinstance(event, EndpointReturned):
            out = HostReturned(p, pol, now, event.endpoint, event.ejected_for)
        elif isinstance(event, EndpointHealthChanged):
            out = HostHealthChanged(p, pol, now, event.endpoint, event.healthy, event.detail)
        if out is not None:
            emitter().emit(out)


def endpoint_pool(
    hosts: Sequence[tuple[str, str]],
    *,
    outlier_detection: OutlierDetection | None,
    selection: str,
    pool_name: str,
    clock: Clock = SYSTEM_CLOCK,
) -> EndpointPool:
    """An endpoint pool over ``hosts``, one endpoint each, in order.

    Health thresholds of 1: a lag check is a definite answer, so one stale or unreachable check
    takes a standby out and one fresh check brings it back.  Panic routing is off: when no standby
    qualifies the read goes to the primary, never to a stale standby.
    """
    endpoints = [
        Endpoint(f"tcp://standby-{i}:{port or 5432}", name=host_label(host, port))
        for i, (host, port) in enumerate(hosts)
    ]
    return EndpointPool(
        endpoints,
        selection=selection,
        panic_threshold=0,
        outlier_detection=outlier_detection,
        health_check=HealthCheck(healthy_threshold=1, unhealthy_threshold=1),
        clock=clock,
        name=pool_name,
        emitter=cast(Emitter, EndpointEvents(pool_name, "read_pool")),
    )
