"""Success-path overhead of retrying: Buttress against tenacity, stamina, backoff; sync, async.

What is measured: calling a function that succeeds at once, through each wrapper, minus calling the
bare function.  The contenders and the bare call run in interleaved rounds (order rotated every
round, garbage collector on); each figure is the median round's, and each peer's note gives the
paired median of its overhead over Buttress's (rounds run next to each other).

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
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

import buttress
from _timing import dist_version, interleaved, interleaved_mixed
from buttress import Pipeline, Retry

RUN_SECONDS = 0.002
QUICK_RUN_SECONDS = 0.002
RUNS = 61
QUICK_RUNS = 11
ASYNC_N = 2000


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


def _measure_async(rounds: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """The bare ``await`` and every async contender, interleaved inside one event loop: medians
    (ns) and each contender's overhead as a paired multiple of Buttress's ``Retry()``."""

    async def main() -> dict[str, list[float]]:
        return await interleaved_mixed({}, {"bare": awork, **async_wrappers()}, rounds, ASYNC_N)

    return _summarise(asyncio.run(main()))


def _summarise(samples: dict[str, list[float]]) -> tuple[float, dict[str, float], dict[str, float]]:
    bare = samples.pop("bare")
    over = {
        name: [max(x - b, 1e-12) for x, b in zip(xs, bare, strict=True)]
        for name, xs in samples.items()
    }
    ours = over.get("buttress Retry()")
    paired = {
        name: statistics.median(o / b for o, b in zip(xs, ours, strict=True))
        for name, xs in over.items()
        if ours is not None
    }
    medians = {name: statistics.median(xs) * 1e9 for name, xs in samples.items()}
    return statistics.median(bare) * 1e9, medians, paired


def _rows(
    group: str,
    bare_ns: float,
    measured: dict[str, float],
    notes: dict[str, str],
    paired: dict[str, float],
) -> list[dict[str, Any]]:
    rows = []
    for name, raw in measured.items():
        overhead = max(0.0, raw - bare_ns)
        note = f"{raw:,.0f} ns raw; {overhead / bare_ns:,.0f}x a bare call"
        if name in paired and name != "buttress Retry()":
            note += f"; paired median {paired[name]:.1f}x Buttress's overhead"
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
    rounds = QUICK_RUNS if quick else RUNS
    notes = {
        "buttress Retry()": f"buttress {buttress.__version__}",
        "buttress pipeline (timeout+retry+fallback)": f"buttress {buttress.__version__}",
        "tenacity @retry(stop_after_attempt(3))": f"tenacity {dist_version('tenacity')}",
        "stamina @retry(on=Exception, attempts=3)": f"stamina {dist_version('stamina')}",
        "backoff @on_exception(expo, max_tries=3)": f"backoff {dist_version('backoff')}",
    }

    sync, missing = sync_wrappers()
    bare_sync, measured, paired = _summarise(interleaved({"bare": work, **sync}, rounds, seconds))
    rows = _rows("retry-sync", bare_sync, measured, notes, paired)

    bare_async, measured_async, paired_async = _measure_async(rounds)
    rows += _rows("retry-async", bare_async, measured_async, notes, paired_async)
    ten = next((k for k in paired_async if k.startswith("tenacity")), None)
    if ten is not None:
        share = 1 / paired_async[ten]
        verdict = "met" if share <= 1 / 40 else "NOT met"
        for row in rows:
            if row["group"] == "retry-async" and row["name"] == "buttress Retry()":
                row["note"] += (
                    f"; 1/{paired_async[ten]:.0f} of tenacity's async overhead (paired median; "
                    f"target <= 1/40: {verdict})"
                )
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
