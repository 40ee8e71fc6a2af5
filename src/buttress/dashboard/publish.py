"""Publish a process's policy states into the store, for the dashboard.

:class:`Publisher` watches pipelines (every stateful policy in them: circuit breakers, bulkheads,
rate limiters, adaptive limits, load shedders), health checks and anything else you describe with a
sampler function, and writes their states into the feed tables (:mod:`buttress.dashboard.feed`) of
a SQLite file, normally the SLI store the recorder writes to::

    store = "lab.db"
    recorder = SLIRecorder(SLIStore(store), slos)      # SLIs -> sli_minutes
    recorder.attach(); recorder.start()
    publisher = Publisher(store)                       # states -> buttress_state/buttress_events
    publisher.watch(payments_pipeline)
    publisher.start()
    ...
    publisher.close(); recorder.close()

How it works:

* **Sampling.** A daemon thread reads each watched component every ``interval`` seconds (default
  0.25) and writes a row when anything changed; the state row is upserted, and a change of the
  state's category (``closed`` -> ``open``, ``ok`` -> ``saturated``) is also appended to the event
  log.  Reading a breaker takes its store lock once; a bulkhead or a limit is read without a lock.
* **Events.** :meth:`Publisher.on_event` is a listener (attached to each watched pipeline by
  :meth:`watch`, or to every pipeline by :meth:`attach`).  A breaker transition is logged as it
  happens, with its trigger and counts, and wakes the thread at once, so an opening reaches the
  store within milliseconds, not at the next sample.  Rejections (breaker, bulkhead, limiter,
  adaptive limit, shedder) only increment counters, reported as the ``rejected`` field: the
  guarded call never waits for SQLite.
* **Actions.** Supervisor events (a child started, ready, exited, restarting, hung, crash looping;
  a supervisor giving up) and remediation events (a rule acted, escalated) are logged as they
  happen, with their fields, under their own policy types: they show among the recent state
  changes and on incident timelines (:mod:`buttress.incident.timeline`).  They come from the
  supervisor's or remediator's own name, not a pipeline's, so they reach a publisher through
  :meth:`Publisher.attach`.
* **Heartbeat.** Each publisher keeps one ``policy_type = "source"`` row up to date (at least once
  a second); the dashboard greys out the states of a source whose heartbeat is older than
  ``stale_after`` (default ``max(5, 10 x interval)`` seconds), so a crashed process's last
  "open" breaker is not mistaken for a live one.

Levels: breaker ``closed`` ok, ``half_open`` / ``disabled`` / ``metrics_only`` warn, ``open`` /
``forced_open`` bad; bulkhead, limiter and limit ``ok``, ``saturated`` (every slot taken) warn,
``rejecting`` (refusals since the last sample) bad; health ``pass`` ok, ``warn`` warn, ``fail``
bad.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Event, add_listener
from buttress.pipeline import Pipeline
from buttress.policies.base import Policy

from .feed import DEFAULT_RETAIN, LEVELS, FeedWriter, Update

__all__ = ["DEFAULT_INTERVAL", "Publisher", "Sample", "Sampler", "sample_policy"]

DEFAULT_INTERVAL = 0.25
"""Seconds between samples (default): a breaker opening is pushed at once by its event, the
figures of bulkheads and limits are at most this old."""

_HEARTBEAT_EVERY = 1.0

_REJECTION_KINDS = frozenset(
    {
        ("circuit_breaker", "rejected"),
        ("bulkhead", "rejected"),
        ("rate_limiter", "rejected"),
        ("adaptive_limit", "rejected"),
        ("load_shedder", "shed"),
    }
)

_BREAKER_LEVEL = {
    "closed": "ok",
    "half_open": "warn",
    "disabled": "warn",
    "metrics_only": "warn",
    "open": "bad",
    "forced_open": "bad",
}


# What a supervisor or remediation event means for its component: (state, level); a function of
# the event when the kind alone does not say (an exit that did not fail, a dry run).
_ACTION_STATES: dict[tuple[str, str], Callable[[Event], tuple[str, str]]] = {
    ("supervisor", "child_started"): lambda e: ("starting", "warn"),
    ("supervisor", "child_ready"): lambda e: ("running", "ok"),
    ("supervisor", "child_exited"): lambda e: (
        ("exited", "bad") if getattr(e, "failed", True) else ("exited", "warn")
    ),
    ("supervisor", "child_restarting"): lambda e: ("restarting", "warn"),
    ("supervisor", "watchdog_fired"): lambda e: ("hung", "bad"),
    ("supervisor", "crash_looping"): lambda e: ("crash looping", "bad"),
    ("supervisor", "gave_up"): lambda e: ("gave up", "bad"),
    ("remediation", "acted"): lambda e: (
        ("failed", "bad")
        if str(getattr(e, "outcome", "")).startswith("failed")
        else ("dry run", "warn")
        if getattr(e, "dry_run", False)
        else ("acted", "warn")
    ),
    ("remediation", "escalated"): lambda e: ("escalated", "bad"),
}


def _event_fields(event: Event) -> dict[str, Any]:
    return {
        f.name: getattr(event, f.name)
        for f in dataclasses.fields(event)
        if f.name not in ("pipeline", "policy", "time")
    }


@dataclass(frozen=True, slots=True)
class Sample:
    """What a sampler reports: a state category, its level (``ok``/``warn``/``bad``) and
    figures."""

    state: str
    level: str = "ok"
    fields: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.state, str) or not self.state:
            raise ConfigError("state", self.state, "must be a non-empty string")
        if self.level not in LEVELS:
            raise ConfigError("level", self.level, "must be one of 'ok', 'warn', 'bad'")


Sampler = Callable[[], Sample]


class _Check(Protocol):
    """What :meth:`Publisher.watch_check` needs of a health check (duck-typed)."""

    name: str


def _rate_state(active: int, limit: int, rejected_now: bool) -> tuple[str, str]:
    if rejected_now:
        return "rejecting", "bad"
    if limit > 0 and active >= limit:
        return "saturated", "warn"
    return "ok", "ok"


def _occupancy(inflight: int, limit: int, rejected_now: bool, rejected: int, **more: Any) -> Sample:
    """A concurrency limit's sample: saturated when every slot is taken."""
    state, level = _rate_state(inflight, limit, rejected_now)
    return Sample(
        state, level, {"inflight": inflight, "limit": limit, **more, "rejected": rejected}
    )


