"""``buttress report``: a period's reliability, against the period before it.

For ``[since, until)`` and the previous period of the same length:

* per SLO (with the SLI store and the spec): attainment (good / total events) against the
  objective, and the error budget spent, ``bad / ((1 - objective) * total)`` -- the share of the
  period's own budget (over 100 %: the SLO was missed for the period);
* incidents detected in the period, the top failure modes (by count, then by time to recover),
  and the time-to-x distributions (:mod:`buttress.incident.analytics`);
* lab runs and disaster-recovery drills in the period, with their verdicts
  (:mod:`buttress.incident.exercises`; with ``--lab`` / ``--drills`` directories);
* open action items (of any period) and the risk each answers;
* with an architecture: the risk register's predicted occurrences in the period
  (``frequency * period / 1 year``) beside the incidents observed for that risk (an incident
  belongs to a risk when its failure mode names the risk's event or mode).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError

from .analytics import by_group
from .exercises import drill_times, exercises, schedule
from .model import Incident, stamp
from .store import IncidentStore

if TYPE_CHECKING:
    from buttress.assess.risk import Risk
    from buttress.slo.spec import SLOSpec
    from buttress.slo.store import SLIStore

__all__ = ["Period", "parse_when", "period_figures", "period_report", "render_text"]

YEAR = 365.0 * 86400.0


@dataclass(frozen=True, slots=True)
class Period:
    """``[since, until)`` in Unix seconds."""

    since: float
    until: float

    @property
    def previous(self) -> Period:
        return Period(2 * self.since - self.until, self.since)

    @staticmethod
    def between(since: str | None, until: str | None) -> Period:
        """The period the command line names (``--since``, ``--until``; see :func:`parse_when`):
        by default the 30 days up to now."""
        now = time.time()
        end = parse_when(until, "--until", now=now) or now
        start = parse_when(since, "--since", now=end)
        start = end - 30 * 86400.0 if start is None else start
        if not start < end:
            raise ConfigError("--since", since, "must be before --until")
        return Period(start, end)


def parse_when(value: str | None, option: str, *, now: float) -> float | None:
    """``2026-01-02``, ``2026-01-02T03:04:05Z`` (no zone: UTC), Unix seconds, or a duration
    back from now (``30d``, ``12h``, ``90m``)."""
    if value is None:
        return None
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "w": 604800.0}
    text = value.strip()
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in units:
        return now - float(text[:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            option, value, "use an ISO 8601 date or time, Unix seconds, or 30d / 12h / 90m"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _slo_figures(slos: Sequence[SLOSpec], sli: SLIStore, period: Period) -> list[dict[str, Any]]:
    lo, hi = int(period.since // 60), int(period.until // 60)
    names = [s.name for s in slos]
    good, total = sli.totals(names, lo, hi) if names else ([], [])
    out = []
    for slo, g, t in zip(slos, good, total, strict=True):
        allowed = 1 - slo.objective / 100
        attainment = g / t if t else None
        out.append(
            {
                "slo": slo.name,
                "objective": slo.objective,
                "good": g,
                "total": t,
                "attainment": attainment,
                "met": None if attainment is None else attainment * 100 >= slo.objective,
                "budget_spent": (t - g) / (allowed * t) if t else None,
            }
        )
    return out


def _duration(i: Incident) -> float:
    return (i.resolved if i.resolved is not None else i.detected) - i.started


def period_figures(
    store: IncidentStore,
    period: Period,
    *,
    slos: Sequence[SLOSpec] = (),
    sli_store: SLIStore | None = None,
) -> dict[str, Any]:
    """One period's figures (no trend, no risk register)."""
    incidents = store.incidents(since=period.since, until=period.until, limit=1_000_000)
    modes = Counter(i.mode for i in incidents)
    downtime: dict[str, float] = {}
    for i in incidents:
        downtime[i.mode] = downtime.get(i.mode, 0.0) + _duration(i)
    top = sorted(modes, key=lambda m: (-modes[m], -downtime[m], m))
    stats = by_group(incidents)
    return {
        "since": period.since,
        "until": period.until,
        "slos": _slo_figures(slos, sli_store, period) if sli_store is not None else [],
        "incidents": [i.to_json() for i in sorted(incidents, key=lambda i: i.detected)],
        "top_modes": [{"mode": m, "incidents": modes[m], "seconds": downtime[m]} for m in top[:10]],
        "mttx": {metric: s.to_json() for metric, s in stats.get("all", {}).items()},
    }


