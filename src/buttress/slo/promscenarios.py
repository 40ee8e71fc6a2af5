"""Scenarios for promtool tests: per-minute bad and total events (an outage, a slow burn, healthy
traffic) and the minutes at which to check the alerts, each checked against
:func:`buttress.slo.math.alert_timeline` and kept away from exact ties."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import math as slomath
from .promseries import UnsupportedQuery
from .spec import SLOSpec, WindowSLI

__all__ = ["Scenario", "scenarios_for", "timeline_units"]


def timeline_units(
    slo: SLOSpec, bad: Sequence[int], total: Sequence[int]
) -> tuple[list[float], list[float]]:
    """Per-minute ``(bad, total)`` in the units the alerts count: events for Occurrences; for
    window SLIs with 1-minute slices, bad slices (or 1 - ratio) and counted slices."""
    if not isinstance(slo.sli, WindowSLI):
        return [float(x) for x in bad], [float(x) for x in total]
    ub, ut = [], []
    for b, t in zip(bad, total, strict=True):
        if t == 0:
            ub.append(0.0)
            ut.append(0.0)
            continue
        ratio = (t - b) / t
        if slo.method == "Timeslices":
            assert slo.sli.target is not None
            ub.append(1.0 if ratio < slo.sli.target else 0.0)
        else:
            ub.append(1.0 - ratio)
        ut.append(1.0)
    return ub, ut


@dataclass
class Scenario:
    """Per-minute bad and total events, and the minutes at which to check the alerts."""

    name: str
    bad: list[int]
    total: list[int]
    checks: list[int]
    values: bool = False  # also check burn rate and budget remaining at the last check


def _robust(slo: SLOSpec, ub: list[float], ut: list[float], k: int) -> bool:
    """No ratio at minute ``k`` sits within a hair of a tier limit (Go and Python could differ)."""
    b = slo.budget_ratio
    for t in slo.tiers():
        limit = slomath.error_ratio_threshold(t.threshold, b)
        for w in (t.long_window, t.short_window):
            m = max(1, round(w / 60))
            lo = max(0, k - m)
            tb, tt = sum(ub[lo:k]), sum(ut[lo:k])
            if tt > 0 and abs(tb / tt - limit) <= 1e-9 * max(limit, 1e-12):
                return False
            if w == t.long_window and t.min_events and tt == t.min_events:
                return False
    return True


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def _divisors_desc(x: int) -> list[int]:
    small, large = [], []
    i = 1
    while i * i <= x:
        if x % i == 0:
            small.append(i)
            if i * i != x:
                large.append(x // i)
        i += 1
    return large + small[::-1]


def _spread_fires(
    tiers: Sequence[slomath.AlertTier], b: float, *, n: int, d: int, q: int, unit: int
) -> frozenset[str]:
    """Tiers firing at minute ``n`` when minutes ``n - 1 - d - j x q`` (``j >= 0``) are all bad and
    every minute holds ``unit`` counted units (events, or one slice): the math module's decision,
    with window sums counted in closed form."""
    out = set()
    for t in tiers:
        ok = True
        for w in (_minutes(t.long_window), _minutes(t.short_window)):
            m = min(w, n)
            bad = 0 if m <= d else (m - d - 1) // q + 1
            if w == _minutes(t.long_window) and m * unit < t.min_events:
                ok = False
            if not bad / m > slomath.error_ratio_threshold(t.threshold, b):
                ok = False
        if ok:
            out.add(t.name)
    return frozenset(out)


def _page_fires_anyway(t: slomath.AlertTier, b: float, d: int, unit: int) -> bool:
    """Whether page ``t`` fires whatever the spacing when the last bad minute is ``d`` minutes
    before the check: one bad minute inside its short window already exceeds its limit in both
    windows (and the long window can hold enough events)."""
    lw, sw = _minutes(t.long_window), _minutes(t.short_window)
    limit = slomath.error_ratio_threshold(t.threshold, b)
    return sw > d and 1 / lw > limit and lw * unit >= t.min_events


def _spread(n: int, d: int, q: int, traffic: int) -> tuple[list[int], list[int]]:
    bad = [0] * n
    for pos in range(n - 1 - d, -1, -q):
        bad[pos] = traffic
    return bad, [traffic] * n


def _slow_burn(slo: SLOSpec, traffic: int) -> tuple[Scenario | None, str | None]:
    """A burn that fires the ticket tiers and no page, or ``(None, why)``.

    First a constant error ratio between the highest ticket threshold below the lowest page
    threshold and that page threshold (Occurrences and RatioTimeslices: every window sees the same
    ratio); the traffic is raised until an integer count of bad events per minute lands strictly
    between the two.  Otherwise (Timeslices, where a slice is wholly good or bad, or tiers whose
    thresholds overlap) bad minutes are spread: one every ``q`` minutes, the last ``d`` minutes ago
    (``d`` = 0 or past a page's short window), over ``n`` minutes, searched in that order (ongoing
    burns first, then the shortest series, then the sparsest spacing), so that both windows of the
    ticket tiers exceed their thresholds while every page has a window below its own.  Each
    candidate is checked with :func:`buttress.slo.math.alert_timeline` and kept away from exact
    ties with a limit.
    """
    tiers = slo.tiers()
    pages = [t for t in tiers if t.severity == "page"]
    tickets = [
        t for t in tiers if t.severity != "page" and slomath.can_fire(t.threshold, slo.budget_ratio)
    ]
    if not tickets:
        return None, None
    why = (
        "no slow-burn test: no series fires a ticket tier without a page "
        f"(tickets {sorted(t.name for t in tickets)}, pages {sorted(t.name for t in pages)})"
    )
    tickets = _tickets_alone(tickets, pages)
    if not tickets:
        return None, why
    search = _SlowBurnSearch(slo, traffic, tiers, pages, tickets)
    sc = search.constant_ratio() or search.spread_minutes()
    return (sc, None) if sc is not None else (None, why)


def _tickets_alone(
    tickets: list[slomath.AlertTier], pages: list[slomath.AlertTier]
) -> list[slomath.AlertTier]:
    """The tickets that can fire without a page: a ticket whose windows a page shares, with a page
    threshold no higher, never fires alone."""
    return [
        t
        for t in tickets
        if not any(
            (p.long_window, p.short_window) == (t.long_window, t.short_window)
            and p.threshold <= t.threshold
            and p.min_events <= t.min_events
            for p in pages
        )
    ]


class _SlowBurnSearch:
    """The two ways :func:`_slow_burn` looks for a series firing ``tickets`` and no page."""

    def __init__(
        self,
        slo: SLOSpec,
        traffic: int,
        tiers: list[slomath.AlertTier],
        pages: list[slomath.AlertTier],
        tickets: list[slomath.AlertTier],
    ) -> None:
        self.slo = slo
        self.traffic = traffic
        self.b = slo.budget_ratio
        self.tiers = tiers
        self.pages = pages
        self.page_names = {t.name for t in pages}
        self.tickets = tickets
        self.want = frozenset(t.name for t in tickets)

    def accept(
        self, bad: list[int], total: list[int], checks: list[int], full: bool
    ) -> Scenario | None:
        """The scenario, if at every check exactly the tickets fire (``full``; else some and no
        page) and no ratio sits on a tie."""
        slo = self.slo
        ub, ut = timeline_units(slo, bad, total)
        timeline = slomath.alert_timeline(ub, ut, self.b, self.tiers)
        for k in checks:
            fired = timeline[k]
            good = fired == self.want if full else bool(fired) and not fired & self.page_names
            if not good or not _robust(slo, ub, ut, k):
                return None
        return Scenario("slow burn", bad, total, checks)

    def constant_ratio(self) -> Scenario | None:
        """One error ratio throughout, between the ticket and the page thresholds (not for
        Timeslices, where a slice is wholly good or bad)."""
        b, tickets = self.b, self.tickets
        low_page = min((t.threshold for t in self.pages), default=math.inf)
        below = [t.threshold for t in tickets if t.threshold < low_page]
        if self.slo.method == "Timeslices" or not below:
            return None
        lo, hi = max(below) * b, min(1.0, low_page * b)
        ratio = (lo + hi) / 2
        need_events = max(t.min_events for t in tickets)
        volume = max(self.traffic, math.ceil(4 / (hi - lo)), math.ceil(need_events / 30) + 1)
        x = round(ratio * volume)
        if not lo < x / volume < hi:
            return None
        n = 60
        return self.accept([x] * n, [volume] * n, [30, n], full=len(below) == len(tickets))

    def spread_minutes(self) -> Scenario | None:
        """Whole bad minutes (every event bad: a bad slice, or an outage minute), spread out."""
        slo, b, tickets, pages, traffic = self.slo, self.b, self.tickets, self.pages, self.traffic
        unit = 1 if isinstance(slo.sli, WindowSLI) else traffic
        n_min = max(_minutes(t.short_window) for t in tickets)
        n_max = min(max(_minutes(t.long_window) for t in tickets) + n_min, 5000)
        fallback: tuple[int, int, int] | None = None
        budget = 200_000  # candidate evaluations before giving up (about a second)
        for d in sorted({0, *(_minutes(t.short_window) for t in pages)}):
            if any(_page_fires_anyway(t, b, d, unit) for t in pages):
                continue
            for n in range(max(n_min, d + 1), n_max + 1):
                budget -= 1
                if budget < 0:
                    break
                for q in _divisors_desc(n - 1 - d) if n - 1 - d > 0 else [1]:
                    budget -= 1
                    fired = _spread_fires(self.tiers, b, n=n, d=d, q=q, unit=unit)
                    if not fired or fired & self.page_names:
                        continue
                    if fired != self.want:
                        fallback = fallback or (n, d, q)
                        continue
                    sc = self.accept(*_spread(n, d, q, traffic), [n], full=True)
                    if sc is not None:
                        return sc
        if fallback is not None:
            n, d, q = fallback
            return self.accept(*_spread(n, d, q, traffic), [n], full=False)
        return None


def scenarios_for(slo: SLOSpec) -> tuple[list[Scenario], list[str]]:
    """The outage, slow-burn and healthy scenarios of ``slo``, and notes on those that cannot be
    built (a scenario with nothing to test -- no tier can fire, no ticket tier -- is left out
    without a note)."""
    tiers = slo.tiers()
    b = slo.budget_ratio
    timeslices = isinstance(slo.sli, WindowSLI)
    if timeslices and slo.sli.slice != 60:  # type: ignore[union-attr]
        raise UnsupportedQuery("window SLIs are tested with 1-minute slices only")
    traffic = 1000
    if tiers:
        traffic = max(traffic, math.ceil(max(t.min_events for t in tiers) / 30) + 1)
    out: list[Scenario] = []
    notes: list[str] = []

    def per_minute_bad(ratio: float) -> int:
        return min(traffic, round(ratio * traffic))

    # Tiers some error ratio can fire (and whose long window can hold min_events: for window SLIs
    # the guard counts slices, at most one a minute).
    per_minute = 1 if timeslices else traffic
    fireable = [
        t
        for t in tiers
        if slomath.can_fire(t.threshold, b) and _minutes(t.long_window) * per_minute >= t.min_events
    ]
    if fireable:
        first = fireable[0]
        limit = slomath.error_ratio_threshold(first.threshold, b)
        ratio = min(1.0, max(limit * 2.5, limit + 2 / traffic))
        if timeslices:
            target = slo.sli.target or 0.5  # type: ignore[union-attr]
            ratio = min(1.0, (1 - target) + 0.5 * target)
        # Healthy traffic first, long enough for the low-traffic guard to be met before the errors
        # start (so that the ratios, not the guard, decide the minute the page fires).
        guard = math.ceil(first.min_events / per_minute)
        for attempt in range(20):
            healthy = 10 + guard + attempt  # a different start moves every ratio off a tie
            span = round(first.long_window / 60) + 30
            bad = [0] * healthy + [per_minute_bad(ratio)] * span
            total = [traffic] * len(bad)
            ub, ut = timeline_units(slo, bad, total)
            tl = slomath.alert_timeline(ub, ut, b, tiers)
            hit = next((k for k, f in enumerate(tl) if first.name in f), None)
            if hit is not None and all(_robust(slo, ub, ut, k) for k in (hit - 1, hit, hit + 5)):
                end = min(len(bad), hit + 5)
                out.append(Scenario("outage", bad[:end], total[:end], [hit - 1, hit, end], True))
                break
            ratio = min(1.0, ratio * 1.07)
        else:
            notes.append(f"no outage test: no error ratio fires {first.name!r} robustly")
    slow, why = _slow_burn(slo, traffic)
    if slow is not None:
        out.append(slow)
    if why is not None:
        notes.append(why)
    if tiers:
        low = min(t.threshold for t in tiers)
        ratio = 0.25 * low * b
        n = 30
        bad = [0] * n if timeslices else [per_minute_bad(ratio)] * n
        total = [traffic] * n
        ub, ut = timeline_units(slo, bad, total)
        checks = [k for k in (15, 30) if _robust(slo, ub, ut, k)]
        out.append(Scenario("healthy", bad, total, checks))
    return out, notes
