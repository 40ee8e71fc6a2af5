"""Shared timing loops for the micro-benchmarks (not a benchmark: ``run.py`` discovers only
``bench_*.py``).

Issue 20's rules: the garbage collector stays on, and figures are medians, with their spread
where it matters.  :func:`interleaved` / :func:`interleaved_mixed`: contenders take turns, round
after round, the order rotated, and each figure is a median with its interquartile range
(:func:`median_spread`).  :func:`median_sync` / :func:`median_async`: one contender's median
seconds per call over ``runs`` timed loops.  A sync loop's length is calibrated (doubling from 100
calls) so one loop lasts at least ``run_seconds`` (default 2 ms).
"""

from __future__ import annotations

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


def median_sync(fn: Callable[[int], Any], runs: int, run_seconds: float = RUN_SECONDS) -> float:
    """Median seconds per call of ``fn`` over ``runs`` timed loops of calibrated length, the
    garbage collector on (issue 20: what a service pays, not the best case)."""
    n = calibrate(fn, run_seconds)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


async def median_async(fn: Callable[[int], Awaitable[Any]], runs: int, n: int) -> float:
    """Median seconds per await of ``fn`` over ``runs`` timed loops of ``n`` awaits, the garbage
    collector on."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for i in range(n):
            await fn(i)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples)


async def interleaved_mixed(
    sync: dict[str, Callable[[int], Any]],
    aio: dict[str, Callable[[int], Awaitable[Any]]],
    rounds: int,
    n: int,
) -> dict[str, list[float]]:
    """Like :func:`interleaved`, for sync and async contenders together (inside one running
    event loop): ``rounds`` samples of ``n`` calls (or awaits) each, in turns, order rotated
    every round, the garbage collector on."""
    names = [*sync, *aio]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if name in sync:
                fn = sync[name]
                t0 = time.perf_counter()
                for i in range(n):
                    fn(i)
            else:
                afn = aio[name]
                t0 = time.perf_counter()
                for i in range(n):
                    await afn(i)
            samples[name].append((time.perf_counter() - t0) / n)
    return samples


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
