"""The slow-dependency scenario: a dependency's latency jumps tenfold; who still gets answers?

The model (every figure is a default of :class:`SlowDependencyParams`):

* **Traffic.**  1,000 requests per second arrive at the calling service (a Poisson stream, open
  loop), spread at random over 2 service instances.  Each request has a criticality, drawn
  independently: 10% ``critical``, 20% ``high``, 30% ``low``, 40% ``sheddable``.  The arrivals
  (times, classes, instances) depend only on the seed, so every strategy faces the very same
  requests.
* **Calls.**  Each request makes one call to the dependency.  Whoever asked gives up after 1 s
  (the caller's timeout, the same for every strategy: a timed-out call is a failed request).
  Responses take 1 ms on the network.
* **Dependency.**  100 workers in front of one FIFO queue (of at most 10,000 calls).  Service
  times are log-normal with mean 25 ms (shape ``sigma = 0.5``): a capacity of 4,000 calls per
  second, so normal load is 25% of it.  The dependency never learns that a caller gave up: a
  timed-out call still takes a worker when its turn comes.
* **The slowdown.**  Calls that *start service* between 10 s and 20 s take ten times as long (mean
  250 ms): the dependency's latency jumps tenfold and its capacity drops to 400 calls per second,
  40% of the offered load.  Critical traffic alone is 100 calls per second, 25% of that; critical
  and high together 300, 75% of it.
* **Run.**  Requests arrive until 30 s; the simulation runs on until each has its outcome.

Without protection the dependency's queue grows by 600 calls a second; after about 0.7 s a call
waits longer than the timeout, so from then on nearly every call fails, whatever its class, and the
backlog (work for callers who have left) outlives the slowdown.  With a bulkhead, an adaptive
concurrency limit and priority shedding in front of the calls, the calls in flight stay near what
the dependency can serve in time, so admitted calls are answered in time; the shedder spends that
concurrency on the most critical classes first.  Critical traffic fits in the degraded capacity
with room to spare, which is why it can keep its success rate: no policy can serve more critical
traffic than the dependency can answer.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from buttress.errors import AttemptTimeout, ConfigError
from buttress.lab.sim.calls import Call, Dependency
from buttress.lab.sim.checks import DependencyParams, check_period, integer, positive
from buttress.lab.sim.guards import (
    SHED_THRESHOLDS,
    SLOW_STRATEGIES,
    CallGuard,
    ProtectedCalls,
    SlowStrategy,
    Unprotected,
)
from buttress.lab.sim.measure import percentile
from buttress.lab.sim.report import Column, StrategyResult
from buttress.policies.shed import Criticality, parse_criticality

from .common import TrafficRun, TrafficScenario
from .dependency_runs import dependency_for, per_instance

__all__ = [
    "SHED_THRESHOLDS",
    "SLOW_STRATEGIES",
    "CallGuard",
    "ProtectedCalls",
    "SlowDependency",
    "SlowDependencyParams",
    "SlowStrategy",
    "Unprotected",
    "arrivals",
    "percentile",
]

CLASSES: tuple[Criticality, ...] = tuple(sorted(Criticality, reverse=True))
"""The classes, most critical first (table order)."""


@dataclass(frozen=True, slots=True)
class SlowDependencyParams(DependencyParams):
    """The scenario's knobs (times in seconds of simulated time).  See the module docstring.

    ``mix`` maps criticality names (``critical``, ``high``, ``low``, ``sheddable``) to their shares
    of the traffic; shares are normalised, so only their ratios matter.
    """

    rate: float = 1000.0
    mix: Mapping[str, float] = field(
        default_factory=lambda: {"critical": 0.1, "high": 0.2, "low": 0.3, "sheddable": 0.4}
    )
    instances: int = 2
    workers: int = 100
    service_time: float = 0.025
    service_sigma: float = 0.5
    slowdown: float = 10.0
    slow_start: float = 10.0
    slow_end: float = 20.0
    duration: float = 30.0
    queue_limit: int = 10_000
    timeout: float = 1.0
    network_delay: float = 0.001
    target: float = 0.99
    window: float = 1.0
    step: float = 0.1

    def __post_init__(self) -> None:
        positive("rate", self.rate)
        integer("instances", self.instances, 1)
        positive("timeout", self.timeout)
        self.check_dependency()
        self._check_mix()
        if not _number(self.service_sigma) or not 0 <= self.service_sigma < 3:
            raise ConfigError("service_sigma", self.service_sigma, "must be within [0, 3)")
        if not _number(self.slowdown) or not 1 <= self.slowdown < math.inf:
            raise ConfigError("slowdown", self.slowdown, "must be a finite factor >= 1")
        check_period(("slow_start", self.slow_start), ("slow_end", self.slow_end), self.duration)

    def _check_mix(self) -> None:
        if not isinstance(self.mix, Mapping) or not self.mix:
            raise ConfigError("mix", self.mix, "must map criticality names to shares")
        for name, share in self.mix.items():
            parse_criticality(name, f"mix[{name!r}]")
            if not _number(share) or not share >= 0:
                raise ConfigError(f"mix[{name!r}]", share, "must be a share >= 0")
        if not sum(self.mix.values()) > 0:
            raise ConfigError("mix", dict(self.mix), "the shares must not all be 0")

    def shares(self) -> dict[Criticality, float]:
        """Each class's share of the traffic, normalised to sum to 1 (absent classes: 0)."""
        total = float(sum(self.mix.values()))
        out = dict.fromkeys(Criticality, 0.0)
        for name, share in self.mix.items():
            out[parse_criticality(name)] += share / total
        return out

    @property
    def slow_capacity(self) -> float:
        """The same during the slowdown: ``capacity / slowdown``."""
        return self.capacity / self.slowdown


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def arrivals(params: SlowDependencyParams, seed: int) -> list[tuple[float, int, int]]:
    """Every request of a run as ``(time, class value, instance)``; depends on the seed only."""
    rng = random.Random(f"slow-dependency:{seed}:arrivals")
    shares = params.shares()
    classes = [c for c in CLASSES if shares[c] > 0]
    weights = [shares[c] for c in classes]
    cum: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    out: list[tuple[float, int, int]] = []
    t = rng.expovariate(params.rate)
    n_inst = params.instances
    while t < params.duration:
        u = rng.random() * acc
        k = 0
        while k < len(cum) - 1 and u >= cum[k]:
            k += 1
        out.append((t, int(classes[k]), rng.randrange(n_inst)))
        t += rng.expovariate(params.rate)
    return out


