"""Shared timing loops for the micro-benchmarks (not a benchmark: ``run.py`` discovers only
``bench_*.py``).

Two ways of timing.  :func:`interleaved` (issue 20, the honest one): contenders take turns, round
after round, the garbage collector on, and each figure is a median with its interquartile range
(:func:`median_spread`).  :func:`best_sync` / :func:`best_async` (round 1, kept for the groups not
yet moved): the best (lowest) seconds per call over ``runs`` timed loops, collector off.  A sync
loop's length is calibrated (doubling from 100 calls) so one loop lasts at least ``run_seconds``
(default 2 ms).
"""

from __future__ import annotations

import gc
import importlib.metadata
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

RUN_SECONDS = 0.002


def calibrate(fn: Callable[[int], Any], run_seconds: float = RUN_SECONDS) -> int:
    """The smallest ``100 * 2**k`` calls of ``fn`` that take at least ``run_seconds``."""
    n = 100
    while True:
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        if time.perf_counter() - t0 >= run_seconds:
            return n
        n *= 2


def best_sync(fn: Callable[[int], Any], runs: int, run_seconds: float = RUN_SECONDS) -> float:
    """Best seconds per call of ``fn`` over ``runs`` timed loops of calibrated length."""
    n = calibrate(fn, run_seconds)
    best = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            best = min(best, (time.perf_counter() - t0) / n)
    finally:
        gc.enable()
    return best


async def best_async(fn: Callable[[int], Awaitable[Any]], runs: int, n: int) -> float:
    """Best seconds per await of ``fn`` over ``runs`` timed loops of ``n`` awaits."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            for i in range(n):
                await fn(i)
            best = min(best, (time.perf_counter() - t0) / n)
    finally:
        gc.enable()
    return best


def dist_version(dist: str) -> str:
    """The installed version of distribution ``dist``, or ``"?"`` (for the rows' names)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def median_spread(samples: list[float]) -> tuple[float, float]:
    """The median of ``samples`` and their spread: the interquartile range as a fraction of the
    median (0.05 = the middle half of the runs lie within 5% of each other)."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    mid = statistics.median(ordered)
    if len(ordered) < 4:
        spread = ordered[-1] - ordered[0]
    else:
        q = statistics.quantiles(ordered, n=4, method="inclusive")
        spread = q[2] - q[0]
    return mid, (spread / mid if mid else 0.0)


def interleaved(
    contenders: dict[str, Callable[[int], Any]], rounds: int, run_seconds: float = RUN_SECONDS
) -> dict[str, list[float]]:
    """Seconds per call of every contender, ``rounds`` samples each, taken in turns.

    Round ``r`` times every contender once, in an order rotated by ``r``, so a burst of load from
    the other tenants of a shared machine lands on all of them alike instead of on whichever ran
    during it.  The garbage collector stays on: the contenders' allocations cost what they cost in
    a service.  Each contender's loop length is calibrated once, before the rounds.
    """
    names = list(contenders)
    lengths = {name: calibrate(contenders[name], run_seconds) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = contenders[name], lengths[name]
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            samples[name].append((time.perf_counter() - t0) / n)
    return samples


def spread_note(samples: list[float]) -> str:
    """``median of 15 runs, IQR 4%`` for a row's note."""
    _, spread = median_spread(samples)
    return f"median of {len(samples)} interleaved runs, IQR {spread:.0%}"