def _risks_vs_observed(
    risks: Sequence[Risk], incidents: Sequence[dict[str, Any]], period: Period
) -> list[dict[str, Any]]:
    years = (period.until - period.since) / YEAR
    observed = Counter(i["mode"] for i in incidents)
    worst: dict[str, Risk] = {}
    for r in risks:
        if r.event not in worst or r.bad_minutes > worst[r.event].bad_minutes:
            worst[r.event] = r
    rows = []
    for r in sorted(worst.values(), key=lambda r: -r.bad_minutes):
        seen = observed.get(r.event, 0) + (observed.get(r.mode, 0) if r.mode != r.event else 0)
        rows.append(
            {
                "event": r.event,
                "mode": r.mode,
                "journey": r.journey,
                "predicted": r.frequency * years,
                "observed": seen,
                "bad_minutes_per_year": r.bad_minutes,
                "rpn": r.rpn,
            }
        )
    return [row for i, row in enumerate(rows) if i < 10 or row["observed"]]


def period_report(
    store: IncidentStore,
    period: Period,
    *,
    slos: Sequence[SLOSpec] = (),
    sli_store: SLIStore | None = None,
    risks: Sequence[Risk] = (),
    labs: Sequence[dict[str, Any]] = (),
    drills: Sequence[dict[str, Any]] = (),
    skipped: Sequence[dict[str, str]] = (),
    drill_every: float | None = None,
) -> dict[str, Any]:
    """The report: this period, the previous one, open action items, risks against reality;
    ``labs`` and ``drills`` as read by :mod:`buttress.incident.exercises` (any time: each period
    keeps its own), ``skipped`` the files they could not use; with ``drill_every`` (seconds: the
    spec's ``experiments.drill.every``), whether the drills kept that schedule up to the period's
    end (``drill_schedule``)."""
    now = period_figures(store, period, slos=slos, sli_store=sli_store)
    before = period_figures(store, period.previous, slos=slos, sli_store=sli_store)
    for figures, p in ((now, period), (before, period.previous)):
        figures["exercises"] = exercises(list(labs), list(drills), p.since, p.until)
    items = store.action_items(open_only=True)
    return {
        "period": now,
        "previous": before,
        "open_action_items": [i.to_json() for i in items],
        "risks": _risks_vs_observed(risks, now["incidents"], period) if risks else [],
        "skipped": list(skipped),
        "drill_schedule": None
        if drill_every is None
        else schedule(drill_times(labs, drills), drill_every, period.until),
    }


