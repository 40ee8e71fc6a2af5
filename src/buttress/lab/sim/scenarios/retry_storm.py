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

import math
import random
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from buttress.errors import AttemptTimeout, ConfigError
from buttress.lab.sim.engine import Server, Simulation
from buttress.lab.sim.report import ScenarioReport, StrategyResult
from buttress.lab.sim.strategies import STRATEGIES, ClientPolicy, Strategy

from .common import check_strategies, run_each

__all__ = [
    "DependencyBusy",
    "DependencyError",
    "RetryStorm",
    "RetryStormParams",
    "recovery_time",
]


class DependencyError(Exception):
    """The dependency answered 500 (it is in its outage)."""


class DependencyBusy(Exception):
    """The dependency answered 503 at once: its queue was full."""


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(name, value, "must be a finite number > 0")


@dataclass(frozen=True, slots=True)
class RetryStormParams:
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
        for name in ("clients", "instances", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "must be an integer >= 1")
        if self.instances > self.clients:
            raise ConfigError("instances", self.instances, f"must be <= clients ({self.clients})")
        if (
            isinstance(self.queue_limit, bool)
            or not isinstance(self.queue_limit, int)
            or self.queue_limit < 0
        ):
            raise ConfigError("queue_limit", self.queue_limit, "must be an integer >= 0")
        for name in ("request_interval", "client_timeout", "service_time", "duration"):
            _positive(name, getattr(self, name))
        _positive("window", self.window)
        _positive("step", self.step)
        if not 0 <= self.interval_spread < 1:
            raise ConfigError("interval_spread", self.interval_spread, "must be within [0, 1)")
        if not 0 <= self.network_delay < math.inf:
            raise ConfigError("network_delay", self.network_delay, "must be a finite number >= 0")
        if not 0 <= self.outage_start <= self.outage_end <= self.duration:
            raise ConfigError(
                "outage_end",
                self.outage_end,
                f"need 0 <= outage_start ({self.outage_start}) <= outage_end <= duration "
                f"({self.duration})",
            )
        ratio = self.window / self.step
        if abs(ratio - round(ratio)) > 1e-9:
            raise ConfigError("step", self.step, f"must divide window ({self.window}) evenly")
        if not 0 < self.target <= 1:
            raise ConfigError("target", self.target, "must be within (0, 1]")

    @property
    def offered_rate(self) -> float:
        """Client requests per second: ``clients / request_interval``."""
        return self.clients / self.request_interval

    @property
    def capacity(self) -> float:
        """Requests per second served when saturated: ``workers / service_time``."""
        return self.workers / self.service_time


def recovery_time(
    issued: Sequence[int],
    succeeded: Sequence[int],
    *,
    step: float,
    window: float,
    start: float,
    end: float,
    target: float,
) -> float | None:
    """How long after ``start`` the success rate stays at or above ``target`` for good.

    ``issued[b]`` / ``succeeded[b]`` count the requests *issued* in bucket ``[b * step, (b + 1) *
    step)`` and how many of those eventually succeeded.  Windows ``[t, t + window)`` start every
    ``step`` from ``start`` while they end by ``end``.  The answer is the earliest ``t - start``
    from which every later window has ``succeeded / issued >= target`` (a window without requests
    counts as fine); ``None`` when even the last window is below target, that is, no recovery
    within the run.
    """
    per = round(window / step)
    first = round(start / step)
    last = round(end / step) - per  # the last window's first bucket
    if last < first:
        return None
    lo = first
    n_issued = sum(issued[first : first + per])
    n_ok = sum(succeeded[first : first + per])
    last_bad: int | None = None
    for b in range(first, last + 1):
        if b > first:
            n_issued += issued[b + per - 1] - issued[b - 1]
            n_ok += succeeded[b + per - 1] - succeeded[b - 1]
        if n_issued and n_ok < target * n_issued - 1e-9:
            last_bad = b
    if last_bad is None:
        return 0.0
    if last_bad == last:
        return None
    return (last_bad + 1 - lo) * step


