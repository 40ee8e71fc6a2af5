"""What the scenarios measure: recovery after a disruption, percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["percentile", "recovery_time"]


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


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-quantile (``0 < q <= 1``) by the nearest-rank rule: the smallest value with at
    least ``q * n`` values at or below it; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[rank - 1]
