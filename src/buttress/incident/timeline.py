"""An incident's timeline, assembled from what Buttress already records, and its SLO impact.

Sources, each optional but the incident's own log:

* the incident log (detected, alerts joining, acknowledged, mitigated, resolved: who and when);
* the SLI store (:class:`buttress.slo.SLIStore`): per SLO, the minute errors began, the worst
  minute (share failing, burn rate) and the minute they stopped;
* the state feed in the same file (tables ``buttress_events``: breaker transitions, health checks,
  endpoints...), read with plain SQL so this package does not depend on the dashboard;
* supervisor and remediation actions: the remediation journal, the supervisor's status file and
  their events in the feed (:mod:`buttress.incident.actions`);
* Chaos Toolkit journals (experiment start and end, each action and probe);
* deploy markers posted by CI (:meth:`IncidentStore.add_deploy`).

The window is ``[started - before, end + after]`` where ``end`` is the resolution (or now).

Impact per SLO, over ``[started - before, end)`` (a burn-rate alert fires minutes after the errors
begin, so the minutes before the alert belong to the incident too): failed and total events, the
worst minute's failing share ("users affected" is bounded by the failed requests and shown as that
share), and the error budget
spent: ``bad / ((1 - objective) * period_total)`` of the SLO's period (rolling or calendar, ending
at ``end``), also in *budget minutes*, that share times the period's budget of
``(1 - objective) * period minutes`` -- with even traffic, the minutes of full outage the errors
amount to.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buttress.errors import ButtressError
from buttress.sqlite import connect

from .actions import remediation_entries, supervisor_entries
from .model import Entry, Incident, LogEntry, Record
from .store import Deploy

if TYPE_CHECKING:
    from buttress.slo.spec import SLOSpec
    from buttress.slo.store import SLIStore

__all__ = [
    "Entry",
    "SLOImpact",
    "Timeline",
    "build_timeline",
    "chaos_entries",
    "feed_entries",
    "remediation_entries",
    "slo_impact",
    "supervisor_entries",
]

DEFAULT_BEFORE = 1800.0
"""Seconds of history before the incident's start shown on its timeline."""
DEFAULT_AFTER = 600.0
"""Seconds after its end."""


@dataclass(frozen=True, slots=True)
class SLOImpact(Record):
    """What an incident cost one SLO (see the module docstring for the formulas)."""

    slo: str
    objective: float
    failed: int
    total: int
    budget_share: float
    budget_minutes: float
    period_budget_minutes: float
    peak_failing_share: float
    peak_burn_rate: float
    first_bad: float | None
    peak: float | None
    last_bad: float | None


@dataclass(frozen=True, slots=True)
class Timeline(Record):
    """An incident's timeline (entries oldest first) and its impact per SLO."""

    incident: Incident
    start: float
    end: float
    entries: list[Entry]
    impacts: list[SLOImpact]


def incident_entries(log: Iterable[LogEntry]) -> list[Entry]:
    words = {
        "detected": "incident detected ({actor})",
        "alerts": "more alerts joined the group ({actor})",
        "acknowledged": "acknowledged by {actor}",
        "mitigated": "mitigated by {actor}",
        "resolved": "resolved by {actor}",
    }
    out: list[Entry] = []
    for e in log:
        text = words.get(e.kind, e.kind + " ({actor})").format(actor=e.actor)
        note = e.detail.get("note")
        if note:
            text += f": {note}"
        out.append(Entry(e.time, "incident", e.kind, text, dict(e.detail)))
    return out


def deploy_entries(deploys: Iterable[Deploy]) -> list[Entry]:
    return [
        Entry(
            d.time,
            "deploy",
            "deploy",
            f"deploy of {d.service} {d.version} by {d.actor}",
            {"service": d.service, "version": d.version},
        )
        for d in deploys
    ]


