"""Per-call cost of the limiting policies: rate limiter, bulkhead, adaptive limit, load shedder.

What is measured: calling a function that returns at once (``work(x) -> x``), once per iteration,
through each contender; every row is in ns per call, *including* the call itself, and each group has
the bare call as its baseline row, so ``row - baseline`` is the overhead.  Each figure is the median
of several runs of a timed loop (``time.perf_counter``, garbage collector on); a loop's length is
calibrated so that one run lasts about ``RUN_SECONDS``.  Limits are set
so high that no call is ever refused: this is the success path.

Groups:

* ``ratelimit-sync``: one in-memory acquire plus the call.  Buttress's :class:`RateLimiter` as a
  policy (decorator) and through ``try_acquire``; pyrate-limiter (its default in-memory log bucket,
  and its GCRA state bucket, ``try_acquire(blocking=False)``); limits (``MemoryStorage`` with the
  fixed-window, moving-window and sliding-window-counter strategies, ``hit``).
* ``bulkhead-sync`` / ``bulkhead-async``: Buttress's :class:`Bulkhead` as a decorator, against the
  standard library's semaphores used the same way (``with sem:``), which offer no queue bound, no
  wait bound, no deadline and no events.
* ``limits-sync``: the adaptive concurrency limit (Vegas, Gradient2; Vegas with windowed samples:
  Netflix's defaults, where these instant calls fall under ``min_rtt_threshold``, then with the
  threshold at 0 so every sample is aggregated, average and p90), the load shedder, and the four
  limiting policies in one pipeline (rate limiter + load shedder + adaptive limit + bulkhead).
* ``ratelimit-saturated`` (issue 20): the same rate limiters at a realistic limit (1,000/s) driven
  far above it, so the windows are full and almost every call is refused (``try_acquire`` /
  ``hit`` returning false).  Interleaved rounds, garbage collector on, medians with the IQR.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from _timing import dist_version, interleaved, median_spread, spread_note
from buttress import AdaptiveLimit, Bulkhead, LoadShedder, Pipeline, RateLimiter
from buttress.policies.limits import Gradient2, Vegas, WindowSpec

RUN_SECONDS = 0.15
QUICK_RUN_SECONDS = 0.03
RUNS = 7
QUICK_RUNS = 3
HUGE = 10**12


SATURATED_LIMIT = 1000


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def _loop(fn: Callable[[int], Any], n: int) -> float:
    rep = itertools.repeat(None, n)
    t0 = time.perf_counter()
    for _ in rep:
        fn(1)
    return time.perf_counter() - t0


def time_sync(fn: Callable[[int], Any], run_seconds: float, runs: int) -> float:
    """Median ns per call of ``fn(1)`` over ``runs`` loops of about ``run_seconds`` each."""
    n = 64
    while True:
        took = _loop(fn, n)
        if took >= run_seconds / 10 or n >= 1 << 24:
            break
        n *= 4
    n = max(1, int(n * run_seconds / max(took, 1e-9)))
    # The median run, garbage collector on (issue 20: what a service pays, not the best case).
    return statistics.median(_loop(fn, n) / n for _ in range(runs)) * 1e9


def time_async(fn: Callable[[int], Awaitable[Any]], run_seconds: float, runs: int) -> float:
    """Median ns per ``await fn(1)``, all loops inside one event loop."""

    async def loop(n: int) -> float:
        rep = itertools.repeat(None, n)
        t0 = time.perf_counter()
        for _ in rep:
            await fn(1)
        return time.perf_counter() - t0

    async def main() -> float:
        n = 64
        while True:
            took = await loop(n)
            if took >= run_seconds / 10 or n >= 1 << 24:
                break
            n *= 4
        n = max(1, int(n * run_seconds / max(took, 1e-9)))
        return statistics.median([await loop(n) / n for _ in range(runs)]) * 1e9

    return asyncio.run(main())


def _row(
    group: str, name: str, ns: float, baseline: bool = False, note: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "group": group,
        "name": name,
        "value": round(ns, 1),
        "unit": "ns/call",
        "baseline": baseline,
        "lower_is_better": True,
    }
    if note:
        row["note"] = note
    return row


def ratelimit_contenders(
    limit: int | None = None,
) -> tuple[dict[str, Callable[[int], Any]], list[str]]:
    """The rate limiters, each allowing ``limit`` calls per second (``None``: so many that every
    call is admitted).  With a real limit the callers here run far above it, so the limiters are
    saturated: most calls are refused, and the windows hold ``limit`` entries."""
    made: dict[str, Callable[[int], Any]] = {}
    rate = HUGE if limit is None else limit
    per_second = 10**9 if limit is None else limit
    if limit is None:  # a refused call raises from the decorator: only on the success path
        made["buttress RateLimiter (decorator)"] = RateLimiter(rate, burst=rate)(work)
    direct = RateLimiter(rate, burst=rate)
    acquire = direct.try_acquire

    def buttress_try(x: int) -> int:
        acquire()
        return work(x)

    made["buttress RateLimiter.try_acquire()"] = buttress_try
    missing: list[str] = []
    try:
        from pyrate_limiter import GCRA, Duration, Limiter, Rate, StateBucket

        log = Limiter(Rate(per_second, Duration.SECOND))
        gcra = Limiter(StateBucket([Rate(per_second, Duration.SECOND)], algorithm=GCRA()))

        def pyrate_log(x: int) -> int:
            log.try_acquire("k", blocking=False)
            return work(x)

        def pyrate_gcra(x: int) -> int:
            gcra.try_acquire("k", blocking=False)
            return work(x)

        v = dist_version("pyrate-limiter")
        made[f"pyrate-limiter {v} in-memory log"] = pyrate_log
        made[f"pyrate-limiter {v} GCRA state bucket"] = pyrate_gcra
    except ImportError:
        missing.append("pyrate-limiter")
    try:
        from limits import RateLimitItemPerSecond, storage, strategies

        item = RateLimitItemPerSecond(per_second)
        v = dist_version("limits")
        for label, cls in [
            ("fixed window", strategies.FixedWindowRateLimiter),
            ("moving window", strategies.MovingWindowRateLimiter),
            ("sliding window counter", strategies.SlidingWindowCounterRateLimiter),
        ]:
            hit = cls(storage.MemoryStorage()).hit

            def limits_hit(x: int, hit: Callable[..., bool] = hit) -> int:
                hit(item, "k")
                return work(x)

            made[f"limits {v} {label} (memory)"] = limits_hit
    except ImportError:
        missing.append("limits")
    return made, missing


def saturated_rows(quick: bool) -> list[dict[str, Any]]:
    """Every rate limiter at a realistic limit (1,000 calls/s, burst 1,000) driven far above it,
    so nearly every call is refused and the windows are full: contenders interleaved, garbage
    collector on, medians of the rounds with their interquartile range."""
    g = "ratelimit-saturated"
    made, _ = ratelimit_contenders(SATURATED_LIMIT)
    contenders = {"bare call": work, **made}
    samples = interleaved(contenders, 5 if quick else 15, 0.002 if quick else 0.02)
    rows = []
    for name, xs in samples.items():
        med, _ = median_spread(xs)
        note = spread_note(xs)
        if name != "bare call":
            note += f"; limit {SATURATED_LIMIT:,}/s, almost every call refused"
        rows.append(_row(g, name, med * 1e9, baseline=name == "bare call", note=note))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    secs = QUICK_RUN_SECONDS if quick else RUN_SECONDS
    runs = QUICK_RUNS if quick else RUNS
    rows: list[dict[str, Any]] = []

    bare = time_sync(work, secs, runs)
    abare = time_async(awork, secs, runs)

    # -- rate limiter ------------------------------------------------------------------------------
    g = "ratelimit-sync"
    rows.append(_row(g, "bare call", bare, baseline=True))
    made, missing = ratelimit_contenders()
    for name, fn in made.items():
        rows.append(_row(g, name, time_sync(fn, secs, runs)))
    if missing:  # peers come with the `bench` extra; say which were absent rather than fail
        print(f"bench_limits: not installed, not measured: {', '.join(missing)}")
    rows.extend(saturated_rows(quick))

    # -- bulkhead ----------------------------------------------------------------------------------
    g = "bulkhead-sync"
    rows.append(_row(g, "bare call", bare, baseline=True))
    rows.append(
        _row(g, "buttress Bulkhead(10) (decorator)", time_sync(Bulkhead(10)(work), secs, runs))
    )
    b = Bulkhead(10)

    def manual(x: int) -> int:
        if not b.try_acquire():
            raise RuntimeError("full")
        try:
            return work(x)
        finally:
            b.release()

    rows.append(_row(g, "buttress Bulkhead try_acquire/release", time_sync(manual, secs, runs)))
    sem = threading.BoundedSemaphore(10)

    def with_sem(x: int) -> int:
        with sem:
            return work(x)

    rows.append(
        _row(
            g,
            "threading.BoundedSemaphore(10)",
            time_sync(with_sem, secs, runs),
            note="reference: no queue bound, no wait bound, no events",
        )
    )

    g = "bulkhead-async"
    rows.append(_row(g, "bare await", abare, baseline=True))
    rows.append(
        _row(g, "buttress Bulkhead(10) (decorator)", time_async(Bulkhead(10)(awork), secs, runs))
    )

    def make_asem() -> Callable[[int], Awaitable[int]]:
        box: list[asyncio.Semaphore] = []

        async def with_asem(x: int) -> int:
            if not box:
                box.append(asyncio.Semaphore(10))
            async with box[0]:
                return await awork(x)

        return with_asem

    rows.append(
        _row(
            g,
            "asyncio.Semaphore(10)",
            time_async(make_asem(), secs, runs),
            note="reference: no queue bound, no wait bound, no events",
        )
    )

    # -- adaptive limit and shedding ---------------------------------------------------------------
    g = "limits-sync"
    rows.append(_row(g, "bare call", bare, baseline=True))
    rows.append(
        _row(
            g, "buttress AdaptiveLimit(Vegas)", time_sync(AdaptiveLimit(Vegas())(work), secs, runs)
        )
    )
    rows.append(
        _row(
            g,
            "buttress AdaptiveLimit(Gradient2)",
            time_sync(AdaptiveLimit(Gradient2())(work), secs, runs),
        )
    )
    rows.append(
        _row(
            g,
            "buttress AdaptiveLimit(Vegas, window=True)",
            time_sync(AdaptiveLimit(Vegas(), window=True)(work), secs, runs),
            note="Netflix's window defaults: these ~0 s calls fall under min_rtt_threshold",
        )
    )
    rows.append(
        _row(
            g,
            "buttress AdaptiveLimit(Vegas, window, threshold 0)",
            time_sync(
                AdaptiveLimit(Vegas(), window=WindowSpec(min_rtt_threshold=0))(work), secs, runs
            ),
            note="every sample added to a 1 s window; Vegas updated once per window",
        )
    )
    rows.append(
        _row(
            g,
            "buttress AdaptiveLimit(Vegas, window p90, threshold 0)",
            time_sync(
                AdaptiveLimit(Vegas(), window=WindowSpec(percentile=0.9, min_rtt_threshold=0))(
                    work
                ),
                secs,
                runs,
            ),
            note="rtts kept (up to 1,000) and sorted once per window",
        )
    )
    rows.append(_row(g, "buttress LoadShedder(100)", time_sync(LoadShedder(100)(work), secs, runs)))
    four = Pipeline(
        [RateLimiter(HUGE, burst=HUGE), LoadShedder(100), AdaptiveLimit(Vegas()), Bulkhead(100)],
        name="bench",
    )
    rows.append(
        _row(
            g,
            "buttress rate limiter + shedder + adaptive limit + bulkhead",
            time_sync(four(work), secs, runs),
        )
    )
    return rows


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(f"{r['group']:16} {r['name']:60} {r['value']:10.1f} {r['unit']}")
