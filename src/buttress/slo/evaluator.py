"""The embedded evaluator: SLO status from the per-minute counts in the store.

At time ``t`` (rounded down to a minute) a window of ``W`` minutes covers the minutes
``[t - W, t)``: exactly what Prometheus computes at ``t`` from counters scraped each minute, so the
evaluator, the math module and the generated rules agree (the tests check it).

For each SLO: the SLI over the period, budget consumed and remaining, the burn rate over 5m and
every tier window, the firing tiers and the time to exhaustion at the burn rate of the shortest
long window (1h with the default tiers).  Occurrences SLOs sharing a period and tiers are computed
together, in chunks, as 2-D numpy arrays (rows = SLOs, columns = the minutes of the longest alert
window) read from the store's day blocks in one query, with the period's sums from its per-day
sums; see :func:`evaluate` and :func:`status_batch`.

Timeslices and RatioTimeslices follow OpenSLO: the budget is ``b x`` every slice of the period
(slices without events spend nothing and count in the period), the SLI is good slices over slices
with events; the Prometheus rules compute the same budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from . import math as slomath
from ._np import numpy
from .blocks import unpack
from .spec import SLOSpec, WindowSLI, format_duration
from .store import DAY, SLIStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "SLOStatus",
    "evaluate",
    "evaluate_reference",
    "period_bounds",
    "status_batch",
    "status_reference",
]


@dataclass
class SLOStatus:
    """The state of one SLO at ``at``.  Ratios are fractions (0.999), times are seconds."""

    name: str
    service: str
    objective: float
    budgeting: str
    window: str
    at: str
    period_start: str
    good: float
    total: float
    sli: float | None
    budget_consumed: float
    budget_remaining: float
    burn_rates: dict[str, float | None] = field(default_factory=dict)
    firing: list[str] = field(default_factory=list)
    time_to_exhaustion: float | None = None
    excluded_minutes: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``None`` for undefined ratios and infinite times)."""
        return asdict(self)


