"""A drill's verdicts and its report (terminal, JSON, HTML).

**Objectives** are the journeys' ``rto:`` and ``rpo:`` targets in ``reliability.yaml``, the same
figures ``buttress assess`` judges its estimates against.  A drill disruption is judged as the
assessment's disruption type that describes it:

========== ========== ====================================================================
drill      judged as  why
========== ========== ====================================================================
delete     instance   the one copy of the data on that host is gone
corrupt    deploy     bad bytes everywhere the data lives: only a backup brings it back
kill       instance   the server and its data directory are gone
========== ========== ====================================================================

Beside each measurement the report shows the assessment's estimate for the same journey and
disruption type (:func:`buttress.assess.recovery_verdicts`), so a model that promises a 1-minute
RTO which the drill measures at 40 minutes is visible on one line.  Explicit ``--rto`` / ``--rpo``
override the file's targets.

A drill passes when every objective it has is met, no write acknowledged after the disaster was
lost, and a point-in-time restore matches its oracle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.errors import ConfigError, MissingExtra
from buttress.templating import environment

from .drill import DrillResult

__all__ = [
    "DISRUPTION_CLASS",
    "Objectives",
    "build_report",
    "load_objectives",
    "render_html",
    "render_text",
]

DISRUPTION_CLASS: dict[str, str] = {"delete": "instance", "corrupt": "deploy", "kill": "instance"}
"""Drill disruption -> the assessment's disruption type whose objectives judge it."""


@dataclass(frozen=True, slots=True)
class Objectives:
    """Targets and the assessment's estimates, in seconds (``None``: not declared)."""

    rto: float | None = None
    rpo: float | None = None
    estimated_rto: float | None = None
    estimated_rpo: float | None = None
    source: str = "none"


def load_objectives(spec: str | Path, journey: str | None, disruption: str) -> Objectives:
    """The RTO/RPO targets of ``journey`` (the only journey when ``None``) for the assessment's
    disruption type matching ``disruption``, with the assessment's estimates."""
    try:
        from buttress.assess.model import load_architecture
        from buttress.assess.recovery import recovery_verdicts
        from buttress.assess.system import System
    except ModuleNotFoundError as e:
        if e.name is None or e.name.startswith("buttress"):
            raise
        raise MissingExtra("`buttress dr drill --spec`", "assess", e.name) from None
    kind = DISRUPTION_CLASS.get(disruption)
    if kind is None:
        choices = ", ".join(DISRUPTION_CLASS)
        raise ConfigError("--disruption", disruption, f"unknown disruption type; choose {choices}")
    arch, _ = load_architecture(spec)
    if journey is None:
        if len(arch.journeys) != 1:
            names = ", ".join(sorted(arch.journeys)) or "none"
            raise ConfigError("--journey", None, f"{spec} has several journeys; choose: {names}")
        journey = next(iter(arch.journeys))
    if journey not in arch.journeys:
        names = ", ".join(sorted(arch.journeys)) or "none"
        raise ConfigError("--journey", journey, f"not a journey of {spec} ({names})")
    verdict = next(
        v for v in recovery_verdicts(System.from_spec(arch), journey) if v.disruption == kind
    )
    hours = 3600.0
    return Objectives(
        rto=None if verdict.rto_target is None else verdict.rto_target * hours,
        rpo=None if verdict.rpo_target is None else verdict.rpo_target * hours,
        estimated_rto=verdict.rto * hours,
        estimated_rpo=verdict.rpo * hours,
        source=f"{spec}: journey {journey}, {kind}",
    )


def _met(measured: float | None, target: float | None) -> bool | None:
    if target is None:
        return None
    return measured is not None and measured <= target + 1e-9


