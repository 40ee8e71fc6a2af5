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
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from buttress.clock import Clock
from buttress.errors import AttemptTimeout, BulkheadFull, ConfigError, Rejected
from buttress.lab.sim.engine import Server, Simulation
from buttress.lab.sim.report import Column, ScenarioReport, StrategyResult
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import (
    AIMD,
    AdaptiveLimit,
    ConcurrencyLimitExceeded,
    Gradient2,
    LimitAlgorithm,
    Vegas,
)
from buttress.policies.shed import Criticality, LoadShedder, parse_criticality

from .common import check_strategies, run_each

__all__ = [
    "SHED_THRESHOLDS",
    "SLOW_STRATEGIES",
    "CallGuard",
    "ProtectedCalls",
    "SlowDependency",
    "SlowDependencyParams",
    "SlowStrategy",
    "Unprotected",
    "percentile",
]

CLASSES: tuple[Criticality, ...] = tuple(sorted(Criticality, reverse=True))
"""The classes, most critical first (table order)."""


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(name, value, "must be a finite number > 0")
    return float(value)


def _count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, value, f"must be an integer >= {low}")
    return value


@dataclass(frozen=True, slots=True)
class SlowDependencyParams:
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
        _positive("rate", self.rate)
        _count("instances", self.instances, 1)
        _count("workers", self.workers, 1)
        _count("queue_limit", self.queue_limit, 0)
        for name in ("service_time", "timeout", "duration", "window", "step"):
            _positive(name, getattr(self, name))
        if not isinstance(self.mix, Mapping) or not self.mix:
            raise ConfigError("mix", self.mix, "must map criticality names to shares")
        for name, share in self.mix.items():
            parse_criticality(name, f"mix[{name!r}]")
            if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
                raise ConfigError(f"mix[{name!r}]", share, "must be a share >= 0")
        if not sum(self.mix.values()) > 0:
            raise ConfigError("mix", dict(self.mix), "the shares must not all be 0")
        if (
            isinstance(self.service_sigma, bool)
            or not isinstance(self.service_sigma, int | float)
            or not 0 <= self.service_sigma < 3
        ):
            raise ConfigError("service_sigma", self.service_sigma, "must be within [0, 3)")
        if (
            isinstance(self.slowdown, bool)
            or not isinstance(self.slowdown, int | float)
            or not 1 <= self.slowdown < math.inf
        ):
            raise ConfigError("slowdown", self.slowdown, "must be a finite factor >= 1")
        if not 0 <= self.slow_start <= self.slow_end <= self.duration:
            raise ConfigError(
                "slow_end",
                self.slow_end,
                f"need 0 <= slow_start ({self.slow_start}) <= slow_end <= duration "
                f"({self.duration})",
            )
        if not 0 <= self.network_delay < math.inf:
            raise ConfigError("network_delay", self.network_delay, "must be a finite number >= 0")
        if not 0 < self.target <= 1:
            raise ConfigError("target", self.target, "must be within (0, 1]")
        ratio = self.window / self.step
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError("step", self.step, f"must divide window ({self.window}) evenly")

    def shares(self) -> dict[Criticality, float]:
        """Each class's share of the traffic, normalised to sum to 1 (absent classes: 0)."""
        total = float(sum(self.mix.values()))
        out = dict.fromkeys(Criticality, 0.0)
        for name, share in self.mix.items():
            out[parse_criticality(name)] += share / total
        return out

    @property
    def capacity(self) -> float:
        """Calls per second the dependency serves when saturated: ``workers / service_time``."""
        return self.workers / self.service_time

    @property
    def slow_capacity(self) -> float:
        """The same during the slowdown: ``capacity / slowdown``."""
        return self.capacity / self.slowdown


# --- how a caller guards its calls ---------------------------------------------------------------


class CallGuard(Protocol):
    """What the scenario's callers ask before and after each dependency call; one per instance."""

    def admit(self, now: float, c: Criticality) -> object:
        """May a call of class ``c`` go now?  An exception: refused at once; anything else: a
        ticket handed back to :meth:`on_result`."""
        ...

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        """An admitted call ended at ``now`` (``error`` is ``None`` on success)."""
        ...

    @property
    def limit(self) -> int | None:
        """The current concurrency limit, or ``None`` without one."""
        ...