class _Request:
    __slots__ = ("attempt", "bucket", "policy", "prev_delay", "started")

    def __init__(self, policy: ClientPolicy, started: float, bucket: int) -> None:
        self.policy = policy
        self.started = started
        self.bucket = bucket
        self.attempt = 1
        self.prev_delay: float | None = None


class _Attempt:
    __slots__ = ("error", "open", "request", "sent", "ticket")

    def __init__(self, request: _Request, ticket: object, sent: float) -> None:
        self.request = request
        self.ticket = ticket
        self.sent = sent
        self.open = True
        self.error: BaseException | None = None


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


class RetryStorm:
    """The ``retry-storm`` scenario (see the module docstring for the model).

    :param params: the model's parameters.
    :param strategies: the strategies to compare, in table order (default: all built-in ones).
    """

    name = "retry-storm"
    summary = "1,000 clients, one dependency, a 10 s outage: how each retry strategy fares"

    def __init__(
        self,
        params: RetryStormParams | None = None,
        strategies: Sequence[Strategy] = STRATEGIES,
    ) -> None:
        self.params = params if params is not None else RetryStormParams()
        self.strategies = check_strategies(strategies)

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

    def run(
        self, seed: int, progress: Callable[[str, float], object] | None = None
    ) -> ScenarioReport:
        """Run every strategy on the same requests; deterministic for a given ``seed``."""
        p = self.params
        arrivals = arrival_times(p, seed)
        results = run_each(
            self.strategies,
            lambda s, report: self.run_strategy(s, seed, arrivals, report),
            progress,
        )
        params = asdict(p)
        params["offered_rate"] = p.offered_rate
        params["capacity"] = p.capacity
        params["observed_after_recovery"] = p.duration - p.outage_end
        notes = (
            "success = requests that eventually succeeded / requests issued; "
            "load amplif. = server calls / requests;",
            "peak load/capacity = most server calls in any 1 s / capacity per s; "
            "recovery: see above (docs/lab.md).",
        )
        return ScenarioReport(self.name, seed, self.describe(), params, tuple(results), notes=notes)

    def run_strategy(
        self,
        strategy: Strategy,
        seed: int,
        arrivals: Sequence[tuple[float, int]] | None = None,
        progress: Callable[[float], object] | None = None,
    ) -> StrategyResult:
        """Run one strategy (on ``arrivals``, by default those of ``seed``) and measure it."""
        p = self.params
        if arrivals is None:
            arrivals = arrival_times(p, seed)
        sim = Simulation()
        clock = sim.clock
        policies = [
            strategy.build(clock, random.Random(f"retry-storm:{seed}:{strategy.name}:{k}"))
            for k in range(p.instances)
        ]
        svc = random.Random(f"retry-storm:{seed}:service")
        expo = svc.expovariate
        rate = 1.0 / p.service_time
        step = p.step
        n_buckets = math.ceil(p.duration / step) + 1
        issued = [0] * n_buckets
        succeeded = [0] * n_buckets
        calls_per_second = [0] * (math.ceil(p.duration) + 1)
        outage_start, outage_end = p.outage_start, p.outage_end
        timeout, net = p.client_timeout, p.network_delay
        after = sim.after
        # server calls, attempts timed out at the client, wasted services, local refusals
        counts = [0, 0, 0, 0]
        instances = p.instances

        def on_response(att: _Attempt) -> None:
            if not att.open:
                return
            att.open = False
            req = att.request
            err = att.error
            req.policy.on_result(sim.now, err, att.ticket, att.sent)
            if err is None:
                succeeded[req.bucket] += 1
            else:
                fail(req, err)

        # Every attempt has the same timeout, so deadlines expire in the order attempts were sent:
        # one FIFO of (deadline, attempt) and a single sweeper entry on the event queue replace a
        # timer per attempt.  Attempts answered in time are skipped when they reach the front.
        waiting: deque[tuple[float, _Attempt]] = deque()
        sweeper = [False]  # is a sweep scheduled?

        def sweep(_: object) -> None:
            now = sim.now
            while waiting:
                deadline, att = waiting[0]
                if att.open and deadline > now:
                    sim.at(deadline, sweep)
                    return
                waiting.popleft()
                if att.open:
                    att.open = False
                    counts[1] += 1
                    err = AttemptTimeout(timeout, policy="client")
                    att.request.policy.on_result(now, err, att.ticket, att.sent)
                    fail(att.request, err)
            sweeper[0] = False

        def on_served(att: _Attempt) -> None:
            if not att.open:
                counts[2] += 1  # the client gave up already: wasted work
                return
            now = sim.now
            if outage_start <= now < outage_end:
                att.error = _E500
            after(net, on_response, att)

        server: Server[_Attempt] = Server(
            sim,
            workers=p.workers,
            queue_limit=p.queue_limit,
            service_time=lambda: expo(rate),
            on_done=on_served,
        )

        def send(req: _Request) -> None:
            now = sim.now
            ticket = req.policy.admit(now)
            if isinstance(ticket, BaseException):
                counts[3] += 1  # refused locally: never reaches the server, fails at once
                fail(req, ticket)
                return
            counts[0] += 1
            second = int(now)
            if second >= len(calls_per_second):
                calls_per_second.extend([0] * (second + 1 - len(calls_per_second)))
            calls_per_second[second] += 1
            att = _Attempt(req, ticket, now)
            if server.submit(att):
                waiting.append((now + timeout, att))
                if not sweeper[0]:
                    sweeper[0] = True
                    sim.at(now + timeout, sweep)
            else:
                att.error = _E503
                after(net, on_response, att)

        def fail(req: _Request, err: BaseException) -> None:
            delay = req.policy.next_delay(
                sim.now,
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
                after(delay, send, req)
            else:
                send(req)

        pos = [0]

        def arrive(client: int) -> None:
            now = sim.now
            policy = policies[client % instances]
            policy.on_request(now)
            req = _Request(policy, now, int(now / step))
            issued[req.bucket] += 1
            send(req)
            i = pos[0] + 1
            pos[0] = i
            if i < len(arrivals):
                t, c = arrivals[i]
                sim.at(t, arrive, c)

        if arrivals:
            sim.at(arrivals[0][0], arrive, arrivals[0][1])
        duration = p.duration
        sim.run(progress=None if progress is None else (lambda t: progress(t / duration)))

        n_requests = len(arrivals)
        calls = counts[0]
        give_ups: Counter[str] = Counter()
        stats: Counter[str] = Counter()
        for pol in policies:
            give_ups.update(pol.give_ups)
            stats.update(pol.stats())
        peak = max(calls_per_second)
        extra = {
            "client_requests": n_requests,
            "successes": sum(succeeded),
            "server_calls": calls,
            "server_rejections": server.rejections,
            "client_timeouts": counts[1],
            "wasted_services": counts[2],
            "local_refusals": counts[3],
            "max_queue": server.max_queue,
            "give_up_reasons": dict(sorted(give_ups.items())),
            **{k: stats[k] for k in sorted(stats)},
            "simulated_until": round(sim.now, 6),
            "events": sim.processed,
        }
        return StrategyResult(
            name=strategy.name,
            summary=strategy.summary,
            success_rate=sum(succeeded) / n_requests if n_requests else 1.0,
            load_amplification=calls / n_requests if n_requests else 0.0,
            peak_load_over_capacity=peak / p.capacity,
            recovery_seconds=recovery_time(
                issued,
                succeeded,
                step=step,
                window=p.window,
                start=p.outage_end,
                end=p.duration,
                target=p.target,
            ),
            extra=extra,
        )
