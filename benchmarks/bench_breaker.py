"""Circuit breakers: success-path overhead; throughput of a protected 1 ms call, 1 and 2 threads.

Overhead: calling a function that succeeds at once through each breaker (closed), minus calling
the bare function.  Each figure is the median of many runs of a timed loop
(``time.perf_counter``, garbage collector on); a loop's length is calibrated so one run lasts
``RUN_SECONDS``.

Contenders, all used as decorators with their default configuration:

* ``buttress CircuitBreaker()``: a 100-call count window, failure-rate and slow-call-rate
  thresholds;
* ``buttress CircuitBreaker(time window 60 s)``: a 60-bucket time window;
* ``circuitbreaker`` 2.x ``@circuit`` (consecutive failures only): the group's baseline, the
  figure to beat;
* ``pybreaker`` 1.x ``CircuitBreaker()`` (consecutive failures; holds a lock across the call);
* async: ``aiobreaker`` ``CircuitBreaker()`` and ``purgatory`` ``AsyncCircuitBreakerFactory()``.

Throughput: threads call ``time.sleep(0.001)`` through one breaker for ``SECONDS`` each; calls per
second with 1 and 2 threads, and the ratio (ideal 2.0: the breaker holds no lock across the call).
pybreaker's 2-thread figure is shown for contrast.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _timing import dist_version, median_async, median_sync
from buttress import CircuitBreaker

RUN_SECONDS = 0.002
RUNS = 300
QUICK_RUNS = 60
SECONDS = 2.0
QUICK_SECONDS = 0.5


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def _sync_rows(runs: int) -> list[dict[str, Any]]:
    import circuitbreaker
    import pybreaker

    contenders: list[tuple[str, Callable[[int], Any], bool]] = [
        ("buttress CircuitBreaker() (count window)", CircuitBreaker()(work), False),
        (
            "buttress CircuitBreaker(time window 60 s)",
            CircuitBreaker(window_type="time", window_size=60)(work),
            False,
        ),
        (
            f"circuitbreaker {dist_version('circuitbreaker')} @circuit",
            circuitbreaker.circuit(work),
            True,
        ),
        (
            f"pybreaker {dist_version('pybreaker')} CircuitBreaker()",
            pybreaker.CircuitBreaker()(work),
            False,
        ),
    ]
    bare = median_sync(work, runs, RUN_SECONDS)
    rows = []
    for name, fn, baseline in contenders:
        value = max(0.0, (median_sync(fn, runs, RUN_SECONDS) - bare) * 1e9)
        rows.append(
            {
                "group": "breaker-success-sync",
                "name": name,
                "value": value,
                "unit": "ns/call",
                "baseline": baseline,
                "lower_is_better": True,
                "note": f"overhead over a bare call of {bare * 1e9:.0f} ns",
            }
        )
    return rows


def _async_rows(runs: int) -> list[dict[str, Any]]:
    import aiobreaker
    import purgatory

    async def measure() -> list[dict[str, Any]]:
        factory = purgatory.AsyncCircuitBreakerFactory()
        await factory.initialize()
        contenders: list[tuple[str, Callable[[int], Awaitable[Any]], bool]] = [
            ("buttress CircuitBreaker() (count window)", CircuitBreaker()(awork), True),
            (
                f"aiobreaker {dist_version('aiobreaker')} CircuitBreaker()",
                aiobreaker.CircuitBreaker()(awork),
                False,
            ),
            (
                f"purgatory {dist_version('purgatory')} AsyncCircuitBreakerFactory()",
                factory("bench")(awork),
                False,
            ),
        ]
        bare = await median_async(awork, runs, 2000)
        rows = []
        for name, fn, baseline in contenders:
            value = max(0.0, (await median_async(fn, runs, 2000) - bare) * 1e9)
            rows.append(
                {
                    "group": "breaker-success-async",
                    "name": name,
                    "value": value,
                    "unit": "ns/call",
                    "baseline": baseline,
                    "lower_is_better": True,
                    "note": f"overhead over a bare await of {bare * 1e9:.0f} ns",
                }
            )
        return rows

    return asyncio.run(measure())


def _throughput(fn: Callable[[], Any], threads: int, seconds: float) -> float:
    """Calls per second of ``fn`` from ``threads`` threads running for ``seconds``."""
    counts = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        start.wait()
        n = 0
        while not stop.is_set():
            fn()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def _sleep_1ms() -> None:
    time.sleep(0.001)


def _throughput_rows(seconds: float) -> list[dict[str, Any]]:
    import pybreaker

    ours = CircuitBreaker()(_sleep_1ms)
    theirs = pybreaker.CircuitBreaker()(_sleep_1ms)
    one = _throughput(ours, 1, seconds)
    two = _throughput(ours, 2, seconds)
    pb_one = _throughput(theirs, 1, seconds)
    pb_two = _throughput(theirs, 2, seconds)
    group = "breaker-1ms-throughput"
    return [
        {
            "group": group,
            "name": "buttress CircuitBreaker(), 1 thread",
            "value": one,
            "unit": "calls/s",
            "baseline": True,
            "lower_is_better": False,
        },
        {
            "group": group,
            "name": "buttress CircuitBreaker(), 2 threads",
            "value": two,
            "unit": "calls/s",
            "baseline": False,
            "lower_is_better": False,
            "note": f"{two / one:.2f}x one thread (target >= 1.8x)",
        },
        {
            "group": group,
            "name": f"pybreaker {dist_version('pybreaker')}, 1 thread",
            "value": pb_one,
            "unit": "calls/s",
            "baseline": False,
            "lower_is_better": False,
        },
        {
            "group": group,
            "name": f"pybreaker {dist_version('pybreaker')}, 2 threads",
            "value": pb_two,
            "unit": "calls/s",
            "baseline": False,
            "lower_is_better": False,
            "note": f"{pb_two / pb_one:.2f}x one thread (a lock is held across the call)",
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    runs = QUICK_RUNS if quick else RUNS
    rows = _sync_rows(runs)
    rows += _async_rows(runs)
    rows += _throughput_rows(QUICK_SECONDS if quick else SECONDS)
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(f"{row['group']:<24} {row['name']:<58} {row['value']:>12.1f} {row['unit']}")
