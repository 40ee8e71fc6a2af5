"""SLO arithmetic: error budgets, burn rates and multiwindow multi-burn-rate alerts.

Pure functions of numbers (standard library only); the evaluator, the Prometheus rules, the
generated promtool tests and the backtest all use these definitions, and the tests check that they
agree.

Notation: ``b`` is the *budget ratio* ``1 - target`` (99.9% -> 0.001), ``P`` the SLO period and
``W`` an alert window, both in seconds.

- error budget (time):            ``b x P``                 (99.9% over 30 days: 43.2 minutes)
- error budget (events):          ``b x total``
- burn rate:                      ``error_ratio / b``       (1 spends the budget exactly in ``P``)
- budget consumed:                ``bad / (b x total)``     (3,000,000 requests, 1,500 bad: 50%)
- budget remaining:               ``1 - consumed``
- time to exhaustion at burn r:   ``remaining x P / r``
- threshold for a tier:           ``BR = f x P / W``        (2% in 1h of 30 days: 14.4)
- a tier fires when both its long and its short window have ``error_ratio > BR x b`` (and the long
  window holds at least ``min_events`` events).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "AlertTier",
    "alert_timeline",
    "burn_rate",
    "burn_rate_threshold",
    "budget_consumed",
    "budget_remaining",
    "calendar_period",
    "can_fire",
    "detection_time",
    "error_budget",
    "error_budget_events",
    "error_ratio_threshold",
    "tier_fires",
    "time_to_exhaustion",
    "window_sums",
]


@dataclass(frozen=True, slots=True)
class AlertTier:
    """One multiwindow burn-rate alert.

    :param threshold: the burn rate both windows must exceed.
    :param min_events: low-traffic guard: the long window must hold at least this many events.
    """

    name: str
    severity: str
    long_window: float
    short_window: float
    threshold: float
    min_events: int = 0


def error_budget(budget_ratio: float, period: float) -> float:
    """Seconds of total outage the budget allows: ``b x P``."""
    return budget_ratio * period


def error_budget_events(budget_ratio: float, total: float) -> float:
    """Bad events the budget allows among ``total``: ``b x total``."""
    return budget_ratio * total


def burn_rate(error_ratio: float, budget_ratio: float) -> float:
    """How fast the budget burns: ``error_ratio / b`` (1.0 spends it exactly over the period)."""
    return error_ratio / budget_ratio


def budget_consumed(bad: float, total: float, budget_ratio: float) -> float:
    """Fraction of the budget spent: ``bad / (b x total)``; 0 when there were no events."""
    if total <= 0:
        return 0.0
    return bad / (budget_ratio * total)


def budget_remaining(bad: float, total: float, budget_ratio: float) -> float:
    """``1 - consumed`` (negative once the budget is overspent)."""
    return 1.0 - budget_consumed(bad, total, budget_ratio)


def time_to_exhaustion(remaining: float, rate: float, period: float) -> float:
    """Seconds until the budget is gone at burn rate ``rate``: ``remaining x P / rate``.

    ``0`` when nothing remains, ``inf`` when nothing burns.
    """
    if remaining <= 0:
        return 0.0
    if rate <= 0:
        return math.inf
    return remaining * period / rate


def burn_rate_threshold(budget_fraction: float, period: float, long_window: float) -> float:
    """The burn rate that spends ``budget_fraction`` of the budget in ``long_window``: ``f x P /
    W``."""
    return budget_fraction * period / long_window


def error_ratio_threshold(threshold: float, budget_ratio: float) -> float:
    """The error ratio a tier compares against: ``BR x b`` (the literal used in the Prometheus
    rules)."""
    return threshold * budget_ratio


def can_fire(threshold: float, budget_ratio: float) -> bool:
    """Whether any error ratio (at most 1) can exceed ``BR x b``: a 90% SLO can never fire a 14.4x
    page."""
    return error_ratio_threshold(threshold, budget_ratio) < 1.0


def detection_time(error_ratio: float, budget_ratio: float, tier: AlertTier) -> float:
    """Seconds until ``tier`` fires after errors jump from 0 to ``error_ratio`` at constant traffic.

    Each window's ratio grows as ``error_ratio x t / W`` until ``t = W``, so a window fires after
    ``BR x b x W / error_ratio``; the tier needs both.  ``inf`` if the ratio never exceeds
    ``BR x b``.  (The Workbook: 15% errors trip the 14.4x/1h alert of a 99.9% SLO after 5.76
    minutes.)
    """
    limit = error_ratio_threshold(tier.threshold, budget_ratio)
    if error_ratio <= limit:
        return math.inf
    return max(limit * tier.long_window / error_ratio, limit * tier.short_window / error_ratio)


def tier_fires(
    long_bad: float,
    long_total: float,
    short_bad: float,
    short_total: float,
    *,
    budget_ratio: float,
    tier: AlertTier,
) -> bool:
    """Whether ``tier`` fires given the bad/total counts of its two windows.

    A window with no events has no ratio and cannot fire (as in Prometheus: 0/0 is NaN).
    """
    if long_total <= 0 or short_total <= 0 or long_total < tier.min_events:
        return False
    limit = error_ratio_threshold(tier.threshold, budget_ratio)
    return long_bad / long_total > limit and short_bad / short_total > limit


# -- per-minute series (the reference the evaluator and the Prometheus rules are checked against) --


def window_sums(values: Sequence[float], minutes: int) -> list[float]:
    """``out[k]`` = sum of ``values[k - minutes : k]`` (clipped at 0): the window ending at minute
    ``k``.

    ``len(out) == len(values) + 1``; ``out[0] == 0``.
    """
    out = [0.0]
    running = 0.0
    for k, v in enumerate(values, start=1):
        running += v
        if k - minutes - 1 >= 0:
            running -= values[k - minutes - 1]
        out.append(running)
    return out


def alert_timeline(
    bad: Sequence[float], total: Sequence[float], budget_ratio: float, tiers: Iterable[AlertTier]
) -> list[frozenset[str]]:
    """Firing tiers at each minute boundary ``k`` (using minutes ``[k - W, k)``), ``k = 0 .. n``.

    This is what Prometheus computes at time ``k`` minutes from counters scraped every minute.
    """
    tiers = list(tiers)
    n = len(total)
    firing: list[set[str]] = [set() for _ in range(n + 1)]
    for tier in tiers:
        lw = max(1, round(tier.long_window / 60))
        sw = max(1, round(tier.short_window / 60))
        lb, lt = window_sums(bad, lw), window_sums(total, lw)
        sb, st = window_sums(bad, sw), window_sums(total, sw)
        for k in range(n + 1):
            if tier_fires(lb[k], lt[k], sb[k], st[k], budget_ratio=budget_ratio, tier=tier):
                firing[k].add(tier.name)
    return [frozenset(f) for f in firing]


# -- calendar windows -----------------------------------------------------------------------------


def calendar_period(at: datetime, calendar: str, timezone: str) -> tuple[datetime, datetime]:
    """The calendar period (``week`` from Monday, ``month``, ``quarter``) holding ``at``.

    Boundaries are local midnights in ``timezone`` (so a month that crosses a daylight-saving change
    is an hour shorter or longer than its day count suggests); returned as aware datetimes in that
    zone.  ``at`` must be aware.
    """
    if at.tzinfo is None:
        raise ValueError("calendar_period needs an aware datetime")
    tz = ZoneInfo(timezone)
    local = at.astimezone(tz)
    day = local.date()
    if calendar == "week":
        start_d = day - timedelta(days=day.weekday())
        end_d = start_d + timedelta(days=7)
    elif calendar == "month":
        start_d = day.replace(day=1)
        end_d = (
            start_d.replace(year=start_d.year + 1, month=1)
            if start_d.month == 12
            else start_d.replace(month=start_d.month + 1)
        )
    elif calendar == "quarter":
        first = 3 * ((day.month - 1) // 3) + 1
        start_d = day.replace(month=first, day=1)
        end_d = (
            start_d.replace(year=start_d.year + 1, month=1)
            if first == 10
            else start_d.replace(month=first + 3)
        )
    else:
        raise ValueError(f"unknown calendar {calendar!r} (week, month or quarter)")
    start = datetime(start_d.year, start_d.month, start_d.day, tzinfo=tz)
    end = datetime(end_d.year, end_d.month, end_d.day, tzinfo=tz)
    return start, end
