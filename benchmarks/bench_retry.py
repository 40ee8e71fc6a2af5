"""Success-path overhead of retrying: Buttress against tenacity, stamina, backoff; sync, async.

What is measured: calling a function that succeeds at once, through each wrapper, minus calling the
bare function.  Each figure is the best (lowest) of several runs of a timed loop
(``time.perf_counter``, garbage collector off while timing); a loop's length is calibrated so that
one run lasts about ``RUN_SECONDS``.  The bare call is measured the same way and shown on its own.

Wrappers, each configured for 3 attempts, retrying on any exception:

* ``buttress Retry()``: ``@Retry()`` with the default configuration (exponential backoff with full
  jitter and a RetryBudget);
* ``buttress pipeline``: ``Pipeline.builder().timeout(1.0).retry().fallback(None).build()`` as a
  decorator (three policies);
* ``tenacity``: ``@tenacity.retry(stop=tenacity.stop_after_attempt(3))``;
* ``stamina``: ``@stamina.retry(on=Exception, attempts=3)``;
* ``backoff``: ``@backoff.on_exception(backoff.expo, Exception, max_tries=3)``.

Groups: ``retry-sync`` and ``retry-async`` (overhead in ns/call, ratio to Buttress's ``Retry()``,
so a peer's ratio reads "times Buttress") and ``bare-call`` (the subtracted bare cost).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import buttress
from _timing import dist_version
from buttress import Pipeline, Retry

RUN_SECONDS = 0.002
QUICK_RUN_SECONDS = 0.002
RUNS = 200
QUICK_RUNS = 40


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def sync_wrappers() -> tuple[dict[str, Callable[[int], int]], list[str]]:
    """The sync contenders, by row name, and the peers that could not be imported."""
    made: dict[str, Callable[[int], int]] = {
        "buttress Retry()": Retry()(work),
        "buttress pipeline (timeout+retry+fallback)": (
            Pipeline.builder("bench").timeout(1.0).retry().fallback(None).build()(work)
        ),
    }
    missing: list[str] = []
    try:
        import tenacity

        made["tenacity @retry(stop_after_attempt(3))"] = tenacity.retry(
            stop=tenacity.stop_after_attempt(3)
        )(work)
    except ImportError:
        missing.append("tenacity")
    try:
        import stamina

        made["stamina @retry(on=Exception, attempts=3)"] = stamina.retry(on=Exception, attempts=3)(
            work
        )
    except ImportError:
        missing.append("stamina")
    try:
        import backoff

        made["backoff @on_exception(expo, max_tries=3)"] = backoff.on_exception(
            backoff.expo, Exception, max_tries=3
        )(work)
    except ImportError:
        missing.append("backoff")
    return made, missing


def async_wrappers() -> dict[str, Callable[[int], Awaitable[int]]]:
    """The async contenders (each library's decorator applied to an ``async def``)."""
    made: dict[str, Callable[[int], Awaitable[int]]] = {
        "buttress Retry()": Retry()(awork),
        "buttress pipeline (timeout+retry+fallback)": (
            Pipeline.builder("bench").timeout(1.0).retry().fallback(None).build()(awork)
        ),
    }
    try:
        import tenacity

        made["tenacity @retry(stop_after_attempt(3))"] = tenacity.retry(
            stop=tenacity.stop_after_attempt(3)
        )(awork)
    except ImportError:
        pass
    try:
        import stamina

        made["stamina @retry(on=Exception, attempts=3)"] = stamina.retry(on=Exception, attempts=3)(
            awork
        )
    except ImportError:
        pass
    try:
        import backoff

        made["backoff @on_exception(expo, max_tries=3)"] = backoff.on_exception(
            backoff.expo, Exception, max_tries=3
        )(awork)
    except ImportError:
        pass
    return made


def _loop(fn: Callable[[int], Any], n: int) -> float:
    repeat = itertools.repeat
    t0 = time.perf_counter()
    for _ in repeat(None, n):
        fn(1)
    return time.perf_counter() - t0


async def _aloop(fn: Callable[[int], Awaitable[Any]], n: int) -> float:
    repeat = itertools.repeat
    t0 = time.perf_counter()
    for _ in repeat(None, n):
        await fn(1)
    return time.perf_counter() - t0


def _calibrate(timed: Callable[[int], float], seconds: float) -> int:
    """A loop length whose run lasts about ``seconds``."""
    n = 100
    while True:
        took = timed(n)
        if took >= seconds / 4 or n >= 50_000_000:
            return max(100, int(n * seconds / max(took, 1e-9)))
        n *= 4


def best_ns_per_call(timed: Callable[[int], float], seconds: float, runs: int) -> float:
    """The lowest per-call time of ``runs`` runs, in ns, with the garbage collector off."""
    n = _calibrate(timed, seconds)
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            best = min(best, timed(n) / n)
    finally:
        if enabled:
            gc.enable()
    return best * 1e9


async def abest_ns_per_call(
    fn: Callable[[int], Awaitable[Any]], seconds: float, runs: int
) -> float:
    """:func:`best_ns_per_call` for a coroutine function, awaited in a loop on the running loop."""
    n = 100
    while True:
        took = await _aloop(fn, n)
        if took >= seconds / 4 or n >= 50_000_000:
            n = max(100, int(n * seconds / max(took, 1e-9)))
            break
        n *= 4
    best = float("inf")
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(runs):
            best = min(best, await _aloop(fn, n) / n)
    finally:
        if enabled:
            gc.enable()
    return best * 1e9


def _measure_async(seconds: float, runs: int) -> tuple[float, dict[str, float]]:
    """The bare ``await`` and every async contender, all timed inside one event loop."""

    async def main() -> tuple[float, dict[str, float]]:
        bare = await abest_ns_per_call(awork, seconds, runs)
        measured = {
            name: await abest_ns_per_call(fn, seconds, runs)
            for name, fn in async_wrappers().items()
        }
        return bare, measured

    return asyncio.run(main())


def _rows(
    group: str, bare_ns: float, measured: dict[str, float], notes: dict[str, str]
) -> list[dict[str, Any]]:
    rows = []
    for name, raw in measured.items():
        overhead = max(0.0, raw - bare_ns)
        note = f"{raw:,.0f} ns raw; {overhead / bare_ns:,.0f}x a bare call"
        if name in notes:
            note += f"; {notes[name]}"
        rows.append(
            {
                "group": group,
                "name": name,
                "value": overhead,
                "unit": "ns/call",
                "baseline": name == "buttress Retry()",
                "lower_is_better": True,
                "note": note,
            }
        )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    seconds = QUICK_RUN_SECONDS if quick else RUN_SECONDS
    runs = QUICK_RUNS if quick else RUNS
    notes = {
        "buttress Retry()": f"buttress {buttress.__version__}",
        "buttress pipeline (timeout+retry+fallback)": f"buttress {buttress.__version__}",
        "tenacity @retry(stop_after_attempt(3))": f"tenacity {dist_version('tenacity')}",
        "stamina @retry(on=Exception, attempts=3)": f"stamina {dist_version('stamina')}",
        "backoff @on_exception(expo, max_tries=3)": f"backoff {dist_version('backoff')}",
    }

    sync, missing = sync_wrappers()
    bare_sync = best_ns_per_call(lambda n: _loop(work, n), seconds, runs)
    measured = {
        name: best_ns_per_call(lambda n, fn=fn: _loop(fn, n), seconds, runs)  # type: ignore[misc]
        for name, fn in sync.items()
    }
    rows = _rows("retry-sync", bare_sync, measured, notes)

    bare_async, measured_async = _measure_async(seconds, runs)
    rows += _rows("retry-async", bare_async, measured_async, notes)
    rows += [
        {
            "group": "bare-call",
            "name": "sync: work(1)",
            "value": bare_sync,
            "unit": "ns/call",
            "baseline": True,
            "lower_is_better": True,
            "note": "subtracted from the retry-sync figures",
        },
        {
            "group": "bare-call",
            "name": "async: await awork(1)",
            "value": bare_async,
            "unit": "ns/call",
            "baseline": False,
            "lower_is_better": True,
            "note": "subtracted from the retry-async figures; one asyncio loop, no task switch",
        },
    ]
    if missing:
        rows[0]["note"] += f"; not installed: {', '.join(missing)}"
    return rows