class Unprotected:
    """No protection: every call goes to the dependency."""

    limit = None

    def admit(self, now: float, c: Criticality) -> object:
        return None

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        return None


class ProtectedCalls:
    """Any of :class:`buttress.LoadShedder` > :class:`buttress.AdaptiveLimit` >
    :class:`buttress.Bulkhead`, in the pipeline's default order (shedding 55, adaptive limit 58,
    bulkhead 60), driven with the policies' own decisions on the simulation's clock.

    Admission, as the executors do it: the shedder's ``try_acquire(c)`` (with the adaptive limit
    as its source: ``inflight < threshold[c] * limit``), then ``limit.try_acquire()``, then
    ``bulkhead.try_acquire()`` (no queue: a full bulkhead refuses at once).  A refusal by an inner
    policy ends the outer ones' calls with that :class:`~buttress.errors.Rejected` error, which the
    adaptive limit does not sample.  When a call ends: ``bulkhead.release()``, then
    ``limit.release(rtt, inflight, dropped)`` with ``rtt = now - sent``, a drop when the error is
    one of ``limit.drop_on`` (timeouts by default), and no sample for other errors.
    """

    __slots__ = ("bulkhead", "refusals", "shedder", "throttle")

    def __init__(
        self,
        *,
        bulkhead: Bulkhead | None = None,
        limit: AdaptiveLimit | None = None,
        shedder: LoadShedder | None = None,
    ) -> None:
        self.bulkhead = bulkhead
        self.throttle = limit
        self.shedder = shedder
        self.refusals: Counter[str] = Counter()

    @property
    def limit(self) -> int | None:
        if self.throttle is not None:
            return self.throttle.limit
        return None if self.bulkhead is None else self.bulkhead.max_concurrent

    def admit(self, now: float, c: Criticality) -> object:
        shedder, throttle, bulkhead = self.shedder, self.throttle, self.bulkhead
        if shedder is not None and not shedder.try_acquire(c):
            self.refusals["shed"] += 1
            return shedder.shed_error(c)
        n = 0
        if throttle is not None:
            n = throttle.try_acquire()
            if n == 0:
                if shedder is not None and shedder.source is None:
                    shedder.release()
                self.refusals["limit"] += 1
                return ConcurrencyLimitExceeded(
                    f"adaptive limit {throttle.name!r} reached",
                    policy=throttle.name,
                    limit=throttle.limit,
                    inflight=throttle.inflight,
                )
        if bulkhead is not None and not bulkhead.try_acquire():
            if throttle is not None:
                throttle.release(None, n)  # a Rejected: not sampled
            if shedder is not None and shedder.source is None:
                shedder.release()
            self.refusals["bulkhead"] += 1
            return BulkheadFull(f"bulkhead {bulkhead.name!r} is full", policy=bulkhead.name)
        return n

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        if self.bulkhead is not None:
            self.bulkhead.release()
        throttle = self.throttle
        if throttle is not None:
            assert isinstance(ticket, int)
            if error is None:
                throttle.release(now - sent, ticket, False)
            elif isinstance(error, throttle.drop_on) and not isinstance(error, Rejected):
                throttle.release(now - sent, ticket, True)
            else:
                throttle.release(None, ticket)
        if self.shedder is not None and self.shedder.source is None:
            self.shedder.release()


@dataclass(frozen=True, slots=True)
class SlowStrategy:
    """A named way of guarding the calls: ``build(clock, rng)`` makes one instance's guard."""

    name: str
    summary: str
    build: Callable[[Clock, random.Random], CallGuard]


BULKHEAD_SLOTS = 250
"""Each instance's bulkhead: 250 calls at once, no queue.  Sized for the caller's own resources
(its connection pool), not for the dependency: 500 in all, 20 times what a healthy dependency
needs in flight (1,000 calls per second x 25 ms) and 5 times its 100 workers."""

SHED_THRESHOLDS: Mapping[str | Criticality, float] = {"sheddable": 0.5, "low": 0.6, "high": 0.7}
"""The shedder's utilisation thresholds (critical keeps 1.0).  ``high`` at 0.7 reserves 30% of
the limit for critical traffic: its share of the dependency during the slowdown (100 of 400 calls
per second, 25%) plus a margin.  The shipped 0.9 reserves 10%, less than critical needs here."""