def _pct(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def secs(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 120:
        return f"{x:.0f}s"
    if x < 7200:
        return f"{x / 60:.1f}m"
    return f"{x / 3600:.1f}h"


def _trend(now: float | None, before: float | None, *, lower_is_better: bool = True) -> str:
    if now is None or before is None:
        return ""
    if now == before:
        return " (=)"
    better = (now < before) == lower_is_better
    return f" ({'better' if better else 'worse'} than {secs(before)})"


def render_text(report: dict[str, Any]) -> str:
    """The report as plain text."""
    p, q = report["period"], report["previous"]
    lines = [f"Reliability report {stamp(p['since'])} .. {stamp(p['until'])}", ""]
    if p["slos"]:
        lines.append("SLOs (attainment / objective, budget spent; previous period)")
        prev = {s["slo"]: s for s in q["slos"]}
        for s in p["slos"]:
            old = prev.get(s["slo"], {})
            lines.append(
                f"  {s['slo']:<28} {_pct(s['attainment'])} / {s['objective']:g}%  "
                f"budget {_pct(s['budget_spent'], 1)}  "
                f"(before: {_pct(old.get('attainment'))}, "
                f"budget {_pct(old.get('budget_spent'), 1)})"
            )
        lines.append("")
    lines.append(f"Incidents: {len(p['incidents'])} (previous period: {len(q['incidents'])})")
    lines += [f"  {_incident_row(i)}" for i in p["incidents"]]
    if p["top_modes"]:
        lines += ["", "Top failure modes", *(f"  {_mode_row(m)}" for m in p["top_modes"])]
    lines += ["", "Time to x (median [95% CI], p90; previous median)"]
    for metric, s in p["mttx"].items():
        old = q["mttx"].get(metric, {}).get("median") or {}
        med = s["median"]
        if med is None:
            lines.append(f"  {metric:<24} no data")
            continue
        p90 = s["p90"]
        lines.append(
            f"  {metric:<24} {secs(med['value'])} [{secs(med['low'])}, {secs(med['high'])}], "
            f"p90 {secs(p90['value'])}, n={s['n']}"
            + _trend(
                med["value"], old.get("value"), lower_is_better=metric != "time_between_failures"
            )
        )
    lines += _exercise_lines(p.get("exercises"), q.get("exercises"), report.get("skipped", []))
    lines += _schedule_lines(report.get("drill_schedule"))
    items = report["open_action_items"]
    lines += ["", f"Open action items: {len(items)}", *(f"  {_action_row(a)}" for a in items)]
    if report["risks"]:
        lines += ["", "Risk register against reality (occurrences in the period)"]
        lines += [f"  {_risk_row(r)}" for r in report["risks"]]
    return "\n".join(lines) + "\n"


def _incident_row(i: dict[str, Any]) -> str:
    return (
        f"#{i['id']:<4} {stamp(i['detected'])}  {i['state']:<12} "
        f"{i['service']}/{i['mode']}  {i['title']}"
    )


def _mode_row(m: dict[str, Any]) -> str:
    return f"{m['mode']:<28} {m['incidents']} incident(s), {secs(m['seconds'])}"


def _action_row(a: dict[str, Any]) -> str:
    return f"#{a['id']:<4} incident #{a['incident']}: {a['title']} ({a['owner']}; risk {a['risk']})"


def _risk_row(r: dict[str, Any]) -> str:
    return (
        f"{r['event']:<28} predicted {r['predicted']:.2f}, observed {r['observed']}"
        f"  ({r['mode']}; {r['bad_minutes_per_year']:.1f} bad min/yr, RPN {r['rpn']})"
    )


def _objective(value: float | None, target: float | None) -> str:
    shown = "-" if value is None else f"{value:.1f}s"
    return shown if target is None else f"{shown} (objective {target:g}s)"


def _exercise_lines(
    now: dict[str, Any] | None, before: dict[str, Any] | None, skipped: list[dict[str, str]]
) -> list[str]:
    """The lab and drill section (nothing when neither was asked for)."""
    if now is None or (not now["labs"] and not now["drills"] and not skipped and
                       not (before and (before["labs"] or before["drills"]))):  # fmt: skip
        return []
    prev = before or {"labs": [], "drills": [], "labs_passed": 0, "drills_passed": 0}
    lines = [
        "",
        f"Lab runs: {len(now['labs'])}, {now['labs_passed']} passed "
        f"(previous period: {len(prev['labs'])}, {prev['labs_passed']} passed)",
    ]
    for r in now["labs"]:
        lines.append(
            f"  {stamp(r['time'])}  {r['verdict'] or '?':<12} {r['held']} held, "
            f"{r['failed']} failed, {r['inconclusive']} inconclusive  {r['file']}"
        )
        d = r.get("drill")
        if d:
            o = d.get("objectives") or {}
            lines.append(
                f"    drill of {d.get('target')}: RTO {_objective(d.get('rto'), o.get('rto'))}, "
                f"RPO {_objective(d.get('rpo'), o.get('rpo'))}"
            )
    lines.append(
        f"Drills: {len(now['drills'])}, {now['drills_passed']} passed "
        f"(previous period: {len(prev['drills'])}, {prev['drills_passed']} passed)"
    )
    for r in now["drills"]:
        verdict = "passed" if r["passed"] else "FAILED"
        lines.append(
            f"  {stamp(r['time'])}  {verdict:<12} {r['disruption']}: "
            f"RTO {_objective(r['rto'], None)}, RPO {_objective(r['rpo'], None)}  {r['file']}"
        )
        lines += [f"    {f}" for f in r["failures"]]
    for s in skipped:
        lines.append(f"  skipped {s['file']}: {s['reason']}")
    return lines


def _schedule_lines(s: dict[str, Any] | None) -> list[str]:
    """The drill schedule's verdict (nothing without a declared schedule)."""
    if s is None:
        return []
    every = f"every {s['every'] / 86400:g} days"
    if s["status"] == "none":
        return ["", f"Drill schedule ({every}): NONE held"]
    lines = [
        "",
        f"Drill schedule ({every}): {s['status'].upper()}, {s['held']} drill(s) held; last "
        f"{stamp(s['last'])}, next due {stamp(s['due'])}",
    ]
    lines += [
        f"  late: {secs(g['gap'])} from {stamp(g['after'])} to {stamp(g['next'])}"
        for g in s["late"]
    ]
    return lines