def sample_policy(policy: Policy, rejected: int = 0, rejected_now: bool = False) -> Sample | None:
    """The state of a stateful policy now, or ``None`` for a stateless one (retry, timeout...).

    ``rejected`` is the number of refusals seen so far (the ``rejected`` field); ``rejected_now``
    says whether any happened since the previous sample (the ``rejecting`` state).
    """
    from buttress.policies.breaker import CircuitBreaker
    from buttress.policies.bulkhead import Bulkhead
    from buttress.policies.limits import AdaptiveLimit
    from buttress.policies.ratelimit import RateLimiter
    from buttress.policies.shed import LoadShedder

    if isinstance(policy, CircuitBreaker):
        s = policy.snapshot()
        state = s.state.value
        return Sample(
            state,
            _BREAKER_LEVEL.get(state, "warn"),
            {
                "calls": s.calls,
                "failures": s.failures,
                "slow_calls": s.slow_calls,
                "failure_rate": s.failure_rate,
                "slow_call_rate": s.slow_call_rate,
                "failure_rate_threshold": policy.machine.failure_rate_threshold,
                "retry_after": s.retry_after,
                "probes_available": s.probes_available,
                "consecutive_opens": s.consecutive_opens,
                "rejected": rejected,
            },
        )
    if isinstance(policy, Bulkhead):
        return _occupancy(
            policy.active,
            policy.limit,
            rejected_now,
            rejected,
            queued=policy.queued,
            max_queue=policy.max_queue,
        )
    if isinstance(policy, AdaptiveLimit):
        return _occupancy(
            policy.inflight,
            policy.limit,
            rejected_now,
            rejected,
            algorithm=type(policy.algorithm).__name__,
        )
    if isinstance(policy, RateLimiter):
        state, level = ("rejecting", "bad") if rejected_now else ("ok", "ok")
        return Sample(
            state,
            level,
            {
                "rate": policy.rate,
                "per": policy.per,
                "burst": policy.burst,
                "mode": policy.mode,
                "rejected": rejected,
            },
        )
    if isinstance(policy, LoadShedder):
        inflight, limit = policy.inflight, policy.limit
        state, level = ("shedding", "bad") if rejected_now else ("ok", "ok")
        return Sample(
            state,
            level,
            {
                "inflight": inflight,
                "limit": limit,
                "utilisation": policy.utilisation,
                "rejected": rejected,
            },
        )
    return None


def _check_sample(check: Any) -> Sample:
    last = getattr(check, "last", None)
    report = last() if callable(last) else last
    if report is None:
        return Sample("unknown", "warn", {"output": "not run yet"})
    status = str(getattr(report.status, "value", report.status))
    level = {"pass": "ok", "warn": "warn", "fail": "bad"}.get(status, "warn")
    return Sample(
        status,
        level,
        {
            "observed_value": getattr(report, "observed_value", None),
            "observed_unit": getattr(report, "observed_unit", None),
            "output": getattr(report, "output", None),
            "duration": getattr(report, "duration", None),
            "checked_at": getattr(report, "time", None),
        },
    )