def feed_entries(path: str | Path, start: float, end: float) -> list[Entry]:
    """State changes logged in the feed table ``buttress_events`` of ``path`` in ``[start, end]``
    (none when the file has no feed)."""
    conn = connect(path, read_only=True)
    try:
        try:
            rows = conn.execute(
                "SELECT time, policy_type, scope, name, kind, state, level, fields "
                "FROM buttress_events WHERE time >= ? AND time <= ? ORDER BY time, seq",
                (start, end),
            ).fetchall()
        except sqlite3.OperationalError:  # no feed tables: a store that only records SLIs
            return []
    finally:
        conn.close()
    out: list[Entry] = []
    for t, policy_type, scope, name, kind, state, level, fields in rows:
        # Supervisor and remediation events are actions, shown under their own source.
        source = policy_type if policy_type in ("supervisor", "remediation") else "feed"
        values = json.loads(fields)
        out.append(
            Entry(
                float(t),
                source,
                f"{policy_type}.{kind}",
                f"{policy_type} {scope}/{name}: {_what(source, kind, state, values)}",
                {"level": level, "fields": values},
            )
        )
    return out


def _what(source: str, kind: str, state: str, fields: dict[str, Any]) -> str:
    """What happened, in words: a state for the feed, the event for a supervisor, the action and
    its outcome for remediation (as its journal says it)."""
    if source == "supervisor":
        return kind.replace("_", " ")
    if source == "remediation" and kind == "acted" and "action" in fields:
        return f"{fields['action']} on {fields.get('subject', '?')}: {fields.get('outcome', state)}"
    if source == "remediation" and kind == "escalated":
        return f"escalated ({fields.get('error', '?')})"
    return state