def _none(clock: Clock, rng: random.Random) -> CallGuard:
    return Unprotected()


def _bulkhead(clock: Clock, rng: random.Random) -> CallGuard:
    return ProtectedCalls(bulkhead=Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock))


def _static(clock: Clock, rng: random.Random) -> CallGuard:
    bulkhead = Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock)
    shedder = LoadShedder(bulkhead, thresholds=SHED_THRESHOLDS, clock=clock)
    return ProtectedCalls(bulkhead=bulkhead, shedder=shedder)


def _guard(algorithm: LimitAlgorithm, clock: Clock) -> CallGuard:
    limit = AdaptiveLimit(algorithm, clock=clock)
    return ProtectedCalls(
        bulkhead=Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock),
        limit=limit,
        shedder=LoadShedder(limit, thresholds=SHED_THRESHOLDS, clock=clock),
    )


def aimd() -> AIMD:
    """The scenario's AIMD: the shipped defaults (``min_limit=20``, ``backoff_ratio=0.9``) with a
    call slower than 0.5 s (half the caller's timeout) counted as a drop (the shipped 5 s is longer
    than any call can last here) and ``max_limit`` at the bulkhead's size."""
    return AIMD(max_limit=BULKHEAD_SLOTS, timeout=0.5)


def gradient2() -> Gradient2:
    """The scenario's Gradient2: the shipped defaults, ``max_limit`` at the bulkhead's size."""
    return Gradient2(max_limit=BULKHEAD_SLOTS)


def vegas(rng: random.Random) -> Vegas:
    """The scenario's Vegas: the shipped defaults, ``max_limit`` at the bulkhead's size, seeded."""
    return Vegas(max_limit=BULKHEAD_SLOTS, rng=rng)


SLOW_STRATEGIES: tuple[SlowStrategy, ...] = (
    SlowStrategy("none", "no protection (the caller's 1 s timeout only)", _none),
    SlowStrategy("bulkhead", f"Bulkhead({BULKHEAD_SLOTS}), no queue", _bulkhead),
    SlowStrategy("bulkhead+shed", "bulkhead + LoadShedder(bulkhead), a static limit", _static),
    SlowStrategy(
        "buttress",
        "bulkhead + AdaptiveLimit(AIMD) + LoadShedder(limit)",
        lambda clock, rng: _guard(aimd(), clock),
    ),
    SlowStrategy(
        "buttress-gradient2",
        "as buttress, with Gradient2",
        lambda clock, rng: _guard(gradient2(), clock),
    ),
    SlowStrategy(
        "buttress-vegas",
        "as buttress, with Vegas",
        lambda clock, rng: _guard(vegas(rng), clock),
    ),
)
"""The strategies compared by default, in table order."""


# --- measuring -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (``0 < q <= 1``) by the nearest-rank rule: the smallest value with at
    least ``q * n`` values at or below it; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[rank - 1]


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


class _Call:
    __slots__ = ("cls", "error", "guard", "issued", "open", "sent", "slow", "ticket")

    def __init__(
        self, cls: int, issued: float, slow: bool, guard: CallGuard, ticket: object
    ) -> None:
        self.cls = cls
        self.issued = issued
        self.sent = issued
        self.slow = slow
        self.guard = guard
        self.ticket = ticket
        self.open = True
        self.error: BaseException | None = None


class _Busy(Exception):
    """The dependency answered 503 at once: its queue was full."""


_E503 = _Busy("503: queue full")


