"""The load driver: open-loop Poisson arrivals against the entry service, one sample per request.

**Open loop.**  Arrivals follow the schedule whatever the answers do: a request is sent at its
arrival time even when earlier ones are still waiting, as users arrive at a real shop.  (A closed
loop, where each client waits for its answer before the next request, slows down with the system and
hides overload.)  Inter-arrival times are exponential with mean ``1 / rate`` (a Poisson process),
drawn from a seeded :class:`random.Random`; during a burst the request kind's rate is the burst's.

**Good and bad.**  A request is *good* when it is answered with a status below 500 within the
client's ``timeout``; a 5xx, a refused or reset connection, or no answer in time is *bad*.  Every
request carries ``X-Buttress-Deadline-Ms`` (the timeout, so servers can stop work nobody waits for)
and, if its kind has one, ``X-Buttress-Criticality``.

**Orders.**  A request kind with ``order: true`` places a new order with a unique id; the driver
records it in a :class:`~buttress.chaos.checker.History`: invoked before sending, then ``ok`` on a
200 (acknowledged), ``fail`` on a 4xx (refused: definitely not stored), ``unknown`` otherwise.

**Its own lag.**  The driver shares two cores with the services it drives; when it is starved, its
requests leave late and its clock reads answers late, so a slow driver looks like a slow system.
Each sample therefore carries its *scheduling lag*: how late the request was sent against its
scheduled arrival time.  :func:`lag_stats` sums them up; the run is *starved* when the p99 lag is
above :data:`STARVED_LAG_FRACTION` of the client timeout (a tenth of every request's time budget
spent before it was even sent), and the lab then calls the run's verdict inconclusive.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from buttress.chaos.checker import History

from .spec import LoadSpec, RequestSpec

__all__ = [
    "STARVED_LAG_FRACTION",
    "Burst",
    "LoadDriver",
    "Sample",
    "lag_stats",
    "unless_starved",
    "window_stats",
]

DEADLINE_HEADER = "X-Buttress-Deadline-Ms"
CRITICALITY_HEADER = "X-Buttress-Criticality"
STARVED_LAG_FRACTION = 0.1
"""The driver is starved when its p99 scheduling lag is above this share of the client timeout."""


@dataclass(frozen=True, slots=True)
class Burst:
    """``kind`` arrives at ``rate`` per second from ``start`` to ``end`` (run seconds)."""

    kind: str
    start: float
    end: float
    rate: float


@dataclass(slots=True)
class Sample:
    """One request: its kind, scheduled arrival (run seconds), latency (s), HTTP status (0: no
    answer), whether it was good, whether it timed out (no answer within the client's timeout),
    its scheduling lag (s: how late it was sent against ``start``) and whether it was shed (a
    ``503`` with ``Retry-After``: refused so that it may come back, as load shedders answer)."""

    kind: str
    start: float
    latency: float
    status: int
    good: bool
    timed_out: bool = False
    lag: float = 0.0
    shed: bool = False


def _pct(values: Sequence[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def lag_stats(samples: Sequence[Sample], timeout: float) -> dict[str, Any]:
    """The driver's scheduling lag over ``samples``: p50, p99 and max (s), the limit (s) and
    whether the driver was starved (p99 above the limit: see :data:`STARVED_LAG_FRACTION`)."""
    limit = STARVED_LAG_FRACTION * timeout
    lags = [s.lag for s in samples]
    if not lags:
        return {"count": 0, "p50": None, "p99": None, "max": None, "late": 0,
                "limit": limit, "starved": False}  # fmt: skip
    p99 = _pct(lags, 0.99)
    return {
        "count": len(lags),
        "p50": _pct(lags, 0.5),
        "p99": p99,
        "max": max(lags),
        "late": sum(1 for x in lags if x > limit),
        "limit": limit,
        "starved": p99 > limit,
    }


def window_stats(samples: Sequence[Sample], since: float) -> dict[str, float]:
    """Requests started at or after ``since``: count, good fraction, p99 latency and p99
    scheduling lag (s)."""
    recent = [s for s in samples if s.start >= since]
    if not recent:
        return {"count": 0, "good": 1.0, "p99": 0.0, "lag_p99": 0.0}
    return {
        "count": float(len(recent)),
        "good": sum(s.good for s in recent) / len(recent),
        "p99": _pct([s.latency for s in recent], 0.99),
        "lag_p99": _pct([s.lag for s in recent], 0.99),
    }


class LoadDriver:
    """Sends the load of ``load`` to ``base_url`` for ``duration`` seconds.

    :param bursts: rate changes (the plan's ``burst`` faults).
    :param label: prefix of order ids (``<label>-000001``), unique per run.
    :param seed: seed of the arrival times and the products ordered.
    :param observe: called with each sample as it completes (the lab records SLIs with it).
    """

    def __init__(
        self,
        base_url: str,
        load: LoadSpec,
        *,
        duration: float,
        history: History,
        bursts: Sequence[Burst] = (),
        label: str = "run",
        seed: int = 1,
        observe: Callable[[Sample], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.load = load
        self.duration = duration
        self.history = history
        self.bursts = list(bursts)
        self.label = label
        self.rng = random.Random(seed)
        self.samples: list[Sample] = []
        self.observe = observe
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.t0 = 0.0

    def rate(self, kind: str, t: float) -> float:
        """Arrivals per second of ``kind`` at run second ``t``."""
        for b in self.bursts:
            if b.kind == kind and b.start <= t < b.end:
                return b.rate
        return self.load.requests[kind].rate

    def now(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.t0

    async def run(self, progress: Callable[[], None] | None = None) -> list[Sample]:
        """Send the whole load, wait for the last answers, return every sample."""
        self.t0 = time.monotonic()
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=None) as c:
            arrivals = [
                asyncio.create_task(self._arrivals(c, kind, spec))
                for kind, spec in self.load.requests.items()
            ]
            ticker = asyncio.create_task(self._tick(progress)) if progress else None
            try:
                await asyncio.gather(*arrivals)
                while self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
            finally:
                for t in [*arrivals, *self._tasks]:
                    t.cancel()
                if ticker is not None:
                    ticker.cancel()
                    await asyncio.gather(ticker, return_exceptions=True)
        return self.samples

    async def _tick(self, progress: Callable[[], None]) -> None:
        while True:
            progress()
            await asyncio.sleep(0.5)

    async def _arrivals(self, client: httpx.AsyncClient, kind: str, spec: RequestSpec) -> None:
        t = 0.0
        while True:
            t += self.rng.expovariate(self.rate(kind, t))
            if t >= self.duration:
                return
            delay = t - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._one(client, kind, spec, t))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, client: httpx.AsyncClient, kind: str, spec: RequestSpec, t: float) -> None:
        timeout = self.load.timeout
        n = next(self._ids)
        headers = {DEADLINE_HEADER: str(int(timeout * 1000))}
        if spec.criticality:
            headers[CRITICALITY_HEADER] = spec.criticality
        body = None
        pending = None
        if spec.order:
            order_id = f"{self.label}-{n:06d}"
            body = {"order_id": order_id, "sku": f"sku-{self.rng.randrange(20):02d}", "qty": 1}
            pending = self.history.add(order_id, process=n)
        started = time.monotonic()
        lag = max(0.0, started - self.t0 - t)
        status = 0
        timed_out = shed = False
        try:
            r = await asyncio.wait_for(
                client.request(spec.method, spec.path, json=body, headers=headers), timeout
            )
            status = r.status_code
            shed = status == 503 and "retry-after" in r.headers
        except TimeoutError:
            timed_out = True
        except (httpx.HTTPError, OSError):
            status = 0
        latency = time.monotonic() - started
        good = 0 < status < 500 and latency <= timeout
        if pending is not None:
            if status == 200:
                pending.ok()
            elif 400 <= status < 500:
                pending.fail()
            else:
                pending.unknown()
        sample = Sample(kind, t, latency, status, good, timed_out, lag, shed)
        self.samples.append(sample)
        if self.observe is not None:
            self.observe(sample)


def unless_starved(h: dict[str, Any], runs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``h``, made inconclusive (``passed`` None, said in ``observed``) when it failed and one of
    ``runs`` (mode: run) had a starved load driver: a starved driver makes a run look worse than
    its system is, so a comparison it lost cannot be judged (the lag figures are in the notes)."""
    starved = [m for m, run in runs.items() if (run.get("driver") or {}).get("starved")]
    if h["passed"] is False and starved:
        h["passed"] = None
        h["observed"] += f" (inconclusive: the load driver was starved in {starved[0]})"
    return h
