"""Reliability analytics over the incident history: distributions, not means.

Incident durations are heavy-tailed, so a mean time to recover is dominated by the one long outage
of the period and swings from period to period.  Each metric is reported as its median and 90th
percentile, each with a distribution-free confidence interval; the mean is shown alongside only
for comparison.

Metrics (seconds), per incident that reached the step:

* **time to detect** (TTD): ``detected - started`` (``started`` is when the alert began, or the
  generic webhook's ``started_at``);
* **time to acknowledge** (TTA): ``acknowledged - detected``;
* **time to mitigate** (TTM): ``mitigated - started``;
* **time to recover** (TTR): ``resolved - started``;
* **time between failures** (TBF): between the starts of consecutive incidents of the same group
  (service, failure mode, or all of them).

Point estimates: the median is the middle value (the mean of the two middle values for an even
count); the 90th percentile interpolates linearly between order statistics at rank
``1 + 0.9 (n - 1)`` (Hyndman and Fan's definition 7, numpy's default).

Confidence intervals are **order-statistic intervals** (exact, distribution-free, no resampling):
for the ``q``-quantile of ``n`` values sorted ``x(1) <= ... <= x(n)``, the interval
``[x(l), x(u)]`` covers it with probability ``P(l <= B < u)`` where ``B ~ Binomial(n, q)``.
``l`` is the largest rank with ``P(B < l) <= (1 - c) / 2`` and ``u`` the smallest with
``P(B >= u) <= (1 - c) / 2``, so the coverage is at least ``c`` (default 95 %).  When no rank is
low (or high) enough -- too few incidents for that confidence -- that bound is ``None``: with fewer
than 6 incidents a 95 % interval of the median is unbounded on both sides, and a 90th percentile
needs 36 incidents for an upper bound (``0.9 ** 36 <= 0.025``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from buttress.errors import ConfigError

from .model import Incident, Record

__all__ = [
    "METRICS",
    "Estimate",
    "Summary",
    "by_group",
    "order_statistic_interval",
    "quantile",
    "summarise",
    "time_between_failures",
]


def _ttd(i: Incident) -> float | None:
    return i.detected - i.started


def _tta(i: Incident) -> float | None:
    return None if i.acknowledged is None else i.acknowledged - i.detected


def _ttm(i: Incident) -> float | None:
    return None if i.mitigated is None else i.mitigated - i.started


def _ttr(i: Incident) -> float | None:
    return None if i.resolved is None else i.resolved - i.started


METRICS: dict[str, Callable[[Incident], float | None]] = {
    "time_to_detect": _ttd,
    "time_to_acknowledge": _tta,
    "time_to_mitigate": _ttm,
    "time_to_recover": _ttr,
}
"""Metric name -> its value for one incident (``None`` when the step was not reached)."""


@dataclass(frozen=True, slots=True)
class Estimate(Record):
    """A quantile's point estimate and its confidence interval (``None``: unbounded)."""

    value: float
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Summary(Record):
    """One metric over a group of incidents."""

    n: int
    median: Estimate | None
    p90: Estimate | None
    mean: float | None
    confidence: float


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile of non-empty ``sorted_values`` (definition 7: linear interpolation at
    rank ``1 + q (n - 1)``)."""
    n = len(sorted_values)
    if n == 0:
        raise ConfigError("values", [], "need at least one value")
    h = q * (n - 1)
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _binom_cdf(k: int, n: int, q: float) -> float:
    """``P(B <= k)`` for ``B ~ Binomial(n, q)``."""
    if k < 0:
        return 0.0
    return math.fsum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(min(k, n) + 1))


def order_statistic_interval(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks ``(l, u)`` of the order-statistic interval for the ``q``-quantile of ``n``
    values (``None`` for a side with no rank far enough out; see the module docstring)."""
    if not 0 < confidence < 1:
        raise ConfigError("confidence", confidence, "must be in (0, 1)")
    tail = (1 - confidence) / 2
    low: int | None = None
    for rank in range(n, 0, -1):  # largest l with P(B <= l - 1) <= tail
        if _binom_cdf(rank - 1, n, q) <= tail:
            low = rank
            break
    high: int | None = None
    for rank in range(1, n + 1):  # smallest u with P(B >= u) = 1 - P(B <= u - 1) <= tail
        if 1 - _binom_cdf(rank - 1, n, q) <= tail:
            high = rank
            break
    return low, high


def _estimate(values: Sequence[float], q: float, confidence: float) -> Estimate:
    low, high = order_statistic_interval(len(values), q, confidence)
    return Estimate(
        quantile(values, q),
        None if low is None else values[low - 1],
        None if high is None else values[high - 1],
    )


def summarise(values: Iterable[float], *, confidence: float = 0.95) -> Summary:
    """Median and 90th percentile of ``values``, with confidence intervals, and the mean."""
    xs = sorted(values)
    if not xs:
        return Summary(0, None, None, None, confidence)
    return Summary(
        len(xs),
        _estimate(xs, 0.5, confidence),
        _estimate(xs, 0.9, confidence),
        math.fsum(xs) / len(xs),
        confidence,
    )


def time_between_failures(incidents: Iterable[Incident]) -> list[float]:
    """Seconds between the starts of consecutive ``incidents`` (in order of start)."""
    starts = sorted(i.started for i in incidents)
    return [b - a for a, b in itertools.pairwise(starts)]


def by_group(
    incidents: Sequence[Incident], *, key: str = "all", confidence: float = 0.95
) -> dict[str, dict[str, Summary]]:
    """Every metric (and ``time_between_failures``) per group: ``key`` is ``all``, ``service``
    or ``mode`` (the failure mode)."""
    if key not in ("all", "service", "mode"):
        raise ConfigError("key", key, "must be 'all', 'service' or 'mode'")
    groups: dict[str, list[Incident]] = {}
    for inc in incidents:
        groups.setdefault("all" if key == "all" else getattr(inc, key), []).append(inc)
    out: dict[str, dict[str, Summary]] = {}
    for name in sorted(groups):
        members = groups[name]
        stats = {
            metric: summarise(
                (v for i in members if (v := fn(i)) is not None), confidence=confidence
            )
            for metric, fn in METRICS.items()
        }
        stats["time_between_failures"] = summarise(
            time_between_failures(members), confidence=confidence
        )
        out[name] = stats
    return out
