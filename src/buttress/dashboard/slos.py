"""The SLO board: status, burn-down, recent traffic and the burn-rate alert table of each SLO.

Every figure comes from :func:`buttress.slo.evaluator.evaluate` (the same code as
``buttress slo status``) except the burn-down *series*, which evaluates the same definition at
every minute of the period in one vectorised pass:

* at minute ``m`` the SLO's window is ``[m - W, m)`` (rolling, ``W`` minutes) or
  ``[period_start, m)`` (calendar), excluded minutes counted as empty;
* ``consumed(m) = bad / (b x total)`` over that window (0 without events), ``b = 1 - target``;
* ``remaining(m) = 1 - consumed(m)``.

So the last point of the burn-down equals the status's ``budget_remaining`` (the tests check it).
Timeslices and RatioTimeslices SLOs are evaluated by the evaluator itself at up to
:data:`TIMESLICE_POINTS` minutes of the period.

SLOs are sorted by budget remaining, least first: the SLO closest to breaking its promise is the
first thing on the page.  Like the evaluator, the board evaluates at the start of the current minute
(the minute still filling is not counted), so its figures match ``buttress slo status`` and the
Prometheus rules; the *recent traffic* series shows the current minute as it fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from buttress.slo.evaluator import evaluate, excluded_mask, period_bounds
from buttress.slo.spec import SLOSpec, format_duration
from buttress.slo.store import SLIStore

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_POINTS",
    "RECENT_MINUTES",
    "TIMESLICE_POINTS",
    "burndown",
    "recent_traffic",
    "slo_board",
    "so_far",
    "unmeasured_slis",
]

MAX_POINTS = 720
"""Most points in one burn-down series (default): a 30-day window is thinned to one point per hour
(every ``ceil(n / MAX_POINTS)``-th minute, the last minute always kept)."""

TIMESLICE_POINTS = 30
"""Points of a Timeslices burn-down (each is a full evaluation)."""

RECENT_MINUTES = 60
"""Minutes of per-minute good/total traffic shown beside each SLO (default)."""


def _np() -> Any:
    from buttress.slo._np import numpy

    return numpy()


def _now_minute(at: float | None) -> int:
    t = datetime.now(UTC).timestamp() if at is None else float(at)
    return int(t // 60)


def _thin(n: int, max_points: int) -> list[int]:
    """Indices ``0..n-1`` thinned to at most ``max_points``, the last index always kept."""
    if n <= max_points:
        return list(range(n))
    step = -(-n // max_points)
    idx = list(range(n - 1, -1, -step))
    idx.reverse()
    return idx


def burndown(
    slo: SLOSpec, store: SLIStore, at: float | None = None, *, max_points: int = MAX_POINTS
) -> dict[str, list[Any]]:
    """Budget remaining at each minute of the current period that has data up to ``at``.

    Returns ``{"x": [unix seconds], "remaining": [fraction]}``; ``x`` is the end of each evaluated
    window (the evaluation time ``m x 60``).  Empty lists when the SLO has no data in the period.
    """
    now = _now_minute(at)
    start, end, _ = period_bounds(slo, now)
    bounds = store.bounds(slo.name)
    if bounds is None or bounds[0] >= end or bounds[1] < start:
        return {"x": [], "remaining": []}
    first = max(start, bounds[0]) + 1  # the first evaluation that sees a minute of data
    if slo.method != "Occurrences":
        return _timeslice_burndown(slo, store, first, now, max_points)
    np_ = _np()
    b = slo.budget_ratio
    rolling = slo.window.rolling is not None
    w = end - start
    lo = (first - w) if rolling else start
    good, total = store.series(slo.name, lo, now)
    mask = excluded_mask(slo, lo, now - lo)
    if mask is not None:
        good = np_.where(mask, 0, good)
        total = np_.where(mask, 0, total)
    cg = np_.concatenate(([0], np_.cumsum(good, dtype=np_.float64)))
    ct = np_.concatenate(([0], np_.cumsum(total, dtype=np_.float64)))
    ms = np_.arange(first, now + 1, dtype=np_.int64)  # evaluation minutes
    hi_idx = ms - lo
    lo_idx = (ms - w - lo) if rolling else np_.zeros_like(ms)
    lo_idx = np_.maximum(lo_idx, 0)
    g = cg[hi_idx] - cg[lo_idx]
    t = ct[hi_idx] - ct[lo_idx]
    with np_.errstate(divide="ignore", invalid="ignore"):
        consumed = np_.where(t > 0, (t - g) / (b * t), 0.0)
    remaining = 1.0 - consumed
    keep = _thin(len(ms), max_points)
    return {"x": [int(ms[i]) * 60 for i in keep], "remaining": [float(remaining[i]) for i in keep]}


def _timeslice_burndown(
    slo: SLOSpec, store: SLIStore, first: int, now: int, max_points: int
) -> dict[str, list[Any]]:
    n = now - first + 1
    keep = _thin(n, min(max_points, TIMESLICE_POINTS))
    xs: list[int] = []
    rem: list[float] = []
    for i in keep:
        m = first + i
        (st,) = evaluate([slo], store, m * 60)
        xs.append(m * 60)
        rem.append(st.budget_remaining)
    return {"x": xs, "remaining": rem}


def recent_traffic(
    store: SLIStore, sli: str, at: float | None = None, *, minutes: int = RECENT_MINUTES
) -> dict[str, list[Any]]:
    """Per-minute ``good``, ``total`` and ``error_ratio`` (``None`` without events) for the last
    ``minutes`` minutes, the current (filling) minute included."""
    now = _now_minute(at)
    lo = now - minutes + 1
    rows = {m: (g, t) for m, g, t in store.rows(sli, lo, now + 1)}
    xs, good, total, ratio = [], [], [], []
    for m in range(lo, now + 1):
        g, t = rows.get(m, (0, 0))
        xs.append(m * 60)
        good.append(int(g))
        total.append(int(t))
        ratio.append((t - g) / t if t > 0 else None)
    return {"x": xs, "good": good, "total": total, "error_ratio": ratio}


def so_far(
    slos: Sequence[SLOSpec], store: SLIStore, at: float | None = None
) -> list[dict[str, Any]]:
    """Per SLO (in ``slos`` order) its figures with the minute still filling counted so far.

    The evaluator at ``(m + 1) x 60`` for the current minute ``m`` (window ``[m + 1 - W, m + 1)``
    rolling, ``[period_start, m + 1)`` calendar): ``good``, ``total`` (events so far), ``sli`` (so
    far, ``None`` without events), ``budget_remaining`` (so far), plus ``at`` (the time the figures
    are shown at, ``at`` itself), ``partial_total`` and ``partial_good`` (the current minute's
    counts so far) and ``partial`` (whether the current minute has events yet).
    """
    t = datetime.now(UTC).timestamp() if at is None else float(at)
    now = _now_minute(t)
    statuses = evaluate(list(slos), store, (now + 1) * 60) if slos else []
    out: list[dict[str, Any]] = []
    for st in statuses:
        rows = store.rows(st.name, now, now + 1)
        pg = sum(int(g) for _, g, _ in rows)
        pt = sum(int(n) for _, _, n in rows)
        out.append(
            {
                "at": t,
                "good": st.good,
                "total": st.total,
                "sli": st.sli,
                "budget_remaining": st.budget_remaining,
                "partial_good": pg,
                "partial_total": pt,
                "partial": pt > 0,
            }
        )
    return out


def _tiers(slo: SLOSpec, burn_rates: dict[str, float | None], firing: list[str]) -> list[Any]:
    out = []
    for t in slo.tiers():
        lw, sw = format_duration(t.long_window), format_duration(t.short_window)
        out.append(
            {
                "name": t.name,
                "severity": t.severity,
                "long_window": lw,
                "short_window": sw,
                "threshold": t.threshold,
                "error_ratio_threshold": t.threshold * slo.budget_ratio,
                "long_burn": burn_rates.get(lw),
                "short_burn": burn_rates.get(sw),
                "min_events": t.min_events,
                "firing": t.name in firing,
            }
        )
    return out


def slo_board(
    slos: Sequence[SLOSpec],
    store: SLIStore,
    at: float | None = None,
    *,
    recent_minutes: int = RECENT_MINUTES,
    max_points: int = MAX_POINTS,
) -> list[dict[str, Any]]:
    """One entry per SLO, sorted by ``budget_remaining`` ascending (then by name).

    Each entry is the evaluator's status (:meth:`~buttress.slo.evaluator.SLOStatus.to_json`) plus
    ``target``, ``description``, ``tiers`` (the alert table: each tier's windows, threshold, the
    burn rates over its long and short windows and whether it fires), ``burndown``
    (:func:`burndown`), ``recent`` (:func:`recent_traffic`) and ``so_far`` (:func:`so_far`: the
    figures with the minute still filling counted).  The settled figures and the sort order ignore
    the filling minute.
    """
    t = datetime.now(UTC).timestamp() if at is None else float(at)
    now = _now_minute(t)
    statuses = evaluate(list(slos), store, now * 60)
    fresh = so_far(slos, store, t)
    out: list[dict[str, Any]] = []
    for slo, st, sf in zip(slos, statuses, fresh, strict=True):
        entry = st.to_json()
        entry["target"] = slo.target
        entry["description"] = slo.description
        entry["budget_ratio"] = slo.budget_ratio
        entry["tiers"] = _tiers(slo, st.burn_rates, st.firing)
        entry["burndown"] = burndown(slo, store, now * 60, max_points=max_points)
        entry["recent"] = recent_traffic(store, slo.name, now * 60, minutes=recent_minutes)
        entry["so_far"] = sf
        out.append(entry)
    out.sort(key=lambda e: (e["budget_remaining"], e["name"]))
    return out


def unmeasured_slis(
    slos: Sequence[SLOSpec],
    store: SLIStore,
    at: float | None = None,
    *,
    recent_minutes: int = RECENT_MINUTES,
) -> list[dict[str, Any]]:
    """SLIs with data in the store but no SLO in the spec: name and recent traffic only."""
    known = {s.name for s in slos}
    return [
        {"name": name, "recent": recent_traffic(store, name, at, minutes=recent_minutes)}
        for name in store.slis()
        if name not in known
    ]
