"""Shared timing loops for the micro-benchmarks (not a benchmark: ``run.py`` discovers only
``bench_*.py``).

Each figure is the best (lowest) seconds per call over ``runs`` timed loops
(``time.perf_counter``, garbage collector off while timing).  A sync loop's length is calibrated
(doubling from 100 calls) so one loop lasts at least ``run_seconds`` (default 2 ms).
"""

from __future__ import annotations

import gc
import importlib.metadata
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
