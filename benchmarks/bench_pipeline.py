"""The five-policy pipeline: success-path overhead per call, sync and asyncio.

The pipeline is the issue's: total timeout > retry > circuit breaker > rate limiter > bulkhead,
each with its shipped defaults except where a default would refuse calls in a tight loop::

    Timeout(10)                    soft total deadline (sets the deadline context variable)
    Retry()                        3 attempts, exponential backoff, RetryBudget(0.2, 10/s, 10 s)
    CircuitBreaker()               100-call count window
    RateLimiter(1e9)               GCRA bucket; a rate no loop can reach, so it never refuses
    Bulkhead(1000)                 no queue

Overhead = (time per call through the pipeline) - (time per call of the bare function), for a
function that returns at once; each figure is the median of many timed loops
(``time.perf_counter``, garbage collector on, a loop's length calibrated so one run lasts
``RUN_SECONDS``).  The target (not asserted) is 2 us per call, sync: Polly v8's
five-strategy pipeline in .NET measures 2.09 us.

Groups:

* ``pipeline sync vs async``: the five-policy pipeline sync and async with their bare calls, in
  interleaved rounds inside one event loop; the async row's note gives the paired median of
  async overhead / sync overhead (issue 20's target: at most 1.5x);
* ``pipeline-sync`` / ``pipeline-async``: the five-policy pipeline (the baseline row), the empty
  pipeline (the decorator's own cost), and the pipeline built one policy at a time (outermost
  first), so the step between two rows is what that layer adds;
* ``pipeline-layer-sync`` / ``pipeline-layer-async``: each policy alone in a pipeline, for
  comparison with the steps (the reference row is the empty pipeline, repeated from above).

``python benchmarks/bench_pipeline.py --profile`` prints a cProfile of the sync pipeline.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from _timing import interleaved_mixed, median_async, median_spread, median_sync
from buttress import Bulkhead, CircuitBreaker, Pipeline, RateLimiter, Retry, Timeout
from buttress.policies.base import Policy

RUN_SECONDS = 0.002
RUNS = 300
QUICK_RUNS = 40
ASYNC_N = 1000

NAMES = ("timeout", "retry", "circuit breaker", "rate limiter", "bulkhead")


def five() -> list[Policy]:
    """Fresh policies of the benchmarked pipeline, outermost first."""
    return [Timeout(10.0), Retry(), CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000)]


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def contenders() -> list[tuple[str, list[Policy], bool]]:
    """``(row name, policies, baseline)``: the five, the empty pipeline, then the prefixes."""
    rows: list[tuple[str, list[Policy], bool]] = [
        ("timeout > retry > breaker > rate limiter > bulkhead", five(), True),
        ("empty pipeline (the decorator only)", [], False),
    ]
    for k in range(1, len(NAMES)):
        rows.append((" > ".join(NAMES[:k]), five()[:k], False))
    return rows


def _row(group: str, name: str, overhead: float, bare: float, baseline: bool) -> dict[str, Any]:
    note = f"overhead over a bare call of {bare * 1e9:.0f} ns"
    if baseline and group == "pipeline-sync":
        note += "; target <= 2000 ns (Polly v8, 5 strategies: 2090 ns)"
    return {
        "group": group,
        "name": name,
        "value": max(0.0, overhead * 1e9),
        "unit": "ns/call",
        "baseline": baseline,
        "lower_is_better": True,
        "note": note,
    }


def sync_rows(runs: int) -> list[dict[str, Any]]:
    bare = median_sync(work, runs, RUN_SECONDS)
    rows = []
    for name, policies, baseline in contenders():
        fn = Pipeline(policies, name="bench")(work)
        assert fn(7) == 7
        rows.append(
            _row("pipeline-sync", name, median_sync(fn, runs, RUN_SECONDS) - bare, bare, baseline)
        )
    rows.append(_row("pipeline-layer-sync", "empty pipeline", rows[1]["value"] / 1e9, bare, True))
    for name, policy in zip(NAMES, five(), strict=True):
        fn = Pipeline([policy], name="bench")(work)
        assert fn(7) == 7
        rows.append(
            _row(
                "pipeline-layer-sync",
                f"{name} alone",
                median_sync(fn, runs, RUN_SECONDS) - bare,
                bare,
                False,
            )
        )
    return rows


def async_rows(runs: int) -> list[dict[str, Any]]:
    async def measure() -> list[dict[str, Any]]:
        bare = await median_async(awork, runs, ASYNC_N)
        rows = []
        for name, policies, baseline in contenders():
            fn = Pipeline(policies, name="bench")(awork)
            assert await fn(7) == 7
            t = await median_async(fn, runs, ASYNC_N)
            rows.append(_row("pipeline-async", name, t - bare, bare, baseline))
        empty = rows[1]["value"] / 1e9
        rows.append(_row("pipeline-layer-async", "empty pipeline", empty, bare, True))
        for name, policy in zip(NAMES, five(), strict=True):
            fn = Pipeline([policy], name="bench")(awork)
            assert await fn(7) == 7
            t = await median_async(fn, runs, ASYNC_N)
            rows.append(_row("pipeline-layer-async", f"{name} alone", t - bare, bare, False))
        return rows

    return asyncio.run(measure())


def paired_rows(rounds: int) -> list[dict[str, Any]]:
    """The five-policy pipeline sync and async, and their bare calls, in interleaved rounds in
    one event loop: the async overhead as a multiple of the sync one (issue 20: at most 1.5x)."""
    sync_fn = Pipeline(five(), name="bench-s")(work)
    async_fn = Pipeline(five(), name="bench-a")(awork)

    async def measure() -> dict[str, list[float]]:
        assert await async_fn(7) == 7
        return await interleaved_mixed(
            {"bare": work, "sync": sync_fn}, {"abare": awork, "async": async_fn}, rounds, ASYNC_N
        )

    s = asyncio.run(measure())
    sync_over = [p - b for p, b in zip(s["sync"], s["bare"], strict=True)]
    async_over = [p - b for p, b in zip(s["async"], s["abare"], strict=True)]
    ratio = statistics.median(a / max(o, 1e-12) for a, o in zip(async_over, sync_over, strict=True))
    group = "pipeline sync vs async (five policies, overhead)"
    rows = []
    for name, xs, baseline in (
        ("sync pipeline", sync_over, True),
        ("async pipeline", async_over, False),
    ):
        med, iqr = median_spread(xs)
        note = f"median of {rounds} interleaved rounds, IQR {iqr:.0%}; gc on"
        if not baseline:
            verdict = "met" if ratio <= 1.5 else "NOT met"
            note += f"; paired median {ratio:.2f}x the sync overhead (target <= 1.5x: {verdict})"
        rows.append(
            {
                "group": group,
                "name": name,
                "value": max(0.0, med * 1e9),
                "unit": "ns/call",
                "baseline": baseline,
                "lower_is_better": True,
                "note": note,
            }
        )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    runs = QUICK_RUNS if quick else RUNS
    return paired_rows(15 if quick else 101) + sync_rows(runs) + async_rows(runs)


def profile(calls: int = 200_000) -> str:
    """cProfile of ``calls`` sync calls through the five-policy pipeline, by internal time."""
    import cProfile
    import io
    import pstats

    fn = Pipeline(five(), name="bench")(work)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(calls):
        fn(i)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    return out.getvalue()


if __name__ == "__main__":
    import sys

    if "--profile" in sys.argv:
        print(profile())
    else:
        for row in run(quick="--quick" in sys.argv):
            print(f"{row['group']:<20} {row['name']:<54} {row['value']:>9.0f} {row['unit']}")