class _Call(Call):
    """A request's one call; ``sent`` is also when the request was issued."""

    __slots__ = ("cls", "guard", "slow")

    def __init__(
        self, cls: int, issued: float, slow: bool, guard: CallGuard, ticket: object
    ) -> None:
        super().__init__(ticket, issued)
        self.cls = cls
        self.slow = slow
        self.guard = guard


class _Busy(Exception):
    """The dependency answered 503 at once: its queue was full."""


_E503 = _Busy("503: queue full")

COLUMNS = (
    Column("strategy", "name"),
    Column("critical (slow)", "critical_success_slow", "percent"),
    Column("critical p99 (slow)", "critical_p99_slow", "ms"),
    Column("high", "high_success_slow", "percent"),
    Column("low", "low_success_slow", "percent"),
    Column("sheddable", "sheddable_success_slow", "percent"),
    Column("all (slow)", "success_slow", "percent"),
    Column("all (before)", "success_before", "percent"),
    Column("recovery", "recovery_seconds", "recovery"),
    Column("how", "summary"),
)
"""The slow-dependency table."""


class SlowDependency(TrafficScenario[SlowDependencyParams, SlowStrategy, tuple[float, int, int]]):
    """The ``slow-dependency`` scenario (see the module docstring for the model).

    :param params: the model's parameters.
    :param strategies: the strategies to compare, in table order (default: all built-in ones).
    """

    name = "slow-dependency"
    summary = (
        "a dependency's latency jumps tenfold for 10 s: critical traffic with and without "
        "bulkhead + adaptive limit + shedding"
    )
    notes = (
        "success = requests answered in time / requests; (slow) = requests issued during "
        "the slowdown, (before) before it;",
        "recovery: time after the slowdown ends from which every 1 s window of issued "
        "requests has >= 99% success (docs/lab.md).",
    )
    columns = COLUMNS

    def __init__(
        self,
        params: SlowDependencyParams | None = None,
        strategies: Sequence[SlowStrategy] = SLOW_STRATEGIES,
    ) -> None:
        super().__init__(params if params is not None else SlowDependencyParams(), strategies)

    def describe(self) -> str:
        p = self.params
        shares = p.shares()
        mix = ", ".join(f"{shares[c]:.0%} {c.label}" for c in CLASSES if shares[c] > 0)
        return (
            f"{p.rate:,.0f} req/s ({mix}) through {p.instances} caller instances to a "
            f"dependency of {p.workers} workers x {p.service_time * 1000:g} ms mean "
            f"(capacity {p.capacity:,.0f}/s);\n"
            f"from t={p.slow_start:g} s to t={p.slow_end:g} s its latency is x{p.slowdown:g} "
            f"(capacity {p.slow_capacity:,.0f}/s); callers give up after {p.timeout:g} s.\n"
            f"'(slow)' figures count the requests issued during the slowdown; p99 = 99th "
            f"percentile of their response times (a refusal answers at once, a timeout at "
            f"{p.timeout:g} s)."
        )

    def requests(self, seed: int) -> list[tuple[float, int, int]]:
        return arrivals(self.params, seed)

    def parameters(self) -> dict[str, Any]:
        p = self.params
        params: dict[str, Any] = {k: getattr(p, k) for k in p.__dataclass_fields__ if k != "mix"}
        params["mix"] = {c.label: round(s, 6) for c, s in p.shares().items() if s > 0}
        params["capacity"] = p.capacity
        params["slow_capacity"] = p.slow_capacity
        params["observed_after_recovery"] = p.duration - p.slow_end
        return params

    def simulate(self, strategy: SlowStrategy, seed: int) -> _SlowRun:
        return _SlowRun(self.params, strategy, seed)


