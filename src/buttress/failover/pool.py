"""Endpoint pools: priorities, weights, active health, outlier ejection, panic, selection.

An :class:`EndpointPool` answers one question, *which endpoint should this request go to?*, and
learns from what happened.  It never does I/O and reads time only from its clock: drivers and
integrations (:mod:`buttress.failover.driver`, :mod:`buttress.integrations.http`) do the talking.

::

    acquire(exclude) ──> endpoint        (counts one request in flight on it)
    release(endpoint, outcome)           (feeds outlier detection)
    report_probe(endpoint, result)       (feeds active health checking)

How an endpoint is chosen::

      lazily: return ejected endpoints whose time is up; every `interval`: outlier sweep
         │
         ▼
      priority load (Envoy): health per level = min(100, 1.4 x healthy% ); spill to the next
      level as the healthy share falls; panic: route to all endpoints of a level
         │  draw 1..100 -> level p
         ▼
      candidates = healthy endpoints of p (all of p in panic), minus `exclude`
         │  (none left? healthy endpoints of any level not excluded, then any not excluded)
         ▼
      selection: power-of-two-choices least request (default) or smooth weighted round robin

An endpoint is *healthy* when its active check says so (or there is none) and outlier detection has
not ejected it.  Every ejection, return, active health change, change of priority load (a failover
or failback) and change of panic state is an event (:mod:`buttress.failover.events`), built only
when someone listens.

All methods are thread-safe: state changes under one lock, events are emitted after it is released.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Emitter
from buttress.options import check_integer

from .active import ActiveHealth, HealthCheck
from .events import BY_NOTE
from .outlier import OUTCOMES, Ejection, OutlierDetection, OutlierDetector, Return, Skip
from .priority import (
    DEFAULT_OVERPROVISIONING_FACTOR,
    DEFAULT_PANIC_THRESHOLD,
    PriorityLoad,
    check_overprovisioning_factor,
    check_panic_threshold,
    choose_priority,
    compute_priority_load,
)
from .selection import Selector, make_selector

__all__ = ["Endpoint", "EndpointPool", "EndpointStatus", "PoolSnapshot", "parse_endpoint"]

SCHEMES = frozenset({"http", "https", "tcp"})
_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint: a base URL (``http``, ``https`` or ``tcp``), its priority (0 is the highest;
    larger numbers are fallbacks) and its weight (``>= 1``) within its priority."""

    url: str
    priority: int = 0
    weight: int = 1
    name: str = ""

    @property
    def label(self) -> str:
        """``name`` if given, else the URL: the ``endpoint`` field of events."""
        return self.name or self.url


def parse_endpoint(spec: str | Endpoint | Mapping[str, Any], parameter: str) -> Endpoint:
    """Validate one endpoint given as a URL, an :class:`Endpoint` or a mapping with ``url`` and
    optional ``priority``, ``weight``, ``name``; :class:`ConfigError` naming ``parameter`` (and the
    field) otherwise.  The URL's trailing ``/`` is dropped."""
    if isinstance(spec, str):
        ep = Endpoint(spec)
    elif isinstance(spec, Endpoint):
        ep = spec
    elif isinstance(spec, Mapping):
        unknown = set(spec) - {"url", "priority", "weight", "name"}
        if unknown:
            raise ConfigError(
                parameter,
                dict(spec),
                f"unknown field(s) {sorted(unknown)}; expected url, priority, weight, name",
            )
        if "url" not in spec:
            raise ConfigError(f"{parameter}.url", None, "an endpoint needs a url")
        ep = Endpoint(
            spec["url"], spec.get("priority", 0), spec.get("weight", 1), spec.get("name", "")
        )
    else:
        raise ConfigError(parameter, spec, "must be a URL, an Endpoint or a mapping with 'url'")
    url = ep.url
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{parameter}.url", url, "must be a non-empty URL string")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"{parameter}.url", url, f"does not parse: {e}") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"{parameter}.url",
            url,
            f"needs a scheme of {', '.join(sorted(SCHEMES))} (like http://host:port)",
        )
    if not parts.hostname:
        raise ConfigError(f"{parameter}.url", url, "has no host")
    if parts.scheme == "tcp" and port is None:
        raise ConfigError(f"{parameter}.url", url, "a tcp endpoint needs a port")
    if parts.query or parts.fragment:
        raise ConfigError(f"{parameter}.url", url, "a base URL takes no query or fragment")
    p, w = ep.priority, ep.weight
    if isinstance(p, bool) or not isinstance(p, int) or p < 0:
        raise ConfigError(f"{parameter}.priority", p, "must be an integer >= 0 (0 is highest)")
    check_integer(f"{parameter}.weight", w, ge=1)
    if not isinstance(ep.name, str):
        raise ConfigError(f"{parameter}.name", ep.name, "must be a string")
    return Endpoint(url.strip().rstrip("/"), p, w, ep.name)


