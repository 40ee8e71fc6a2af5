"""Passive outlier detection, as in Envoy: eject endpoints that answer worse than the others.

Sans-I/O: :class:`OutlierDetector` is told each result (:meth:`~OutlierDetector.record`) and when
time passes (:meth:`~OutlierDetector.sweep`, every ``interval`` seconds); it answers with what to do
(eject, return, skip).  It holds no lock: the :class:`~buttress.failover.pool.EndpointPool` that
owns it calls it under its own.

**Results.** ``success``; ``server_error`` (a 5xx other than 502/503/504); ``gateway_error``
(502, 503, 504); ``local_failure`` (connection refused, reset, timeout: as in Envoy without
``split_external_local_origin_errors``, counted as a 503, so both a 5xx and a gateway error).

**Detectors.**

* *Consecutive 5xx*: ``consecutive_5xx`` (default 5) 5xx-class results in a row eject at once
  (enforced with probability ``enforcing_consecutive_5xx`` %, default 100).  Any other result resets
  the count.
* *Consecutive gateway failures*: ``consecutive_gateway_failure`` (default 5) 502/503/504 or local
  failures in a row; enforced ``enforcing_consecutive_gateway_failure`` % (default **0**: detected
  and reported, not enforced, as in Envoy).
* *Success rate*, at every sweep: among endpoints not ejected with at least
  ``success_rate_request_volume`` (100) requests in the interval just ended, and only if there are
  at least ``success_rate_minimum_hosts`` (5) of them, with ``mean`` and the *population* standard
  deviation ``stdev`` of their success rates (in percent), eject each endpoint whose rate is below::

      mean - success_rate_stdev_factor * stdev          (factor 1.9; Envoy's 1900 / 1000)

  For rates {50, 100, 100, 100, 100}: mean 90, stdev 20, threshold 52, so the first is ejected.
  Enforced ``enforcing_success_rate`` % (100).
* *Failure percentage*, at every sweep: endpoints with at least
  ``failure_percentage_request_volume`` (50) requests, if at least
  ``failure_percentage_minimum_hosts`` (5) of them, are ejected when
  ``100 - success_rate >= failure_percentage_threshold`` (85).  Enforced
  ``enforcing_failure_percentage`` % (default **0**, as in Envoy).

**Ejection time** grows with repeats and decays.  On each ejection the multiplier ``m`` grows by one
while ``m * base < max + base``; the endpoint is ejected for::

    min(base_ejection_time * m, max_ejection_time) + U(0, max_ejection_time_jitter)

(30, 60, 90 ... up to 300 s with the defaults), and every sweep that finds it *not* ejected takes
one off ``m`` (down to 0).  An endpoint returns as soon as its time is up (checked on every
selection, where Envoy checks at the next sweep), with its consecutive counters reset.

**The cap.** An ejection happens only if afterwards at most ``max_ejection_percent`` (10) percent of
all endpoints (all priorities) are ejected: ``100 * (ejected + 1) / endpoints <= max``; with
``always_eject_one`` (default ``True``) the first ejection is always allowed.  Envoy's current
default for that switch is off, but client pools are small (2 endpoints and 10% would never eject
anything), and Envoy itself ejected at least one endpoint regardless of the cap before it became an
option.  Ejected endpoints count as unhealthy for priority load and panic, so a pool in panic still
sends them traffic.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.errors import ConfigError
from buttress.options import Options, duration, flag, integer, number

__all__ = [
    "Ejection",
    "OutlierDetection",
    "OutlierDetector",
    "Outcome",
    "Return",
    "Skip",
    "success_rate_threshold",
]

Outcome = Literal["success", "server_error", "gateway_error", "local_failure"]
OUTCOMES: frozenset[str] = frozenset({"success", "server_error", "gateway_error", "local_failure"})


def _percent(default: float, doc: str) -> Any:
    return number(default, doc + " (percent)", ge=0, le=100)


def _count(default: int, doc: str) -> Any:
    return integer(default, doc, ge=1)


@dataclass(frozen=True, kw_only=True)
class OutlierDetection(Options):
    """Outlier detection settings (Envoy's names and defaults; durations in seconds).  Every
    parameter is checked on construction; a bad one raises :class:`~buttress.errors.ConfigError`
    naming it."""

    policy: ClassVar[str] = "EndpointPool"

    interval: float = duration(
        10.0,
        "Seconds between sweeps (success rate, failure percentage, multiplier decay)",
        ge=None,
        gt=0,
    )
    base_ejection_time: float = duration(
        30.0, "Ejection time of a first ejection (multiplied by repeats)", ge=None, gt=0
    )
    max_ejection_time: float = duration(
        300.0, "The longest ejection; at least base_ejection_time", ge=None, gt=0
    )
    max_ejection_time_jitter: float = duration(0.0, "Random extra ejection time, up to this")
    max_ejection_percent: float = _percent(10.0, "The most endpoints ejected at once")
    always_eject_one: bool = flag(True, "The first ejection ignores max_ejection_percent")
    consecutive_5xx: int = _count(5, "5xx-class results in a row that eject")
    enforcing_consecutive_5xx: float = _percent(100.0, "Chance a consecutive_5xx ejection is made")
    consecutive_gateway_failure: int = _count(5, "Gateway failures in a row that eject")
    enforcing_consecutive_gateway_failure: float = _percent(
        0.0, "Chance a gateway-failure ejection is made"
    )
    success_rate_minimum_hosts: int = _count(5, "Endpoints with enough volume for success rate")
    success_rate_request_volume: int = _count(100, "Requests in an interval for success rate")
    success_rate_stdev_factor: float = number(
        1.9, "Ejected below mean - factor * stdev of the success rates", ge=0
    )
    enforcing_success_rate: float = _percent(100.0, "Chance a success-rate ejection is made")
    failure_percentage_threshold: float = _percent(85.0, "Failure share that ejects")
    failure_percentage_minimum_hosts: int = _count(
        5, "Endpoints with enough volume for failure percentage"
    )
    failure_percentage_request_volume: int = _count(
        50, "Requests in an interval for failure percentage"
    )
    enforcing_failure_percentage: float = _percent(
        0.0, "Chance a failure-percentage ejection is made"
    )

    def check(self) -> None:
        if self.max_ejection_time < self.base_ejection_time:
            raise ConfigError(
                "max_ejection_time",
                self.max_ejection_time,
                f"must be >= base_ejection_time ({self.base_ejection_time:g})",
            )


# --- what the detector answers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ejection:
    """Eject endpoint ``index`` for ``duration`` seconds (multiplier ``times``)."""

    index: int
    reason: str
    duration: float
    times: int


@dataclass(frozen=True, slots=True)
class Return:
    """Endpoint ``index`` is back after ``ejected_for`` seconds."""

    index: int
    ejected_for: float


@dataclass(frozen=True, slots=True)
class Skip:
    """Endpoint ``index`` was an outlier by ``detector`` but was not ejected (``reason``)."""

    index: int
    reason: str
    detector: str


Note = Ejection | Return | Skip


def success_rate_threshold(rates: list[float], stdev_factor: float) -> tuple[float, float]:
    """``(mean, mean - stdev_factor * stdev)`` of ``rates`` (population standard deviation)."""
    n = len(rates)
    mean = sum(rates) / n
    variance = sum((r - mean) ** 2 for r in rates) / n
    return mean, mean - stdev_factor * math.sqrt(variance)


class _Host:
    __slots__ = (
        "backoff",
        "consecutive_5xx",
        "consecutive_gateway",
        "ejected",
        "ejected_at",
        "ejected_for",
        "ejections",
        "ok",
        "total",
    )

    def __init__(self) -> None:
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.ok = 0
        self.total = 0
        self.ejected = False
        self.ejected_at = 0.0
        self.ejected_for = 0.0
        self.backoff = 0
        self.ejections = 0


class OutlierDetector:
    """The detector's state for ``size`` endpoints (indices ``0..size-1``).

    :param config: the :class:`OutlierDetection` settings.
    :param now: the time of creation (the first sweep is due at ``now + interval``).
    :param draw: a uniform ``[0, 1)`` source for enforcing percentages and jitter.
    """

    __slots__ = ("_draw", "_hosts", "_next_return", "config", "ejected_count", "next_sweep")

    def __init__(
        self,
        config: OutlierDetection,
        size: int,
        *,
        now: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._hosts = [_Host() for _ in range(size)]
        self._draw = draw
        self.next_sweep = now + config.interval
        self._next_return = math.inf
        self.ejected_count = 0

    # -- reading -----------------------------------------------------------------------------------

    def is_ejected(self, index: int) -> bool:
        """Whether endpoint ``index`` is ejected now."""
        return self._hosts[index].ejected

    def multiplier(self, index: int) -> int:
        """The ejection multiplier of endpoint ``index`` (ejections in a row, decaying)."""
        return self._hosts[index].backoff

    def ejections(self, index: int) -> int:
        """How many times endpoint ``index`` has been ejected in all."""
        return self._hosts[index].ejections

    def due(self, now: float) -> bool:
        """Is a sweep or a return due at ``now``?  (Cheap; the pool asks on every selection.)"""
        return now >= self.next_sweep or now >= self._next_return

    # -- inputs ------------------------------------------------------------------------------------

    def record(self, index: int, outcome: str, now: float) -> list[Note]:
        """Count one result of endpoint ``index``; may eject it (consecutive detectors)."""
        h = self._hosts[index]
        h.total += 1
        cfg = self.config
        if outcome == "success":
            h.ok += 1
            h.consecutive_5xx = 0
            h.consecutive_gateway = 0
            return []
        if outcome == "server_error":
            h.consecutive_gateway = 0
        else:
            h.consecutive_gateway += 1
        h.consecutive_5xx += 1
        if h.ejected:
            return []
        if h.consecutive_5xx >= cfg.consecutive_5xx:
            h.consecutive_5xx = 0
            return [self._eject(index, "consecutive_5xx", cfg.enforcing_consecutive_5xx, now)]
        if h.consecutive_gateway >= cfg.consecutive_gateway_failure:
            h.consecutive_gateway = 0
            return [
                self._eject(
                    index,
                    "consecutive_gateway_failure",
                    cfg.enforcing_consecutive_gateway_failure,
                    now,
                )
            ]
        return []

    def sweep(self, now: float) -> list[Note]:
        """Return endpoints whose time is up; if the interval has passed, run the sweep: decay the
        multipliers of endpoints not ejected, then the success-rate and failure-percentage
        detectors over the interval just ended."""
        notes: list[Note] = []
        returned: set[int] = set()
        if now >= self._next_return:
            nxt = math.inf
            for i, h in enumerate(self._hosts):
                if h.ejected:
                    if now - h.ejected_at >= h.ejected_for:
                        h.ejected = False
                        h.consecutive_5xx = 0
                        h.consecutive_gateway = 0
                        self.ejected_count -= 1
                        returned.add(i)
                        notes.append(Return(i, now - h.ejected_at))
                    else:
                        nxt = min(nxt, h.ejected_at + h.ejected_for)
            self._next_return = nxt
        if now < self.next_sweep:
            return notes
        cfg = self.config
        self.next_sweep = now + cfg.interval
        stats: list[tuple[int, int, int]] = []
        for i, h in enumerate(self._hosts):
            if not h.ejected:
                if h.backoff > 0 and i not in returned:  # as Envoy: no decay in the return sweep
                    h.backoff -= 1
                stats.append((i, h.ok, h.total))
            h.ok = 0
            h.total = 0
        volume = cfg.success_rate_request_volume
        sr_hosts = [(i, 100.0 * ok / t) for i, ok, t in stats if t >= volume]
        if sr_hosts and len(sr_hosts) >= cfg.success_rate_minimum_hosts:
            _, threshold = success_rate_threshold(
                [r for _, r in sr_hosts], cfg.success_rate_stdev_factor
            )
            for i, rate in sr_hosts:
                if rate < threshold and not self._hosts[i].ejected:
                    notes.append(self._eject(i, "success_rate", cfg.enforcing_success_rate, now))
        fp_hosts = [
            (i, 100.0 * ok / t) for i, ok, t in stats if t >= cfg.failure_percentage_request_volume
        ]
        if fp_hosts and len(fp_hosts) >= cfg.failure_percentage_minimum_hosts:
            for i, rate in fp_hosts:
                if 100.0 - rate >= cfg.failure_percentage_threshold and not self._hosts[i].ejected:
                    notes.append(
                        self._eject(i, "failure_percentage", cfg.enforcing_failure_percentage, now)
                    )
        return notes

    # -- ejection ----------------------------------------------------------------------------------

    def allows_ejection(self) -> bool:
        """Would one more ejection stay within ``max_ejection_percent``?"""
        n = len(self._hosts)
        if self.ejected_count == 0 and self.config.always_eject_one:
            return True
        return 100.0 * (self.ejected_count + 1) / n <= self.config.max_ejection_percent

    def _eject(self, index: int, reason: str, enforcing: float, now: float) -> Note:
        if not self.allows_ejection():
            return Skip(index, "cap", reason)
        if enforcing < 100.0 and not self._draw() * 100.0 < enforcing:
            return Skip(index, "not_enforced", reason)
        cfg = self.config
        h = self._hosts[index]
        if h.backoff * cfg.base_ejection_time < cfg.max_ejection_time + cfg.base_ejection_time:
            h.backoff += 1
        duration = min(cfg.base_ejection_time * h.backoff, cfg.max_ejection_time)
        if cfg.max_ejection_time_jitter > 0:
            duration += self._draw() * cfg.max_ejection_time_jitter
        h.ejected = True
        h.ejected_at = now
        h.ejected_for = duration
        h.ejections += 1
        self.ejected_count += 1
        self._next_return = min(self._next_return, now + duration)
        return Ejection(index, reason, duration, h.backoff)