def _to_minute(at: datetime | float | None) -> int:
    if at is None:
        # "Now" includes the minute in progress, so what was just recorded shows.
        return int(datetime.now(UTC).timestamp() // 60) + 1
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("'at' must carry a time zone")
        t = at.timestamp()
    else:
        t = float(at)
    return int(t // 60)


def period_bounds(slo: SLOSpec, now_minute: int) -> tuple[int, int, float]:
    """``(start_minute, end_minute, period_seconds)`` of the SLO's window at ``now_minute``.

    Rolling: the last ``window`` minutes.  Calendar: from the start of the current
    week/month/quarter in the window's time zone (DST-aware) to now; ``period_seconds`` is that
    calendar period's real length.
    """
    w = slo.window
    if w.rolling is not None:
        n = round(w.rolling / 60)
        return now_minute - n, now_minute, w.rolling
    assert w.calendar is not None
    at = datetime.fromtimestamp(now_minute * 60, tz=ZoneInfo(w.timezone))
    start, end = slomath.calendar_period(at, w.calendar, w.timezone)
    s, e = start.timestamp(), end.timestamp()
    return int(s // 60), now_minute, e - s


def excluded_mask(slo: SLOSpec, start_minute: int, n: int) -> npt.NDArray[np.bool_] | None:
    """True for each of the ``n`` minutes from ``start_minute`` inside one of ``slo``'s
    exclusions (a minute partly inside counts); None when the SLO has no exclusions."""
    if not slo.exclusions:
        return None
    np_: Any = numpy()
    minutes = np_.arange(start_minute, start_minute + n, dtype=np_.int64)
    mask = np_.zeros(n, dtype=bool)
    for e in slo.exclusions:
        lo = math.floor(e.start.timestamp() / 60)
        hi = math.ceil(e.end.timestamp() / 60)
        mask |= (minutes >= lo) & (minutes < hi)
    return mask  # type: ignore[no-any-return]


def _window_minutes(slo: SLOSpec, tiers: Sequence[slomath.AlertTier] | None = None) -> list[int]:
    ws = {5}
    for t in slo.tiers() if tiers is None else tiers:
        ws.add(max(1, round(t.long_window / 60)))
        ws.add(max(1, round(t.short_window / 60)))
    return sorted(ws)


def _ref_window(slo: SLOSpec) -> int:
    tiers = slo.tiers()
    return max(1, round(min(t.long_window for t in tiers) / 60)) if tiers else 60


def status_batch(
    good: npt.NDArray[Any],
    total: npt.NDArray[Any],
    budget_ratio: npt.NDArray[np.float64],
    *,
    windows: Sequence[int],
    tiers: Sequence[slomath.AlertTier],
    ref_window: int,
    period_seconds: float,
    period_sums: tuple[Any, Any] | None = None,
) -> dict[str, Any]:
    """Occurrences status of many SLOs at once.

    ``good`` and ``total`` are ``(n_slos, n_minutes)`` arrays whose last column is the minute just
    before "now"; the period is all columns, unless ``period_sums`` gives the period's
    ``(good, total)`` per SLO (then the arrays need only cover the longest window).  Returns arrays
    (one value per SLO): ``good``, ``total``, ``consumed``, ``remaining``, ``burn`` (a dict window
    -> array; NaN without events), ``firing`` (a dict tier name -> bool array) and ``tte``
    (seconds; inf when not burning).
    """
    np_ = numpy()
    # One pass over the data: the windows are nested (all end at "now"), so each window's sums are
    # the previous (shorter) window's plus the columns it adds; the period adds the rest.
    all_w = sorted({*windows, ref_window, *_tier_windows(tiers)})
    n = good.shape[1]
    acc_g = np_.zeros(good.shape[0], dtype=np_.int64)
    acc_t = np_.zeros(good.shape[0], dtype=np_.int64)
    prev = 0
    sums: dict[int, tuple[npt.NDArray[Any], npt.NDArray[Any]]] = {}
    for w in all_w:
        cut = min(w, n)
        if cut > prev:
            acc_g = acc_g + good[:, n - cut : n - prev].sum(axis=1)
            acc_t = acc_t + total[:, n - cut : n - prev].sum(axis=1)
            prev = cut
        tw = acc_t.astype(np_.float64)
        sums[w] = (tw - acc_g.astype(np_.float64), tw)
    if period_sums is not None:
        g_p = np_.asarray(period_sums[0], dtype=np_.float64)
        t_p = np_.asarray(period_sums[1], dtype=np_.float64)
    else:
        g_p = (acc_g + good[:, : n - prev].sum(axis=1)).astype(np_.float64)
        t_p = (acc_t + total[:, : n - prev].sum(axis=1)).astype(np_.float64)
    bad_p = t_p - g_p
    with np_.errstate(divide="ignore", invalid="ignore"):
        consumed = np_.where(t_p > 0, bad_p / (budget_ratio * t_p), 0.0)
        remaining = 1.0 - consumed
        burn = {w: (sums[w][0] / sums[w][1]) / budget_ratio for w in windows}
        firing: dict[str, npt.NDArray[np.bool_]] = {}
        for tier in tiers:
            lw, sw = _tw(tier)
            lb, lt = sums[lw]
            sb, st = sums[sw]
            limit = tier.threshold * budget_ratio
            firing[tier.name] = (
                (lt > 0)
                & (st > 0)
                & (lt >= tier.min_events)
                & (lb / lt > limit)
                & (sb / st > limit)
            )
        rb, rt = sums[ref_window]
        ref_burn = (rb / rt) / budget_ratio
        tte = np_.where(
            remaining <= 0,
            0.0,
            np_.where(ref_burn > 0, remaining * period_seconds / ref_burn, np_.inf),
        )
    return _figures(g_p, t_p, consumed, remaining, burn, firing, tte)


def _figures(  # noqa: PLR0917 - the figures in their documented order
    good: Any, total: Any, consumed: Any, remaining: Any, burn: Any, firing: Any, tte: Any
) -> dict[str, Any]:
    """An SLO's figures as :func:`status_batch` and :func:`status_reference` return them."""
    return {
        "good": good,
        "total": total,
        "consumed": consumed,
        "remaining": remaining,
        "burn": burn,
        "firing": firing,
        "tte": tte,
    }


def _tw(tier: slomath.AlertTier) -> tuple[int, int]:
    return max(1, round(tier.long_window / 60)), max(1, round(tier.short_window / 60))


def _tier_windows(tiers: Sequence[slomath.AlertTier]) -> list[int]:
    out: list[int] = []
    for t in tiers:
        out.extend(_tw(t))
    return out


def status_reference(
    good: Sequence[Sequence[int]],
    total: Sequence[Sequence[int]],
    budget_ratio: Sequence[float],
    *,
    windows: Sequence[int],
    tiers: Sequence[slomath.AlertTier],
    ref_window: int,
    period_seconds: float,
) -> list[dict[str, Any]]:
    """The same figures as :func:`status_batch`, computed the way a competent engineer would
    without numpy: ``sum()`` over list slices, each distinct window summed once per SLO, and the
    math module (the reference the tests and the benchmark use; a fair one, not a strawman)."""
    out = []
    needed = sorted({*windows, ref_window, *_tier_windows(tiers)})
    for g, t, b in zip(good, total, budget_ratio, strict=True):
        g_p, t_p = float(sum(g)), float(sum(t))
        consumed = slomath.budget_consumed(t_p - g_p, t_p, b)
        remaining = 1.0 - consumed
        sums: dict[int, tuple[float, float]] = {}
        for w in needed:
            tw = float(sum(t[-w:]))
            sums[w] = (tw - sum(g[-w:]), tw)
        burn = {
            w: slomath.burn_rate(sums[w][0] / sums[w][1], b) if sums[w][1] > 0 else math.nan
            for w in windows
        }
        firing = []
        for tier in tiers:
            lw, sw = _tw(tier)
            if slomath.tier_fires(*sums[lw], *sums[sw], budget_ratio=b, tier=tier):
                firing.append(tier.name)
        rb, rt = sums[ref_window]
        ref = slomath.burn_rate(rb / rt, b) if rt > 0 else 0.0
        tte = slomath.time_to_exhaustion(remaining, ref, period_seconds)
        out.append(_figures(g_p, t_p, consumed, remaining, burn, firing, tte))
    return out


def _timeslice_status(
    slo: SLOSpec,
    good: npt.NDArray[Any],
    total: npt.NDArray[Any],
    *,
    start: int,
    now: int,
    period: float,
) -> dict[str, Any]:
    """Timeslices / RatioTimeslices: slices aligned to multiples of the slice length."""
    np_ = numpy()
    sli = slo.sli
    assert isinstance(sli, WindowSLI)
    k = round(sli.slice / 60)
    first = -(-start // k) * k  # first slice start >= period start
    last = (now // k) * k  # end of the last complete slice
    n_sl = max(0, (last - first) // k)
    off = first - start
    g = good[off : off + n_sl * k].reshape(n_sl, k).sum(axis=1, dtype=np_.float64)
    t = total[off : off + n_sl * k].reshape(n_sl, k).sum(axis=1, dtype=np_.float64)
    seen = t > 0
    with np_.errstate(divide="ignore", invalid="ignore"):
        ratio = np_.where(seen, g / t, np_.nan)
    if slo.method == "Timeslices":
        assert sli.target is not None
        bad_units = np_.where(seen, (ratio < sli.target).astype(np_.float64), 0.0)
    else:
        bad_units = np_.where(seen, 1.0 - ratio, 0.0)
    counted = seen.astype(np_.float64)
    b = slo.budget_ratio
    slices_in_period = period / sli.slice
    consumed = float(bad_units.sum()) / (b * slices_in_period)

    def win(w_minutes: int) -> tuple[float, float]:
        m = max(1, w_minutes // k)
        return float(bad_units[-m:].sum()), float(counted[-m:].sum())

    burn: dict[int, float] = {}
    for w in _window_minutes(slo):
        bw, cw = win(w)
        burn[w] = slomath.burn_rate(bw / cw, b) if cw > 0 else math.nan
    firing = []
    for tier in slo.tiers():
        lw, sw = _tw(tier)
        lb, lc = win(lw)
        sb, sc = win(sw)
        if slomath.tier_fires(lb, lc, sb, sc, budget_ratio=b, tier=tier):
            firing.append(tier.name)
    rb, rc = win(_ref_window(slo))
    ref = slomath.burn_rate(rb / rc, b) if rc > 0 else 0.0
    counted_n = float(counted.sum())
    value = (counted_n - float(bad_units.sum())) / counted_n if counted_n > 0 else None
    return {
        "good": counted_n - float(bad_units.sum()),
        "total": counted_n,
        "sli": value,
        "consumed": consumed,
        "remaining": 1.0 - consumed,
        "burn": burn,
        "firing": firing,
        "tte": slomath.time_to_exhaustion(1.0 - consumed, ref, period),
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else float(x)


def _excluded_intervals(slo: SLOSpec, start: int, end: int) -> list[tuple[int, int]]:
    """The SLO's exclusions as merged minute intervals ``[lo, hi)`` clipped to ``[start, end)``
    (a minute partly inside an exclusion is excluded, as in :func:`excluded_mask`)."""
    spans = sorted(
        (
            max(start, math.floor(e.start.timestamp() / 60)),
            min(end, math.ceil(e.end.timestamp() / 60)),
        )
        for e in slo.exclusions
    )
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        if hi <= lo:
            continue
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


CHUNK = 256
"""SLOs evaluated together (one store query and one numpy pass); bounds memory to
``CHUNK x longest window x 16`` bytes."""


def evaluate(
    slos: Sequence[SLOSpec], store: SLIStore, at: datetime | float | None = None
) -> list[SLOStatus]:
    """Status of every SLO at ``at`` from the counts in ``store``.

    ``at`` is rounded down to a minute; the default (now) counts the minute in progress too.

    Occurrences SLOs sharing a period and tiers are evaluated in chunks of :data:`CHUNK`: one
    :meth:`~SLIStore.series_many` read of the minutes their longest window covers, one
    :meth:`~SLIStore.totals` read of the period's sums (per-day sums plus the partial days), and one
    :func:`status_batch` pass.  Excluded minutes are zeroed in the windows and subtracted from the
    period's sums.  Timeslices SLOs read their whole period (every slice counts).
    """
    np_ = numpy()
    now = _to_minute(at)
    at_text = datetime.fromtimestamp(now * 60, tz=UTC).isoformat()
    results: dict[int, SLOStatus] = {}
    groups: dict[tuple[Any, ...], list[tuple[int, SLOSpec]]] = {}
    for i, slo in enumerate(slos):
        start, end, period = period_bounds(slo, now)
        excluded = _excluded_intervals(slo, start, end)
        n_excluded = sum(hi - lo for lo, hi in excluded)
        if slo.method != "Occurrences":
            good, total = store.series(slo.name, start, end)
            mask = excluded_mask(slo, start, end - start)
            if mask is not None:
                good = np_.where(mask, 0, good)
                total = np_.where(mask, 0, total)
            r = _timeslice_status(slo, good, total, start=start, now=end, period=period)
            results[i] = _make(
                slo,
                r,
                sli=r["sli"],
                at_text=at_text,
                start=start,
                excluded=n_excluded,
                burns={w: r["burn"][w] for w in _window_minutes(slo)},
                firing=r["firing"],
            )
            continue
        tiers = tuple(slo.tiers())
        key = (start, end, period, tiers, tuple(_window_minutes(slo, tiers)))
        groups.setdefault(key, []).append((i, slo))
    for (start, end, period, tiers, windows), members in groups.items():
        ref = max(1, round(min(t.long_window for t in tiers) / 60)) if tiers else 60
        span = min(end - start, max(*windows, ref, *_tier_windows(tiers)))
        # Per-minute data from the start of the day the longest window begins in; the period's
        # earlier part from the store's per-day sums (only its first, partial day is read).
        recent = max(start, (end - span) // DAY * DAY)
        keys = {w: format_duration(w * 60) for w in windows}
        start_text = datetime.fromtimestamp(start * 60, tz=UTC).isoformat()
        for c in range(0, len(members), CHUNK):
            chunk = members[c : c + CHUNK]
            names = [slo.name for _, slo in chunk]
            good, total = store.series_many_narrow(names, recent, end)
            head_g, head_t = store.totals(names, start, recent)
            n_excl = []
            for j, (_, slo) in enumerate(chunk):
                excluded = _excluded_intervals(slo, start, end)
                n_excl.append(sum(hi - lo for lo, hi in excluded))
                for lo, hi in excluded:
                    if lo < recent:
                        (eg,), (et,) = store.totals([slo.name], lo, min(hi, recent))
                        head_g[j] -= eg
                        head_t[j] -= et
                    a, b = max(lo - recent, 0), max(hi - recent, 0)
                    good[j, a:b] = 0
                    total[j, a:b] = 0
            pg = np_.asarray(head_g, dtype=np_.float64) + good.sum(axis=1)
            pt = np_.asarray(head_t, dtype=np_.float64) + total.sum(axis=1)
            r = status_batch(
                good,
                total,
                np_.array([slo.budget_ratio for _, slo in chunk]),
                windows=list(windows),
                tiers=list(tiers),
                ref_window=ref,
                period_seconds=period,
                period_sums=(pg, pt),
            )
            # Plain Python values once per chunk, then one SLOStatus per SLO.
            cols = {k: r[k].tolist() for k in ("good", "total", "consumed", "remaining", "tte")}
            burn_cols = [(keys[w], r["burn"][w].tolist()) for w in windows]
            fire_cols = [(t.name, r["firing"][t.name].tolist()) for t in tiers]
            for j, (i, slo) in enumerate(chunk):
                tot = cols["total"][j]
                results[i] = SLOStatus(
                    name=slo.name,
                    service=slo.service or "",
                    objective=slo.objective,
                    budgeting="Occurrences",
                    window=slo.window.describe(),
                    at=at_text,
                    period_start=start_text,
                    good=cols["good"][j],
                    total=tot,
                    sli=cols["good"][j] / tot if tot > 0 else None,
                    budget_consumed=cols["consumed"][j],
                    budget_remaining=cols["remaining"][j],
                    burn_rates={k: _num(v[j]) for k, v in burn_cols},
                    firing=[name for name, f in fire_cols if f[j]],
                    time_to_exhaustion=_num(cols["tte"][j]),
                    excluded_minutes=n_excl[j],
                )
    return [results[i] for i in range(len(slos))]


def evaluate_reference(
    slos: Sequence[SLOSpec], store: SLIStore, at: datetime | float | None = None
) -> list[dict[str, Any]]:
    """The figures of :func:`evaluate` for Occurrences SLOs without exclusions, the
    straightforward way: every SLO's whole period read from the store into Python lists, then
    :func:`status_reference` (``sum()`` over slices).  The reference the tests and the benchmark
    use."""
    now = _to_minute(at)
    out = []
    for slo in slos:
        start, end, period = period_bounds(slo, now)
        n = end - start
        good, total = [0] * n, [0] * n
        for _, day, width, blob in store.blocks([slo.name], start // DAY, (end - 1) // DAY):
            arr = unpack(width, blob)
            lo, hi = max(start - day * DAY, 0), min(end - day * DAY, DAY)
            m = day * DAY + lo - start
            good[m : m + hi - lo] = arr[lo:hi].tolist()
            total[m : m + hi - lo] = arr[DAY + lo : DAY + hi].tolist()
        (r,) = status_reference(
            [good],
            [total],
            [slo.budget_ratio],
            windows=_window_minutes(slo),
            tiers=slo.tiers(),
            ref_window=_ref_window(slo),
            period_seconds=period,
        )
        out.append(r)
    return out


def _make(
    slo: SLOSpec,
    r: dict[str, Any],
    *,
    sli: float | None,
    at_text: str,
    start: int,
    excluded: int,
    burns: dict[int, float],
    firing: list[str],
) -> SLOStatus:
    return SLOStatus(
        name=slo.name,
        service=slo.service or "",
        objective=slo.objective,
        budgeting=slo.method,
        window=slo.window.describe(),
        at=at_text,
        period_start=datetime.fromtimestamp(start * 60, tz=UTC).isoformat(),
        good=float(r["good"]),
        total=float(r["total"]),
        sli=sli,
        budget_consumed=float(r["consumed"]),
        budget_remaining=float(r["remaining"]),
        burn_rates={format_duration(w * 60): _num(v) for w, v in burns.items()},
        firing=list(firing),
        time_to_exhaustion=_num(float(r["tte"])),
        excluded_minutes=excluded,
    )
