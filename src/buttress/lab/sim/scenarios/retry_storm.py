"""The retry-storm scenario: a short outage, and what each retry strategy turns it into.

The model (every figure below is a default of :class:`RetryStormParams`):

* **Clients.**  1,000 callers spread over 4 calling service instances (250 each).  Each caller sends
  one request every 1.6 s (each interval drawn uniformly in ``[0.9, 1.1] x 1.6 s``, first one at a
  random phase): 625 requests per second in all, *open loop*: a caller does not wait for its
  previous request before sending the next, as with users or upstream traffic.  The arrival times
  depend only on the seed, so every strategy faces exactly the same requests.  Each instance has
  its own client policy (and so its own retry budget), shared by its 250 callers.
* **Attempts.**  An attempt times out at the client after 1 s (a retryable error, like
  :class:`~buttress.AttemptTimeout`).  Responses take 1 ms on the network.
* **Dependency.**  40 workers, exponential service times of mean 40 ms: a capacity of 1,000
  requests per second, so normal load is 62.5% of capacity (1.6x headroom).  In front of the
  workers, a FIFO queue of at most 2,000 requests (2 s of work); an attempt arriving to a full
  queue is rejected at once (503).  The dependency never learns that a client gave up: a timed-out
  attempt still takes a worker when its turn comes, and that work is wasted.
* **Outage.**  From 10 s to 20 s every request the dependency completes fails (500), after its
  normal service time (as when its own database is down).  At 20 s it is healthy again.
* **Run.**  Requests are issued until 40 s; the simulation then runs on until every request has its
  final outcome.

Why retries can make this outage permanent: once attempts arrive faster than 1,000/s the queue
fills; a full queue is 2 s of work, longer than the client's 1 s timeout, so every attempt served
from it is already abandoned and every request fails, which causes more retries.  The outage's end
does not change that: the overload sustains itself (a *metastable* failure).  A strategy escapes
only if its load during the outage stays under capacity, which here means under 1.6x the normal
load.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from buttress.errors import AttemptTimeout, ConfigError
from buttress.lab.sim.calls import Call, Dependency
from buttress.lab.sim.checks import DependencyParams, check_period, integers, positive
from buttress.lab.sim.measure import recovery_time
from buttress.lab.sim.report import StrategyResult
from buttress.lab.sim.strategies import STRATEGIES, ClientPolicy, Strategy

from .common import TrafficRun, TrafficScenario
from .dependency_runs import dependency_for, per_instance

__all__ = ["DependencyBusy", "DependencyError", "RetryStorm", "RetryStormParams", "recovery_time"]


class DependencyError(Exception):
    """The dependency answered 500 (it is in its outage)."""


class DependencyBusy(Exception):
    """The dependency answered 503 at once: its queue was full."""


@dataclass(frozen=True, slots=True)
class RetryStormParams(DependencyParams):
    """The scenario's knobs (all times in seconds of simulated time).  See the module docstring."""

    clients: int = 1000
    instances: int = 4
    request_interval: float = 1.6
    interval_spread: float = 0.1
    client_timeout: float = 1.0
    network_delay: float = 0.001
    workers: int = 40
    service_time: float = 0.040
    queue_limit: int = 2000
    outage_start: float = 10.0
    outage_end: float = 20.0
    duration: float = 40.0
    window: float = 1.0
    step: float = 0.1
    target: float = 0.99

    def __post_init__(self) -> None:
        integers(self, ("clients", "instances"), 1)
        if self.instances > self.clients:
            raise ConfigError("instances", self.instances, f"must be <= clients ({self.clients})")
        for name in ("request_interval", "client_timeout"):
            positive(name, getattr(self, name))
        if not 0 <= self.interval_spread < 1:
            raise ConfigError("interval_spread", self.interval_spread, "must be within [0, 1)")
        self.check_dependency()
        check_period(
            ("outage_start", self.outage_start), ("outage_end", self.outage_end), self.duration
        )

    @property
    def offered_rate(self) -> float:
        """Client requests per second: ``clients / request_interval``."""
        return self.clients / self.request_interval


class _Request:
    """One client request, over all its attempts."""

    __slots__ = ("attempt", "bucket", "policy", "prev_delay", "started")

    def __init__(self, policy: ClientPolicy, started: float, bucket: int) -> None:
        self.policy = policy
        self.started = started
        self.bucket = bucket
        self.attempt = 1
        self.prev_delay: float | None = None


class _Attempt(Call):
    __slots__ = ("request",)

    def __init__(self, request: _Request, ticket: object, sent: float) -> None:
        super().__init__(ticket, sent)
        self.request = request


_E500 = DependencyError("500: dependency outage")
_E503 = DependencyBusy("503: queue full")


def arrival_times(params: RetryStormParams, seed: int) -> list[tuple[float, int]]:
    """Every client request of a run as ``(time, client)``, sorted; depends on the seed only."""
    rng = random.Random(f"retry-storm:{seed}:arrivals")
    lo = params.request_interval * (1.0 - params.interval_spread)
    hi = params.request_interval * (1.0 + params.interval_spread)
    out: list[tuple[float, int]] = []
    for c in range(params.clients):
        t = rng.uniform(0.0, params.request_interval)
        while t < params.duration:
            out.append((t, c))
            t += rng.uniform(lo, hi)
    out.sort()
    return out