def _journal_time(value: object) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:  # chaoslib writes UTC without an offset
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def journal_files(paths: Iterable[str | Path]) -> list[Path]:
    """The journal files among ``paths`` (a directory contributes its ``*.json``)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(p.glob("*.json")))
        elif p.exists():
            out.append(p)
        else:
            raise ButtressError(f"journal {p}: no such file or directory")
    return out


def chaos_entries(paths: Iterable[str | Path], start: float, end: float) -> list[Entry]:
    """Experiments, actions and probes of Chaos Toolkit journals in ``[start, end]``.  A file that
    is not a journal is skipped (the dashboard lists such files with the reason)."""
    out: list[Entry] = []
    for path in journal_files(paths):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("experiment"), dict):
            continue
        title = str(data["experiment"].get("title", path.stem))
        begun = _journal_time(data.get("start"))
        if begun is not None:
            out.append(
                Entry(begun, "chaos", "experiment.start", f"chaos experiment {title!r} began")
            )
        for run in data.get("run") or []:
            if not isinstance(run, dict) or not isinstance(run.get("activity"), dict):
                continue
            at = _journal_time(run.get("start"))
            if at is None:
                continue
            act = run["activity"]
            out.append(
                Entry(
                    at,
                    "chaos",
                    f"{act.get('type', 'activity')}",
                    f"chaos {act.get('type', 'activity')} {act.get('name', '?')!r}: "
                    f"{run.get('status', '?')}",
                    {"experiment": title},
                )
            )
        ended = _journal_time(data.get("end"))
        if ended is not None:
            verdict = "deviated" if data.get("deviated") else str(data.get("status", "?"))
            out.append(
                Entry(
                    ended,
                    "chaos",
                    "experiment.end",
                    f"chaos experiment {title!r} ended: {verdict}",
                    {"status": data.get("status"), "deviated": bool(data.get("deviated"))},
                )
            )
    return [e for e in out if start <= e.time <= end]


def slo_impact(
    slos: Sequence[SLOSpec], sli_store: SLIStore, start: float, end: float
) -> list[SLOImpact]:
    """Each SLO's cost over ``[start, end)`` (minutes, floored) from the per-minute counts."""
    from buttress.slo.evaluator import period_bounds

    lo, hi = int(start // 60), max(int(start // 60) + 1, -(-int(end) // 60))
    out: list[SLOImpact] = []
    for slo in slos:
        good, total = sli_store.series(slo.name, lo, hi)
        bad = total - good
        allowed = 1.0 - slo.objective / 100.0
        p_start, p_end, p_seconds = period_bounds(slo, hi)
        _, (pt,) = sli_store.totals([slo.name], p_start, p_end)
        failed = int(bad.sum())
        share = failed / (allowed * pt) if pt > 0 else 0.0
        period_budget = allowed * p_seconds / 60.0
        failing = [
            (int(b) / int(t), lo + i)
            for i, (b, t) in enumerate(zip(bad, total, strict=True))
            if t > 0
        ]
        bad_minutes = [m for (s, m) in failing if s > 0]
        peak_share, peak_minute = max(failing, default=(0.0, None))
        out.append(
            SLOImpact(
                slo=slo.name,
                objective=slo.objective,
                failed=failed,
                total=int(total.sum()),
                budget_share=share,
                budget_minutes=share * period_budget,
                period_budget_minutes=period_budget,
                peak_failing_share=peak_share,
                peak_burn_rate=peak_share / allowed,
                first_bad=bad_minutes[0] * 60.0 if bad_minutes else None,
                peak=peak_minute * 60.0 if peak_minute is not None and peak_share > 0 else None,
                last_bad=bad_minutes[-1] * 60.0 if bad_minutes else None,
            )
        )
    return out


def slo_entries(impacts: Iterable[SLOImpact]) -> list[Entry]:
    out: list[Entry] = []
    for i in impacts:
        if i.first_bad is None or i.last_bad is None or i.peak is None:
            continue
        out.append(Entry(i.first_bad, "slo", "errors.start", f"SLO {i.slo}: errors began"))
        out.append(
            Entry(
                i.peak,
                "slo",
                "errors.peak",
                f"SLO {i.slo}: worst minute, {i.peak_failing_share:.1%} failing "
                f"(burn rate {i.peak_burn_rate:.1f}x)",
                {"failing_share": i.peak_failing_share, "burn_rate": i.peak_burn_rate},
            )
        )
        out.append(
            Entry(
                i.last_bad + 60.0,
                "slo",
                "errors.end",
                f"SLO {i.slo}: errors stopped; {i.failed} failed, "
                f"{i.budget_minutes:.1f} budget minutes ({i.budget_share:.1%} of the period's)",
            )
        )
    return out


_ORDER = {
    "deploy": 0,
    "chaos": 1,
    "feed": 2,
    "supervisor": 3,
    "slo": 4,
    "remediation": 5,
    "incident": 6,
}


def build_timeline(
    incident: Incident,
    log: Sequence[LogEntry],
    *,
    deploys: Sequence[Deploy] = (),
    slos: Sequence[SLOSpec] = (),
    sli_store: SLIStore | None = None,
    feed: str | Path | None = None,
    journals: Sequence[str | Path] = (),
    remediation: Sequence[str | Path] = (),
    supervisor: Sequence[str | Path] = (),
    now: float | None = None,
    before: float = DEFAULT_BEFORE,
    after: float = DEFAULT_AFTER,
) -> Timeline:
    """The timeline of ``incident`` (its ``log`` from the store; ``deploys`` already fetched;
    ``remediation``: remediation journals; ``supervisor``: supervisor status files)."""
    end = incident.resolved if incident.resolved is not None else (now or incident.detected)
    lo, hi = incident.started - before, end + after
    entries = incident_entries(log)
    entries += [e for e in deploy_entries(deploys) if lo <= e.time <= hi]
    impacts: list[SLOImpact] = []
    if sli_store is not None and slos:
        # From the window's start: a burn alert fires minutes after the errors begin, and the
        # errors before it are the incident's too (and show how long detection took).
        impacts = slo_impact(slos, sli_store, lo, end)
        entries += slo_entries(impacts)
    if feed is not None:
        entries += feed_entries(feed, lo, hi)
    if journals:
        entries += chaos_entries(journals, lo, hi)
    if remediation:
        entries += remediation_entries(remediation, lo, hi)
    if supervisor:
        entries += supervisor_entries(supervisor, lo, hi)
    # Causes before effects at the same instant: a deploy or fault, then what it did, then people.
    entries.sort(key=lambda e: (e.time, _ORDER.get(e.source, 9)))
    return Timeline(incident, lo, hi, entries, impacts)