class _Host:
    """Mutable per-endpoint state (under the pool's lock).  Satisfies the selectors' Candidate."""

    __slots__ = ("active", "endpoint", "hc", "index", "level", "weight")

    def __init__(self, index: int, endpoint: Endpoint, level: int) -> None:
        self.index = index
        self.endpoint = endpoint
        self.weight = endpoint.weight
        self.level = level
        self.active = 0
        self.hc = ActiveHealth()


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One endpoint in a :class:`PoolSnapshot`."""

    endpoint: Endpoint
    healthy: bool
    checked_healthy: bool
    ejected: bool
    active: int
    ejection_multiplier: int
    ejections: int


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The pool at one instant: every endpoint's status and the priority load."""

    time: float
    endpoints: tuple[EndpointStatus, ...]
    priorities: tuple[int, ...]
    load: PriorityLoad


_Note = tuple[Any, ...]


class EndpointPool:
    """A pool of endpoints with Envoy's failover semantics.

    :param endpoints: URLs, :class:`Endpoint` objects or mappings (``url``, ``priority``,
        ``weight``, ``name``); at least one, no URL twice.
    :param selection: ``"least_request"`` (power of two choices, default), ``"round_robin"``
        (smooth weighted) or a :class:`~buttress.failover.selection.Selector`.
    :param overprovisioning_factor: default 1.4 (see :mod:`buttress.failover.priority`).
    :param panic_threshold: percent, default 50; 0 disables panic routing.
    :param outlier_detection: an :class:`~buttress.failover.outlier.OutlierDetection`; default one
        with Envoy's defaults; ``None`` turns passive detection off.
    :param health_check: the :class:`~buttress.failover.active.HealthCheck` settings a driver uses
        (the pool only keeps the state); ``None`` (default): no active checking.
    :param clock: where time is read.
    :param rng: the random source (a seeded :class:`random.Random` makes selection reproducible).
    :param name: the ``policy`` label of events.  Default ``"endpoint_pool"``.
    :param emitter: where events go (default an emitter named after the pool).
    """

    __slots__ = (
        "_by_endpoint",
        "_by_url",
        "_dirty",
        "_hosts",
        "_levels",
        "_load",
        "_lock",
        "_opf",
        "_outlier",
        "clock",
        "emitter",
        "health_check",
        "name",
        "outlier_detection",
        "panic_threshold",
        "priorities",
        "rng",
        "selector",
    )

    def __init__(
        self,
        endpoints: Iterable[str | Endpoint | Mapping[str, Any]],
        *,
        selection: str | Selector = "least_request",
        overprovisioning_factor: float = DEFAULT_OVERPROVISIONING_FACTOR,
        panic_threshold: float = DEFAULT_PANIC_THRESHOLD,
        outlier_detection: OutlierDetection | Any | None = _DEFAULT,
        health_check: HealthCheck | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        name: str = "endpoint_pool",
        emitter: Emitter | None = None,
    ) -> None:
        if isinstance(endpoints, str | bytes | Mapping | Endpoint):
            raise ConfigError("endpoints", endpoints, "must be a list of endpoints")
        eps = [parse_endpoint(e, f"endpoints[{i}]") for i, e in enumerate(endpoints)]
        if not eps:
            raise ConfigError("endpoints", [], "need at least one endpoint")
        seen: dict[str, int] = {}
        for i, e in enumerate(eps):
            if e.url in seen:
                raise ConfigError(
                    f"endpoints[{i}].url", e.url, f"is the same as endpoints[{seen[e.url]}]"
                )
            seen[e.url] = i
        self._opf = check_overprovisioning_factor(overprovisioning_factor)
        self.panic_threshold = check_panic_threshold(panic_threshold)
        if outlier_detection is _DEFAULT:
            outlier_detection = OutlierDetection()
        if outlier_detection is not None and not isinstance(outlier_detection, OutlierDetection):
            raise ConfigError(
                "outlier_detection", outlier_detection, "must be an OutlierDetection or None"
            )
        if health_check is not None and not isinstance(health_check, HealthCheck):
            raise ConfigError("health_check", health_check, "must be a HealthCheck or None")
        self.selector = make_selector(selection)
        self.priorities = tuple(sorted({e.priority for e in eps}))
        level_of = {p: i for i, p in enumerate(self.priorities)}
        self._hosts = [_Host(i, e, level_of[e.priority]) for i, e in enumerate(eps)]
        self._levels = [[h for h in self._hosts if h.level == lv] for lv in range(len(level_of))]
        self._by_endpoint = {h.endpoint: h for h in self._hosts}
        self._by_url = {h.endpoint.url: h for h in self._hosts}
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        self.name = name
        self.emitter = emitter if emitter is not None else Emitter(name)
        self.outlier_detection: OutlierDetection | None = outlier_detection
        self._outlier = (
            None
            if outlier_detection is None
            else OutlierDetector(
                outlier_detection, len(eps), now=clock.monotonic(), draw=self.rng.random
            )
        )
        self.health_check = health_check
        self._lock = threading.Lock()
        self._load = self._compute_locked()
        self._dirty = False

    def __repr__(self) -> str:
        return (
            f"EndpointPool(name={self.name!r}, endpoints={len(self._hosts)}, "
            f"priorities={list(self.priorities)}, selection={self.selector!r})"
        )

    # -- reading -----------------------------------------------------------------------------------

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """The endpoints, in the order given."""
        return tuple(h.endpoint for h in self._hosts)

    def endpoint(self, url_or_name: str) -> Endpoint:
        """The endpoint with this URL (or name)."""
        h = self._by_url.get(url_or_name.rstrip("/"))
        if h is None:
            for cand in self._hosts:
                if cand.endpoint.name == url_or_name:
                    return cand.endpoint
            raise KeyError(url_or_name)
        return h.endpoint

    def is_healthy(self, endpoint: Endpoint) -> bool:
        """Active check passing (or none) and not ejected."""
        h = self._host(endpoint)
        return self._healthy(h)

    @property
    def load(self) -> PriorityLoad:
        """The priority load in force (after any due ejection returns and sweeps)."""
        self.tick()
        return self._load

    def snapshot(self) -> PoolSnapshot:
        """Every endpoint's status and the priority load, now."""
        self.tick()
        od = self._outlier
        with self._lock:
            statuses = tuple(
                EndpointStatus(
                    h.endpoint,
                    self._healthy(h),
                    h.hc.healthy,
                    od is not None and od.is_ejected(h.index),
                    h.active,
                    0 if od is None else od.multiplier(h.index),
                    0 if od is None else od.ejections(h.index),
                )
                for h in self._hosts
            )
            return PoolSnapshot(self.clock.monotonic(), statuses, self.priorities, self._load)

    # -- the decisions -----------------------------------------------------------------------------

    def acquire(self, exclude: Collection[Endpoint] = ()) -> Endpoint:
        """Choose an endpoint for one request and count it in flight; pair with :meth:`release`.

        ``exclude``: endpoints this request already tried (a retry goes elsewhere when it can).
        """
        now = self.clock.monotonic()
        notes: list[_Note] = []
        od = self._outlier
        with self._lock:
            if od is not None and od.due(now):
                self._apply_locked(od.sweep(now), notes)
            if self._dirty:
                self._refresh_locked(notes)
            h = self._select_locked(exclude)
            h.active += 1
        if notes:
            self._emit(notes, now)
        return h.endpoint

    def release(self, endpoint: Endpoint, outcome: str | None = "success") -> None:
        """End a request started with :meth:`acquire`.

        ``outcome``: ``success``, ``server_error`` (5xx), ``gateway_error`` (502/503/504),
        ``local_failure`` (no answer: refused, reset, timed out), or ``None`` to not count it (a
        cancelled call, a call refused before it was sent).
        """
        if outcome is not None and outcome not in OUTCOMES:
            raise ConfigError("outcome", outcome, f"must be one of {sorted(OUTCOMES)} or None")
        h = self._host(endpoint)
        now = self.clock.monotonic()
        notes: list[_Note] = []
        od = self._outlier
        with self._lock:
            h.active -= 1
            if od is not None and outcome is not None:
                self._apply_locked(od.record(h.index, outcome, now), notes)
                if self._dirty:
                    self._refresh_locked(notes)
        if notes:
            self._emit(notes, now)

    def report_probe(self, endpoint: Endpoint, result: str, detail: str = "") -> None:
        """Feed one active probe result (``pass``, ``fail`` or ``error``) for ``endpoint``."""
        if result not in ("pass", "fail", "error"):
            raise ConfigError("result", result, "must be 'pass', 'fail' or 'error'")
        config = self.health_check if self.health_check is not None else HealthCheck()
        h = self._host(endpoint)
        now = self.clock.monotonic()
        notes: list[_Note] = []
        with self._lock:
            changed = h.hc.on_probe(result, config)
            if changed is not None:
                notes.append(("health", h.endpoint.label, changed, detail or result))
                self._dirty = True
                self._refresh_locked(notes)
        if notes:
            self._emit(notes, now)

    def tick(self) -> None:
        """Return endpoints whose ejection ended and run a due outlier sweep (``acquire`` does it
        too; drivers call this between rounds so that an idle pool stays current)."""
        od = self._outlier
        now = self.clock.monotonic()
        if od is None or not od.due(now):
            return
        notes: list[_Note] = []
        with self._lock:
            if od.due(now):
                self._apply_locked(od.sweep(now), notes)
            if self._dirty:
                self._refresh_locked(notes)
        if notes:
            self._emit(notes, now)

    # -- under the lock ----------------------------------------------------------------------------

    def _host(self, endpoint: Endpoint) -> _Host:
        h = self._by_endpoint.get(endpoint)
        if h is None:
            raise ConfigError("endpoint", endpoint, f"is not in pool {self.name!r}")
        return h

    def _healthy(self, h: _Host) -> bool:
        od = self._outlier
        return h.hc.healthy and (od is None or not od.is_ejected(h.index))

    def _compute_locked(self) -> PriorityLoad:
        levels = [(sum(1 for h in lv if self._healthy(h)), len(lv)) for lv in self._levels]
        return compute_priority_load(
            levels, overprovisioning_factor=self._opf / 100, panic_threshold=self.panic_threshold
        )

    def _refresh_locked(self, notes: list[_Note]) -> None:
        self._dirty = False
        old = self._load
        new = self._compute_locked()
        self._load = new
        if new.loads != old.loads:
            notes.append(("load", new.loads, old.loads, new.panic))
        if new.panic != old.panic:
            notes.append(("panic", new.panic, old.panic))

    def _apply_locked(self, decisions: list[Ejection | Return | Skip], notes: list[_Note]) -> None:
        hosts = self._hosts
        for d in decisions:
            label = hosts[d.index].endpoint.label
            if isinstance(d, Ejection):
                self._dirty = True
                notes.append(("ejected", label, d.reason, d.duration, d.times))
            elif isinstance(d, Return):
                self._dirty = True
                notes.append(("returned", label, d.ejected_for))
            else:
                notes.append(("skipped", label, d.reason, d.detector))

    def _select_locked(self, exclude: Collection[Endpoint]) -> _Host:
        load = self._load
        level = choose_priority(load.loads, self.rng.randint(1, 100))
        panic = load.panic[level] if load.panic else False
        pool = self._levels[level]
        cands = [
            h
            for h in pool
            if (panic or self._healthy(h)) and (not exclude or h.endpoint not in exclude)
        ]
        if not cands and exclude:
            # This level has nothing left for a retry: any healthy endpoint not tried yet (highest
            # priority first), else any endpoint not tried yet, else the level ignoring `exclude`.
            for lv in self._levels:
                cands = [h for h in lv if self._healthy(h) and h.endpoint not in exclude]
                if cands:
                    break
            if not cands:
                cands = [h for h in self._hosts if h.endpoint not in exclude]
        if not cands:
            cands = [h for h in pool if panic or self._healthy(h)] or pool
        return self.selector.choose(cands, self.rng)  # type: ignore[return-value]

    # -- events ------------------------------------------------------------------------------------

    def _emit(self, notes: list[_Note], now: float) -> None:
        em = self.emitter
        if not em.active:
            return
        pipe, me = em.pipeline, self.name
        for kind, *fields in notes:
            em.emit(BY_NOTE[kind](pipe, me, now, *fields))