class _SlowRun(TrafficRun[tuple[float, int, int], SlowStrategy]):
    """One strategy's run: the guards, the dependency and the tallies.

    ``tally[class]``: requests, successes; the same in the slowdown; the same before it.
    ``latencies[class]`` (all) and ``ok_latencies[class]`` (successes): of requests issued in the
    slowdown."""

    def __init__(self, p: SlowDependencyParams, strategy: SlowStrategy, seed: int) -> None:
        super().__init__(p)
        self.p = p
        self.guards = per_instance(
            strategy.build, self.sim, f"slow-dependency:{seed}:{strategy.name}", p.instances
        )
        self._lognorm = random.Random(f"slow-dependency:{seed}:service").lognormvariate
        self._mu = math.log(p.service_time) - p.service_sigma * p.service_sigma / 2
        self.dependency: Dependency[_Call] = dependency_for(
            self, p, service_time=self.service_time, timeout=p.timeout, busy=_E503
        )
        n_cls = len(Criticality)
        self.tally = [[0, 0, 0, 0, 0, 0] for _ in range(n_cls)]
        self.latencies: list[list[float]] = [[] for _ in range(n_cls)]
        self.ok_latencies: list[list[float]] = [[] for _ in range(n_cls)]
        self.limits: list[int] = []
        self._classes = list(Criticality)

    def service_time(self) -> float:
        p = self.p
        d = self._lognorm(self._mu, p.service_sigma)
        return d * p.slowdown if p.slow_start <= self.sim.now < p.slow_end else d

    def finish(self, call: _Call, ok: bool, latency: float) -> None:
        row = self.tally[call.cls]
        if ok:
            row[1] += 1
            self.succeeded[int(call.sent / self.p.step)] += 1
            if call.sent < self.p.slow_start:
                row[5] += 1
        if call.slow:
            if ok:
                row[3] += 1
                self.ok_latencies[call.cls].append(latency)
            self.latencies[call.cls].append(latency)

    def answer(self, call: _Call) -> None:
        now = self.sim.now
        call.guard.on_result(now, call.error, call.ticket, call.sent)
        self.finish(call, call.error is None, now - call.sent)

    def timed_out(self, call: _Call) -> None:
        timeout = self.p.timeout
        err = AttemptTimeout(timeout, policy="caller")
        call.guard.on_result(self.sim.now, err, call.ticket, call.sent)
        self.finish(call, False, timeout)

    def arrive(self, item: tuple[float, int, int]) -> None:
        _, cls, inst = item
        p = self.p
        now = self.sim.now
        guard = self.guards[inst]
        slow = p.slow_start <= now < p.slow_end
        row = self.tally[cls]
        row[0] += 1
        if slow:
            row[2] += 1
        elif now < p.slow_start:
            row[4] += 1
        self.issued[int(now / p.step)] += 1
        ticket = guard.admit(now, self._classes[cls])
        call = _Call(cls, now, slow, guard, ticket)
        if isinstance(ticket, BaseException):
            self.refused += 1
            call.open = False
            self.finish(call, False, 0.0)
        else:
            self.dependency.send(call)

    def start(self) -> None:
        self.sim.at(0.0, self.sample)

    def sample(self, _: object) -> None:
        """Every second: the guards' limits added up (nothing without limits)."""
        total = 0
        for g in self.guards:
            lim = g.limit
            if lim is None:
                return
            total += lim
        self.limits.append(total)
        if self.sim.now + 1.0 <= self.p.duration:
            self.sim.after(1.0, self.sample)

    def per_class(self) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Each class's figures, and the flat ones of the table."""
        per_class: dict[str, dict[str, Any]] = {}
        flat: dict[str, Any] = {}
        for c in CLASSES:
            req, good, req_slow, good_slow, req_before, good_before = self.tally[c]
            p99 = percentile(self.latencies[c], 0.99)
            rate_slow = good_slow / req_slow if req_slow else None
            per_class[c.label] = {
                "requests": req,
                "successes": good,
                "success_rate": round(good / req, 6) if req else None,
                "requests_slow": req_slow,
                "successes_slow": good_slow,
                "success_rate_slow": None if rate_slow is None else round(rate_slow, 6),
                "success_rate_before": round(good_before / req_before, 6) if req_before else None,
                "p50_slow": _r(percentile(self.latencies[c], 0.5)),
                "p99_slow": _r(p99),
                "p99_success_slow": _r(percentile(self.ok_latencies[c], 0.99)),
            }
            flat[f"{c.label}_success_slow"] = rate_slow
            flat[f"{c.label}_p99_slow"] = p99
        return per_class, flat

    def figures(self, strategy: SlowStrategy, n: int) -> StrategyResult:
        dep, tally = self.dependency, self.tally
        ok, n_slow, ok_slow, n_before, ok_before = (sum(r[i] for r in tally) for i in range(1, 6))
        per_class, flat = self.per_class()
        refusals: Counter[str] = Counter()
        for g in self.guards:
            if isinstance(g, ProtectedCalls):
                refusals.update(g.refusals)
        extra: dict[str, Any] = {
            **flat,
            "success_slow": ok_slow / n_slow if n_slow else None,
            "success_before": ok_before / n_before if n_before else None,
            "requests": n,
            "successes": ok,
            "dependency_calls": dep.calls,
            "refused": self.refused,
            "refusals": dict(sorted(refusals.items())),
            "timeouts": dep.timeouts,
            "dependency_rejections": dep.server.rejections,
            "wasted_services": dep.wasted,
            "max_queue": dep.server.max_queue,
            "classes": per_class,
            "limit_each_second": self.limits,
        }
        return self.result(strategy, requests=n, recovery_from=self.p.slow_end, extra=extra)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)