class RetryStorm(TrafficScenario[RetryStormParams, Strategy, tuple[float, int]]):
    """The ``retry-storm`` scenario (see the module docstring for the model).

    :param params: the model's parameters.
    :param strategies: the strategies to compare, in table order (default: all built-in ones).
    """

    name = "retry-storm"
    summary = "1,000 clients, one dependency, a 10 s outage: how each retry strategy fares"
    notes = (
        "success = requests that eventually succeeded / requests issued; "
        "load amplif. = server calls / requests;",
        "peak load/capacity = most server calls in any 1 s / capacity per s; "
        "recovery: see above (docs/lab.md).",
    )

    def __init__(
        self, params: RetryStormParams | None = None, strategies: Sequence[Strategy] = STRATEGIES
    ) -> None:
        super().__init__(params if params is not None else RetryStormParams(), strategies)

    def describe(self) -> str:
        p = self.params
        return (
            f"{p.clients:,} clients in {p.instances} instances send {p.offered_rate:,.0f} req/s "
            f"({p.offered_rate / p.capacity:.1%} of capacity) to a dependency with capacity "
            f"{p.capacity:,.0f} req/s\n"
            f"({p.workers} workers x {p.service_time * 1000:g} ms mean, queue limit "
            f"{p.queue_limit:,}); client timeout {p.client_timeout:g} s per attempt.\n"
            f"The dependency fails every request from t={p.outage_start:g} s to "
            f"t={p.outage_end:g} s; requests are issued until t={p.duration:g} s.\n"
            f"recovery = time after t={p.outage_end:g} s from which every {p.window:g} s window "
            f"of issued requests has >= {p.target:.0%} success."
        )

    def requests(self, seed: int) -> list[tuple[float, int]]:
        return arrival_times(self.params, seed)

    def parameters(self) -> dict[str, Any]:
        p = self.params
        params = asdict(p)
        params["offered_rate"] = p.offered_rate
        params["capacity"] = p.capacity
        params["observed_after_recovery"] = p.duration - p.outage_end
        return params

    def simulate(self, strategy: Strategy, seed: int) -> _StormRun:
        return _StormRun(self.params, strategy, seed)


class _StormRun(TrafficRun[tuple[float, int], Strategy]):
    """One strategy's run: the clients' policies, the dependency and the tallies."""

    def __init__(self, p: RetryStormParams, strategy: Strategy, seed: int) -> None:
        super().__init__(p)
        self.p = p
        self.policies = per_instance(
            strategy.build, self.sim, f"retry-storm:{seed}:{strategy.name}", p.instances
        )
        expo = random.Random(f"retry-storm:{seed}:service").expovariate
        rate = 1.0 / p.service_time
        outage = (p.outage_start, p.outage_end)
        self.dependency: Dependency[_Attempt] = dependency_for(
            self,
            p,
            service_time=lambda: expo(rate),
            timeout=p.client_timeout,
            busy=_E503,
            failure=lambda now: _E500 if outage[0] <= now < outage[1] else None,
        )

    def arrive(self, item: tuple[float, int]) -> None:
        now = self.sim.now
        policy = self.policies[item[1] % self.p.instances]
        policy.on_request(now)
        req = _Request(policy, now, int(now / self.p.step))
        self.issued[req.bucket] += 1
        self.send(req)

    def send(self, req: _Request) -> None:
        now = self.sim.now
        ticket = req.policy.admit(now)
        if isinstance(ticket, BaseException):
            self.refused += 1  # fails at once
            self.fail(req, ticket)
            return
        self.dependency.send(_Attempt(req, ticket, now))

    def answer(self, att: _Attempt) -> None:
        req = att.request
        err = att.error
        req.policy.on_result(self.sim.now, err, att.ticket, att.sent)
        if err is None:
            self.succeeded[req.bucket] += 1
        else:
            self.fail(req, err)

    def timed_out(self, att: _Attempt) -> None:
        err = AttemptTimeout(self.p.client_timeout, policy="client")
        att.request.policy.on_result(self.sim.now, err, att.ticket, att.sent)
        self.fail(att.request, err)

    def fail(self, req: _Request, err: BaseException) -> None:
        delay = req.policy.next_delay(
            self.sim.now,
            attempt=req.attempt,
            started=req.started,
            error=err,
            previous_delay=req.prev_delay,
        )
        if delay is None:
            return
        req.attempt += 1
        req.prev_delay = delay
        if delay > 0:
            self.sim.after(delay, self.send, req)
        else:
            self.send(req)

    def figures(self, strategy: Strategy, n_requests: int) -> StrategyResult:
        dep = self.dependency
        give_ups: Counter[str] = Counter()
        stats: Counter[str] = Counter()
        for pol in self.policies:
            give_ups.update(pol.give_ups)
            stats.update(pol.stats())
        successes = sum(self.succeeded)
        extra: dict[str, Any] = {
            "client_requests": n_requests,
            "successes": successes,
            "server_calls": dep.calls,
            "server_rejections": dep.server.rejections,
            "client_timeouts": dep.timeouts,
            "wasted_services": dep.wasted,
            "local_refusals": self.refused,
            "max_queue": dep.server.max_queue,
            "give_up_reasons": dict(sorted(give_ups.items())),
            **{k: stats[k] for k in sorted(stats)},
        }
        return self.result(
            strategy, requests=n_requests, recovery_from=self.p.outage_end, extra=extra
        )