class SlowDependency:
    """The ``slow-dependency`` scenario (see the module docstring for the model).

    :param params: the model's parameters.
    :param strategies: the strategies to compare, in table order (default: all built-in ones).
    """

    name = "slow-dependency"
    summary = (
        "a dependency's latency jumps tenfold for 10 s: critical traffic with and without "
        "bulkhead + adaptive limit + shedding"
    )

    def __init__(
        self,
        params: SlowDependencyParams | None = None,
        strategies: Sequence[SlowStrategy] = SLOW_STRATEGIES,
    ) -> None:
        self.params = params if params is not None else SlowDependencyParams()
        self.strategies = check_strategies(strategies)

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

    def run(
        self, seed: int, progress: Callable[[str, float], object] | None = None
    ) -> ScenarioReport:
        """Run every strategy on the same requests; deterministic for a given ``seed``."""
        p = self.params
        todo = arrivals(p, seed)
        results = run_each(
            self.strategies, lambda s, report: self.run_strategy(s, seed, todo, report), progress
        )
        params: dict[str, Any] = {k: getattr(p, k) for k in p.__dataclass_fields__ if k != "mix"}
        params["mix"] = {c.label: round(s, 6) for c, s in p.shares().items() if s > 0}
        params["capacity"] = p.capacity
        params["slow_capacity"] = p.slow_capacity
        params["observed_after_recovery"] = p.duration - p.slow_end
        notes = (
            "success = requests answered in time / requests; (slow) = requests issued during "
            "the slowdown, (before) before it;",
            "recovery: time after the slowdown ends from which every 1 s window of issued "
            "requests has >= 99% success (docs/lab.md).",
        )
        columns = (
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
        return ScenarioReport(
            self.name, seed, self.describe(), params, tuple(results), notes=notes, columns=columns
        )

    def run_strategy(
        self,
        strategy: SlowStrategy,
        seed: int,
        todo: Sequence[tuple[float, int, int]] | None = None,
        progress: Callable[[float], object] | None = None,
    ) -> StrategyResult:
        """Run one strategy (on ``todo``, by default the requests of ``seed``) and measure it."""
        from .retry_storm import recovery_time

        p = self.params
        if todo is None:
            todo = arrivals(p, seed)
        sim = Simulation()
        clock = sim.clock
        guards = [
            strategy.build(clock, random.Random(f"slow-dependency:{seed}:{strategy.name}:{k}"))
            for k in range(p.instances)
        ]
        svc = random.Random(f"slow-dependency:{seed}:service")
        lognorm = svc.lognormvariate
        sigma = p.service_sigma
        mu = math.log(p.service_time) - sigma * sigma / 2
        slow_start, slow_end, factor = p.slow_start, p.slow_end, p.slowdown

        def service_time() -> float:
            d = lognorm(mu, sigma)
            now = sim.now
            return d * factor if slow_start <= now < slow_end else d

        step = p.step
        n_buckets = math.ceil(p.duration / step) + 1
        issued = [0] * n_buckets
        succeeded = [0] * n_buckets
        n_cls = len(Criticality)
        # Per class: requests, successes; the same in the slowdown; the same before it.
        tally = [[0, 0, 0, 0, 0, 0] for _ in range(n_cls)]
        latencies: list[list[float]] = [[] for _ in range(n_cls)]  # requests in the slowdown
        ok_latencies: list[list[float]] = [[] for _ in range(n_cls)]
        counts = Counter[str]()
        timeout, net = p.timeout, p.network_delay
        after = sim.after
        limits: list[int] = []
        per_second = [0] * (math.ceil(p.duration) + 1)

        def finish(call: _Call, ok: bool, latency: float) -> None:
            row = tally[call.cls]
            if ok:
                row[1] += 1
                succeeded[int(call.issued / step)] += 1
                if call.issued < slow_start:
                    row[5] += 1
            if call.slow:
                if ok:
                    row[3] += 1
                    ok_latencies[call.cls].append(latency)
                latencies[call.cls].append(latency)

        def on_response(call: _Call) -> None:
            if not call.open:
                return
            call.open = False
            now = sim.now
            call.guard.on_result(now, call.error, call.ticket, call.sent)
            if call.error is None:
                finish(call, True, now - call.issued)
            else:
                counts["busy"] += 1
                finish(call, False, now - call.issued)

        waiting: deque[tuple[float, _Call]] = deque()
        sweeper = [False]

        def sweep(_: object) -> None:
            now = sim.now
            while waiting:
                deadline, call = waiting[0]
                if call.open and deadline > now:
                    sim.at(deadline, sweep)
                    return
                waiting.popleft()
                if call.open:
                    call.open = False
                    counts["timeouts"] += 1
                    err = AttemptTimeout(timeout, policy="caller")
                    call.guard.on_result(now, err, call.ticket, call.sent)
                    finish(call, False, timeout)
            sweeper[0] = False

        def on_served(call: _Call) -> None:
            if not call.open:
                counts["wasted"] += 1
                return
            after(net, on_response, call)

        server: Server[_Call] = Server(
            sim,
            workers=p.workers,
            queue_limit=p.queue_limit,
            service_time=service_time,
            on_done=on_served,
        )
        classes = list(Criticality)
        pos = [0]

        def arrive(item: tuple[int, int]) -> None:
            cls, inst = item
            now = sim.now
            guard = guards[inst]
            slow = slow_start <= now < slow_end
            row = tally[cls]
            row[0] += 1
            if slow:
                row[2] += 1
            elif now < slow_start:
                row[4] += 1
            issued[int(now / step)] += 1
            ticket = guard.admit(now, classes[cls])
            call = _Call(cls, now, slow, guard, ticket)
            if isinstance(ticket, BaseException):
                counts["refused"] += 1
                call.open = False
                finish(call, False, 0.0)
            else:
                counts["calls"] += 1
                second = int(now)
                if second >= len(per_second):
                    per_second.extend([0] * (second + 1 - len(per_second)))
                per_second[second] += 1
                if server.submit(call):
                    waiting.append((now + timeout, call))
                    if not sweeper[0]:
                        sweeper[0] = True
                        sim.at(now + timeout, sweep)
                else:
                    call.error = _E503
                    after(net, on_response, call)
            i = pos[0] + 1
            pos[0] = i
            if i < len(todo):
                t, c, k = todo[i]
                sim.at(t, arrive, (c, k))

        def sample(_: object) -> None:
            total = 0
            for g in guards:
                lim = g.limit
                if lim is None:
                    return
                total += lim
            limits.append(total)
            if sim.now + 1.0 <= p.duration:
                sim.after(1.0, sample)

        if todo:
            t0, c0, k0 = todo[0]
            sim.at(t0, arrive, (c0, k0))
        sim.at(0.0, sample)
        duration = p.duration
        sim.run(progress=None if progress is None else (lambda t: progress(t / duration)))

        n = len(todo)
        ok = sum(r[1] for r in tally)
        n_slow = sum(r[2] for r in tally)
        ok_slow = sum(r[3] for r in tally)
        n_before = sum(r[4] for r in tally)
        ok_before = sum(r[5] for r in tally)
        per_class: dict[str, dict[str, Any]] = {}
        flat: dict[str, Any] = {}
        for c in CLASSES:
            req, good, req_slow, good_slow, req_before, good_before = tally[c]
            p99 = percentile(latencies[c], 0.99)
            rate_slow = good_slow / req_slow if req_slow else None
            per_class[c.label] = {
                "requests": req,
                "successes": good,
                "success_rate": round(good / req, 6) if req else None,
                "requests_slow": req_slow,
                "successes_slow": good_slow,
                "success_rate_slow": None if rate_slow is None else round(rate_slow, 6),
                "success_rate_before": round(good_before / req_before, 6) if req_before else None,
                "p50_slow": _r(percentile(latencies[c], 0.5)),
                "p99_slow": _r(p99),
                "p99_success_slow": _r(percentile(ok_latencies[c], 0.99)),
            }
            flat[f"{c.label}_success_slow"] = rate_slow
            flat[f"{c.label}_p99_slow"] = p99
        refusals: Counter[str] = Counter()
        for g in guards:
            if isinstance(g, ProtectedCalls):
                refusals.update(g.refusals)
        extra: dict[str, Any] = {
            **flat,
            "success_slow": ok_slow / n_slow if n_slow else None,
            "success_before": ok_before / n_before if n_before else None,
            "requests": n,
            "successes": ok,
            "dependency_calls": counts["calls"],
            "refused": counts["refused"],
            "refusals": dict(sorted(refusals.items())),
            "timeouts": counts["timeouts"],
            "dependency_rejections": server.rejections,
            "wasted_services": counts["wasted"],
            "max_queue": server.max_queue,
            "classes": per_class,
            "limit_each_second": limits,
            "simulated_until": round(sim.now, 6),
            "events": sim.processed,
        }
        return StrategyResult(
            name=strategy.name,
            summary=strategy.summary,
            success_rate=ok / n if n else 1.0,
            load_amplification=counts["calls"] / n if n else 0.0,
            peak_load_over_capacity=max(per_second) / p.capacity,
            recovery_seconds=recovery_time(
                issued,
                succeeded,
                step=step,
                window=p.window,
                start=p.slow_end,
                end=p.duration,
                target=p.target,
            ),
            extra=extra,
        )


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)
