"""Backtest: replay an SLO's alert tiers over recorded per-minute history.

The replay evaluates every tier at every minute boundary exactly as the evaluator (and Prometheus)
would.  It then finds the *budget-consuming incidents* in the history -- runs of minutes whose error
ratio exceeds the budget ratio (burn rate > 1), merged when separated by at most ``merge_gap`` quiet
minutes -- and scores each tier with the SRE Workbook's four criteria:

- **precision**: the share of the tier's alert episodes that overlap a *significant* incident;
- **recall**: the share of significant incidents the tier alerted on;
- **detection time**: from an incident's first minute to the tier's first firing during it;
- **reset time**: from an incident's end to the end of the tier's alert episode.

An incident is significant for a tier when it consumed at least the fraction of the period's budget
the tier is meant to catch: ``f = BR x W / P`` (2% for the 14.4x/1h page of a 30-day SLO).  The
period's budget in events is ``b x (mean events per minute) x (minutes in the period)``.

Timeslices and RatioTimeslices SLOs are replayed on their slices (aligned to multiples of the slice
length, like the evaluator): a step is one slice, a bad slice (or ``1 - ratio`` of a slice) is the
bad unit, a slice with events the counted unit, and the period's budget is ``b x (slices in the
period)`` -- the OpenSLO semantics the evaluator and the rules use.  Minutes inside the SLO's
``exclusions`` count as minutes without events.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from buttress.errors import SpecError

from ._np import numpy
from .evaluator import excluded_mask
from .spec import SLOSpec, WindowSLI

__all__ = ["BacktestReport", "Incident", "TierReport", "backtest", "read_csv"]


@dataclass
class Incident:
    start_minute: int
    end_minute: int  # exclusive
    bad: float
    total: float
    budget_consumed: float  # fraction of the period's budget


@dataclass
class TierReport:
    tier: str
    severity: str
    threshold: float
    budget_fraction: float
    episodes: int
    true_positives: int
    significant_incidents: int
    detected: int
    precision: float | None
    recall: float | None
    detection_time_mean: float | None  # seconds
    detection_time_max: float | None
    reset_time_mean: float | None


@dataclass
class BacktestReport:
    slo: str
    start_minute: int
    minutes: int
    total: float
    bad: float
    unit: str = "events"  # what total and bad count: events, or slices for window SLIs
    incidents: list[Incident] = field(default_factory=list)
    tiers: list[TierReport] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _runs(mask: Any) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``mask`` is true."""
    np_ = numpy()
    m = np_.concatenate(([False], np_.asarray(mask, dtype=bool), [False]))
    d = np_.diff(m.astype(np_.int8))
    starts = np_.flatnonzero(d == 1)
    ends = np_.flatnonzero(d == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def _units(slo: SLOSpec, good: Any, total: Any, start_minute: int) -> tuple[Any, Any, int, int]:
    """``(bad, total, step, origin)``: what the alerts count, per step of ``step`` minutes from
    minute ``origin``.

    Occurrences: events per minute.  Timeslices: per slice (aligned to multiples of the slice
    length, as in the evaluator), 1 bad unit for a bad slice and 1 counted unit for a slice with
    events; RatioTimeslices: ``1 - good/total`` bad units per counted slice.
    """
    np_ = numpy()
    g = np_.asarray(good, dtype=np_.float64)
    t = np_.asarray(total, dtype=np_.float64)
    sli = slo.sli
    if not isinstance(sli, WindowSLI):
        return t - g, t, 1, start_minute
    k = round(sli.slice / 60)
    first = -(-start_minute // k) * k
    off = first - start_minute
    n_sl = max(0, (len(t) - off) // k)
    gs = g[off : off + n_sl * k].reshape(n_sl, k).sum(axis=1)
    ts = t[off : off + n_sl * k].reshape(n_sl, k).sum(axis=1)
    seen = ts > 0
    with np_.errstate(divide="ignore", invalid="ignore"):
        ratio = np_.where(seen, gs / ts, 1.0)
    if slo.method == "Timeslices":
        assert sli.target is not None
        bad = (seen & (ratio < sli.target)).astype(np_.float64)
    else:
        bad = np_.where(seen, 1.0 - ratio, 0.0)
    return bad, seen.astype(np_.float64), k, first


def backtest(
    slo: SLOSpec, good: Any, total: Any, start_minute: int = 0, *, merge_gap: int = 10
) -> BacktestReport:
    """Replay ``slo``'s tiers over per-minute ``good``/``total`` counts starting at
    ``start_minute``.

    Minutes inside the SLO's ``exclusions`` are dropped (no events).  For Timeslices and
    RatioTimeslices SLOs the replay runs on slices (see the module docstring): incidents are runs
    of bad slices, the budget is ``b x (slices in the period)``, and ``total``/``bad`` in the report
    count slices (``unit``).
    """
    np_ = numpy()
    g_in = np_.asarray(good, dtype=np_.float64)
    t_in = np_.asarray(total, dtype=np_.float64)
    mask = excluded_mask(slo, start_minute, len(t_in))
    if mask is not None:
        g_in = np_.where(mask, 0.0, g_in)
        t_in = np_.where(mask, 0.0, t_in)
    bad, t, step, origin = _units(slo, g_in, t_in, start_minute)
    n = len(t)
    b = slo.budget_ratio
    cb = np_.concatenate(([0.0], np_.cumsum(bad)))
    ct = np_.concatenate(([0.0], np_.cumsum(t)))
    ks = np_.arange(n + 1)

    def win(w: int) -> tuple[Any, Any]:
        lo = np_.maximum(ks - w, 0)
        return cb[ks] - cb[lo], ct[ks] - ct[lo]

    # Incidents: steps burning faster than 1x, merged across short quiet gaps.
    with np_.errstate(divide="ignore", invalid="ignore"):
        burning = (t > 0) & (bad / t > b)
    raw = _runs(burning)
    merged: list[list[int]] = []
    for s, e in raw:
        if merged and (s - merged[-1][1]) * step <= merge_gap:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    if not isinstance(slo.sli, WindowSLI):
        per_step = float(t.sum()) / n if n else 0.0
        budget_units = b * per_step * (slo.period / 60)
    else:
        budget_units = b * slo.period / (step * 60)  # every slice of the period
    incidents = [
        Incident(
            start_minute=origin + s * step,
            end_minute=origin + e * step,
            bad=float(bad[s:e].sum()),
            total=float(t[s:e].sum()),
            budget_consumed=float(bad[s:e].sum()) / budget_units if budget_units > 0 else 0.0,
        )
        for s, e in merged
    ]
    reports = []
    for tier in slo.tiers():
        lw = max(1, round(tier.long_window / 60) // step)
        sw = max(1, round(tier.short_window / 60) // step)
        lb, lt = win(lw)
        sb, st = win(sw)
        limit = tier.threshold * b
        with np_.errstate(divide="ignore", invalid="ignore"):
            firing = (
                (lt > 0)
                & (st > 0)
                & (lt >= tier.min_events)
                & (lb / lt > limit)
                & (sb / st > limit)
            )
        episodes = _runs(firing)  # boundary indices k: time = origin + k x step
        fraction = tier.threshold * tier.long_window / slo.period
        significant = [
            (s, e)
            for (s, e), inc in zip(merged, incidents, strict=True)
            if inc.budget_consumed >= fraction
        ]
        tp = 0
        for es, ee in episodes:
            # An episode belongs to an incident if it fires during it or within a long window after.
            if any(es <= e + lw and ee > s for s, e in significant):
                tp += 1
        detections: list[float] = []
        resets: list[float] = []
        for s, e in significant:
            hits = [(es, ee) for es, ee in episodes if es <= e + lw and ee > s]
            if hits:
                first = max(hits[0][0], s)
                detections.append((first - s) * step * 60.0)
                resets.append(max(0, hits[-1][1] - e) * step * 60.0)
        reports.append(
            TierReport(
                tier=tier.name,
                severity=tier.severity,
                threshold=tier.threshold,
                budget_fraction=fraction,
                episodes=len(episodes),
                true_positives=tp,
                significant_incidents=len(significant),
                detected=len(detections),
                precision=tp / len(episodes) if episodes else None,
                recall=len(detections) / len(significant) if significant else None,
                detection_time_mean=sum(detections) / len(detections) if detections else None,
                detection_time_max=max(detections) if detections else None,
                reset_time_mean=sum(resets) / len(resets) if resets else None,
            )
        )
    return BacktestReport(
        slo=slo.name,
        start_minute=start_minute,
        minutes=len(t_in),
        total=float(t.sum()),
        bad=float(bad.sum()),
        unit="slices" if isinstance(slo.sli, WindowSLI) else "events",
        incidents=incidents,
        tiers=reports,
    )


def read_csv(path: str | Path) -> tuple[int, Any, Any]:
    """Per-minute history from a CSV with columns ``minute,good,total`` (``minute`` as epoch seconds
    or ISO 8601 with an offset); gaps become zero-traffic minutes.  Returns ``(start, good,
    total)``."""
    np_ = numpy()
    rows: dict[int, tuple[int, int]] = {}
    p = str(path)
    try:
        f = open(p, newline="", encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        raise SpecError("file not found", file=p) from None
    with f:
        reader = csv.DictReader(f)
        missing = {"minute", "good", "total"} - set(reader.fieldnames or [])
        if missing:
            raise SpecError(f"missing column(s): {', '.join(sorted(missing))}", file=p, line=1)
        for i, row in enumerate(reader, start=2):
            try:
                text = row["minute"].strip()
                try:
                    ts = float(text)
                except ValueError:
                    dt = datetime.fromisoformat(text)
                    if dt.tzinfo is None:
                        raise ValueError("a timestamp needs an offset (e.g. +00:00)") from None
                    ts = dt.timestamp()
                good, total = int(row["good"]), int(row["total"])
                if not 0 <= good <= total:
                    raise ValueError("need 0 <= good <= total")
            except (ValueError, TypeError) as e:
                raise SpecError(str(e), file=p, line=i) from None
            m = int(ts // 60)
            g0, t0 = rows.get(m, (0, 0))
            rows[m] = (g0 + good, t0 + total)
    if not rows:
        raise SpecError("no rows", file=p)
    start, end = min(rows), max(rows) + 1
    good_a = np_.zeros(end - start, dtype=np_.int64)
    total_a = np_.zeros(end - start, dtype=np_.int64)
    for m, (gv, tv) in rows.items():
        good_a[m - start] = gv
        total_a[m - start] = tv
    return start, good_a, total_a