@dataclass(slots=True)
class _Watched:
    policy_type: str
    scope: str
    name: str
    sampler: Callable[[], Sample | None]
    last: tuple[str, str, str] | None = None  # state, level, fields json (what was written)


class Publisher:
    """Writes the states of watched components into the feed tables of the store at ``path``.

    :param path: the SQLite file (normally the SLI store; created if missing).
    :param source: this process's name in the feed (default ``host:pid``).
    :param interval: seconds between samples (``> 0``; default :data:`DEFAULT_INTERVAL`).
    :param retain: event-log rows kept (default :data:`~buttress.dashboard.feed.DEFAULT_RETAIN`).
    :param clock: wall time of the rows (default the system clock).

    Bad parameters raise :class:`~buttress.errors.ConfigError` here, never later.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        retain: int = DEFAULT_RETAIN,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigError("interval", interval, "must be a number of seconds > 0")
        if not 0 < interval <= 60:
            raise ConfigError("interval", interval, "must be > 0 and <= 60 seconds")
        self.interval = float(interval)
        self.clock = clock
        self.writer = FeedWriter(path, source=source, retain=retain)
        self.source = self.writer.source
        self._lock = threading.Lock()
        self._watched: dict[tuple[str, str, str], _Watched] = {}
        self._pending: list[Update] = []
        self._rejected: dict[tuple[str, str, str], int] = {}
        self._seen_rejected: dict[tuple[str, str, str], int] = {}
        self._removers: list[Callable[[], None]] = []  # pipeline listeners
        self._global_remove: Callable[[], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = -math.inf
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"Publisher({self.writer.path!r}, source={self.source!r}, interval={self.interval:g}, "
            f"watching={len(self._watched)})"
        )

    # -- what to watch -----------------------------------------------------------------------------

    def watch(self, pipeline: Pipeline) -> None:
        """Watch every stateful policy of ``pipeline`` and listen to its events."""
        if not isinstance(pipeline, Pipeline):
            raise ConfigError("pipeline", pipeline, "must be a buttress Pipeline")
        for p in pipeline.policies:
            if sample_policy(p) is not None:
                self.watch_policy(p, scope=pipeline.name)
        if self._global_remove is None:  # attached globally, it hears this pipeline already
            self._removers.append(pipeline.add_listener(self.on_event))

    def watch_policy(self, policy: Policy, *, scope: str) -> None:
        """Watch one stateful policy under ``scope`` (its pipeline's name)."""
        if not isinstance(policy, Policy) or sample_policy(policy) is None:
            raise ConfigError(
                "policy",
                policy,
                "must be a CircuitBreaker, Bulkhead, RateLimiter, AdaptiveLimit or LoadShedder",
            )
        key = (policy.kind, scope, policy.name)

        def sampler() -> Sample | None:
            with self._lock:
                total = self._rejected.get(key, 0)
                now = total != self._seen_rejected.get(key, 0)
                self._seen_rejected[key] = total
            return sample_policy(policy, total, now)

        self._add(_Watched(policy.kind, scope, policy.name, sampler))

    def watch_check(self, check: _Check, *, scope: str = "health") -> None:
        """Watch a health check (anything with ``name`` and ``last`` -- a report with ``status``
        ``pass``/``warn``/``fail`` -- such as :class:`buttress.health.checks.Check`)."""
        name = getattr(check, "key", None) or getattr(check, "name", None)
        if not isinstance(name, str) or not hasattr(check, "last"):
            raise ConfigError("check", check, "needs a 'name' and a 'last' report")
        self._add(_Watched("health", scope, name, lambda: _check_sample(check)))

    def watch_component(self, policy_type: str, scope: str, name: str, sampler: Sampler) -> None:
        """Watch anything: ``sampler()`` returns a :class:`Sample` each interval (an endpoint
        pool's members as ``policy_type="endpoint"``, a queue, a cache)."""
        for param, v in (("policy_type", policy_type), ("scope", scope), ("name", name)):
            if not isinstance(v, str) or not v:
                raise ConfigError(param, v, "must be a non-empty string")
        if not callable(sampler):
            raise ConfigError("sampler", sampler, "must be a function returning a Sample")
        self._add(_Watched(policy_type, scope, name, sampler))

    def _add(self, w: _Watched) -> None:
        with self._lock:
            self._watched[(w.policy_type, w.scope, w.name)] = w

    def set_state(
        self, policy_type: str, scope: str, name: str, state: str, level: str = "ok", **fields: Any
    ) -> None:
        """Publish a state directly (written by the next flush; logged as a change)."""
        if level not in LEVELS:
            raise ConfigError("level", level, "must be one of 'ok', 'warn', 'bad'")
        self._queue(
            Update(policy_type, scope, name, state, level, fields, self.clock.wall(), "set")
        )

    # -- the listener ------------------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Listener: log breaker transitions, supervisor and remediation actions at once; count
        rejections."""
        ptype, kind = event.policy_type, event.kind
        if (ptype, kind) in _REJECTION_KINDS:
            key = (ptype, event.pipeline, event.policy)
            with self._lock:
                self._rejected[key] = self._rejected.get(key, 0) + 1
            return
        action = _ACTION_STATES.get((ptype, kind))
        if action is not None:
            state, level = action(event)
            self._queue(
                Update(ptype, event.pipeline, event.policy, state, level, _event_fields(event),
                       self.clock.wall(), kind),
                wake=True,
            )  # fmt: skip
            return
        to_state = getattr(event, "to_state", None)
        if ptype == "circuit_breaker" and isinstance(to_state, str):
            fields = {
                "from_state": getattr(event, "from_state", None),
                "trigger": getattr(event, "trigger", None),
                "calls": getattr(event, "calls", None),
                "failures": getattr(event, "failures", None),
                "slow_calls": getattr(event, "slow_calls", None),
                "break_duration": getattr(event, "break_duration", None),
            }
            self._queue(
                Update(
                    ptype,
                    event.pipeline,
                    event.policy,
                    to_state,
                    _BREAKER_LEVEL.get(to_state, "warn"),
                    fields,
                    self.clock.wall(),
                    kind,
                ),
                wake=True,
            )

    def attach(self) -> Callable[[], None]:
        """Listen to every pipeline's events (breaker transitions and rejections of pipelines you
        did not :meth:`watch` too); replaces the per-pipeline listeners, so nothing is counted
        twice.  Returns a function that detaches it."""
        if self._global_remove is None:
            for remove in self._removers:
                remove()
            self._removers.clear()
            self._global_remove = add_listener(self.on_event)

        def detach() -> None:
            if self._global_remove is not None:
                self._global_remove()
                self._global_remove = None

        return detach

    def _queue(self, update: Update, *, wake: bool = True) -> None:
        with self._lock:
            self._pending.append(update)
        if wake:
            self._wake.set()

    # -- writing -----------------------------------------------------------------------------------

    def publish_now(self) -> int:
        """Sample everything and write what changed, now; returns the number of rows written."""
        now = self.clock.wall()
        with self._lock:
            pending, self._pending = self._pending, []
            watched = list(self._watched.values())
        updates = list(pending)
        # A logged transition already wrote this state: remember it so the sample does not log a
        # second change for the same thing.
        logged = {(u.policy_type, u.scope, u.name): u for u in pending}
        from .feed import dumps_fields

        for w in watched:
            try:
                s = w.sampler()
            except Exception:  # one broken sampler must not hide the other components
                logging.getLogger("buttress.dashboard").exception(
                    "sampling %s %s/%s failed", w.policy_type, w.scope, w.name
                )
                continue
            if s is None:
                continue
            fields = dict(s.fields or {})
            blob = dumps_fields(fields)
            cur = (s.state, s.level, blob)
            key = (w.policy_type, w.scope, w.name)
            if key in logged:
                u = logged[key]
                w.last = (u.state, u.level, dumps_fields(u.fields))
            if cur == w.last:
                continue
            changed = w.last is None or w.last[:2] != cur[:2]
            updates.append(
                Update(
                    w.policy_type,
                    w.scope,
                    w.name,
                    s.state,
                    s.level,
                    fields,
                    now,
                    "state" if changed else None,
                )
            )
            w.last = cur
        if self._closed or now - self._last_heartbeat >= _HEARTBEAT_EVERY:
            self._last_heartbeat = now
            updates.append(
                Update(
                    "source",
                    "process",
                    self.source,
                    "stopped" if self._closed else "up",
                    "warn" if self._closed else "ok",
                    {"interval": self.interval, "watching": len(watched)},
                    now,
                    "state" if self._closed else None,
                )
            )
        if updates:
            self.writer.write(updates)
        return len(updates)

    def start(self) -> None:
        """Publish from a daemon thread every ``interval`` seconds (and at once on a breaker
        transition) until :meth:`close`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self.publish_now()

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.publish_now()
                except Exception:  # a locked or vanished store must not kill the thread
                    logging.getLogger("buttress.dashboard").exception("publishing states failed")

        self._thread = threading.Thread(target=loop, name="buttress-publisher", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread, detach the listeners, write a last sample and mark this source
        stopped."""
        if self._closed:
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for remove in self._removers:
            remove()
        self._removers.clear()
        if self._global_remove is not None:
            self._global_remove()
            self._global_remove = None
        self._closed = True
        try:
            self.publish_now()
        finally:
            self.writer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