def build_report(result: DrillResult, objectives: Objectives, **context: Any) -> dict[str, Any]:
    """The drill as one JSON-ready dictionary, verdicts included (``passed``)."""
    rto_met = _met(result.rto, objectives.rto)
    rpo_met = _met(result.rpo, objectives.rpo)
    failures = []
    if rto_met is False:
        measured = "never" if result.rto is None else f"{result.rto:.3f} s"
        failures.append(f"RTO {measured} exceeds the objective {objectives.rto:g} s")
    if rpo_met is False:
        failures.append(f"RPO {result.rpo:.3f} s exceeds the objective {objectives.rpo:g} s")
    if result.rto is None:
        failures.append("no write after the restore survived")
    if result.lost_after_disaster:
        failures.append(
            f"{len(result.lost_after_disaster)} writes acknowledged after the disaster were lost"
        )
    if result.pitr is not None and not result.pitr["ok"]:
        failures.append("the point-in-time restore does not match the sentinel oracle")
    restored = result.restored
    return {
        **context,
        "disruption": result.disruption,
        "judged_as": DISRUPTION_CLASS.get(result.disruption),
        "objectives": dataclasses.asdict(objectives),
        "measured": {
            "rto": result.rto,
            "rpo": result.rpo,
            "detected_after": result.detected_after,
            "restore_seconds": result.restore_seconds,
        },
        "rto_met": rto_met,
        "rpo_met": rpo_met,
        "restored": {
            "backup": restored.backup,
            "snapshot_at": restored.snapshot_at,
            "sentinels": len(restored.sentinels),
            "through": max(restored.sentinels, default=0),
        },
        "writes": {
            "acknowledged": result.acknowledged,
            "lost_before_disaster": result.lost_before_disaster,
            "lost_after_disaster": result.lost_after_disaster,
            "checker": result.checker,
        },
        "pitr": result.pitr,
        "backups": result.backups,
        "disaster_at": result.disaster_at,
        "failures": failures,
        "passed": not failures,
    }


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} s"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "no objective"}[met]


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, objective, assessment's estimate, verdict) for the terminal and HTML."""
    o, m = report["objectives"], report["measured"]
    return [
        ("RTO", _s(m["rto"]), _s(o["rto"]), _s(o["estimated_rto"]), _verdict(report["rto_met"])),
        ("RPO", _s(m["rpo"]), _s(o["rpo"]), _s(o["estimated_rpo"]), _verdict(report["rpo_met"])),
    ]


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal."""
    w = report["writes"]
    lines = [
        f"drill: {report['disruption']} (judged as {report['judged_as']}; "
        f"objectives from {report['objectives']['source']})",
        f"{'figure':<8}{'measured':>12}{'objective':>12}{'estimate':>14}  verdict",
    ]
    for fig, meas, obj, est, verdict in rows(report):
        lines.append(f"{fig:<8}{meas:>12}{obj:>12}{est:>14}  {verdict}")
    m = report["measured"]
    lines += [
        f"detected after {_s(m['detected_after'])}, restore took {_s(m['restore_seconds'])}, "
        f"restored {report['restored']['backup']} through sentinel {report['restored']['through']}",
        f"writes: {w['acknowledged']} acknowledged, {len(w['lost_before_disaster'])} lost from "
        f"before the disaster (inside the backup interval), {len(w['lost_after_disaster'])} "
        "acknowledged after it and lost",
    ]
    p = report["pitr"]
    if p is not None:
        lines.append(
            f"point in time: restored through {p['restored_through']}, "
            f"{len(p['after_target'])} after the target, "
            f"{len(p['missing_before_snapshot'])} missing before the snapshot: "
            + ("ok" if p["ok"] else "MISMATCH")
        )
    lines.append("PASSED" if report["passed"] else "FAILED: " + "; ".join(report["failures"]))
    return "\n".join(lines) + "\n"


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page of the report (no script, no external resource)."""
    return (
        environment("buttress.dr", command="buttress dr drill --html", extra="assess")
        .get_template("drill.html")
        .render(report=report, rows=rows(report), text=render_text(report))
    )
