"""Assemble an assessment and render it: JSON-ready data, terminal tables, Markdown.

:func:`assess` runs every analysis on a :class:`~buttress.assess.system.System` and returns one
plain ``dict`` (the ``--json`` output); :func:`render_text` and :func:`render_markdown` render that
dict, so every output format shows the same numbers.
"""

from __future__ import annotations

import math
from collections import ChainMap
from typing import Any

from buttress.tables import markdown_table, render_table

from .analysis import Analysis, analyse
from .analytic import MINUTES_PER_YEAR
from .budget import dependency_budget
from .faulttree import minimal_cut_sets
from .formats import duration, interval, pct, share
from .mission import mission_report, mission_section
from .montecarlo import simulate
from .recovery import recovery_verdicts
from .risk import risk_register
from .schedules import scheduled, scheduled_journeys
from .system import System
from .uncertainty import has_uncertainty, propagate
from .whatif import recommend

__all__ = ["assess", "render_markdown", "render_text", "sections"]


def _own_availability(analysis: Analysis, name: str, cache: dict[Any, Any]) -> float:
    """Availability of a component by itself: its units and redundancy, with every failure domain
    and dependency taken as up (domains are budgeted as dependencies of their own).  ``cache``
    keeps the figures (one per component, whatever the number of journeys that ask) and the
    probabilities with the domains up (built once)."""
    if name in cache:
        return float(cache[name])
    compiled = analysis.compiled
    p = cache.get(None)
    if p is None:
        domains_up = {ev: 0.0 for ev, info in compiled.info.items() if info.kind == "domain"}
        p = cache[None] = ChainMap(domains_up, analysis.probabilities)
    root = analysis.own.get(name)
    if root is None:
        root = analysis.bdd.build(compiled.intrinsic[name])
    cache[name] = 1.0 - analysis.bdd.probability(root, p)
    return float(cache[name])


def _has_own_spof(analysis: Analysis, name: str) -> bool:
    """Whether a component fails on one event of its own: a unit, its failover pair, a zone it is
    confined to or a shared-fate domain (not a region every component shares)."""
    compiled = analysis.compiled
    for cut in minimal_cut_sets(compiled.intrinsic[name], max_order=1):
        ev = next(iter(cut))
        if analysis.probabilities[ev] <= 0:
            continue  # it cannot fail (availability 1)
        info = compiled.info[ev]
        if info.kind != "domain" or info.domain is None:
            return True
        if analysis.system.domains[info.domain].kind != "region":
            return True
    return False


def _hours(h: float | None) -> float | None:
    return None if h is None else h * 3600.0


def assess(
    system: System,
    *,
    simulate_model: bool = False,
    seed: int = 0,
    max_order: int = 2,
    rel_precision: float = 0.1,
    max_seconds: float = 30.0,
    source: str = "",
    mission: float | None = None,
    samples: int = 200,
    importance: bool = False,
) -> dict[str, Any]:
    """The whole assessment as JSON-ready data (times in seconds, downtime in minutes).

    ``mission`` (hours) sets every journey's mission time (otherwise each journey's own);
    ``samples`` draws put an interval on each journey's availability when units have ranges."""
    analysis = analyse(system, max_order=max_order)
    missions = {
        n: t
        for n, j in system.journeys.items()
        if (t := mission if mission is not None else j.mission) is not None
    }
    mission_blocks = mission_report(analysis, missions, simulate=simulate_model, seed=seed)
    fixed = set(scheduled_journeys(analysis))
    spread = (
        propagate(system, samples=samples, seed=seed)
        if samples > 0 and has_uncertainty(system)
        else {}
    )
    sim = (
        simulate(
            analysis,
            seed=seed,
            rel_precision=rel_precision,
            max_seconds=max_seconds,
            importance=importance,
        )
        if simulate_model
        else {}
    )
    recs = recommend(analysis)
    own: dict[Any, Any] = {}
    journeys: list[dict[str, Any]] = []
    for name, res in analysis.journeys.items():
        j = system.journeys[name]
        path = system.hard_closure(j.entry)
        deps: list[tuple[str, float]] = []
        for comp in path[1:]:
            deps.append((comp, _own_availability(analysis, comp, own)))
        for comp in path:
            for s in system.components[comp].shared:
                for d in system.chain(s):
                    deps.append((d, system.domains[d].unit.availability))
        for cut in res.spofs:
            ev = analysis.compiled.events[cut.events[0]]
            info = analysis.compiled.info[ev]
            if info.kind == "domain" and info.domain is not None:
                deps.append((info.domain, system.domains[info.domain].unit.availability))
        budget = dependency_budget(j.target, deps)
        entry: dict[str, Any] = {
            "name": name,
            "entry": j.entry,
            "criticality": j.criticality,
            "users": j.users,
            "target": j.target,
            "availability": res.availability,
            "unavailability": res.unavailability,
            "nines": _finite(res.nines),
            "downtime_minutes_per_year": res.downtime_year,
            "downtime_minutes_per_month": res.downtime_month,
            "meets_target": res.meets_target,
            "full_service_availability": res.full_service,
            "availability_after_1h": analysis.availability_at(name, 1.0),
            "path": path,
            "spofs": [_cut(c) for c in res.spofs],
            "cut_sets": [_cut(c) for c in res.cut_sets],
            "downtime_sources": [
                {"source": s, "minutes_per_year": m} for s, m in res.sources if m > 1e-3
            ],
            "budget": {
                "target": budget.target,
                "budget_minutes_per_year": budget.budget_minutes,
                "dependency_minutes_per_year": budget.dependency_minutes,
                "remaining_minutes_per_year": budget.remaining_minutes,
                "bound": budget.bound,
                "dependencies": [
                    {
                        "name": line.name,
                        "availability": line.availability,
                        "minutes_per_year": line.minutes,
                        "share": line.share,
                        "extra_nine": line.extra_nine,
                    }
                    for line in budget.lines
                ],
            },
            "risks": [
                {
                    "mode": r.mode,
                    "event": r.event,
                    "source": r.source,
                    "frequency_per_year": r.frequency,
                    "detect_seconds": r.detect * 3600,
                    "recover_seconds": r.recover * 3600,
                    "outage_minutes": r.outage_minutes,
                    "users_hit_detecting": r.hit_detect,
                    "users_hit_recovering": r.hit_recover,
                    "users_hit": r.hit,
                    "bad_minutes_per_year": r.bad_minutes,
                    "budget_share": r.budget_share,
                    "severity": r.severity,
                    "occurrence": r.occurrence,
                    "detection": r.detection,
                    "rpn": r.rpn,
                }
                for r in risk_register(analysis, name, limit=25)
            ],
            "recovery": [
                {
                    "disruption": v.disruption,
                    "rto_seconds": _hours(v.rto),
                    "rto_target_seconds": _hours(v.rto_target),
                    "rto_met": v.rto_met,
                    "rto_driver": v.rto_driver,
                    "rpo_seconds": _hours(v.rpo),
                    "rpo_target_seconds": _hours(v.rpo_target),
                    "rpo_met": v.rpo_met,
                    "rpo_driver": v.rpo_driver,
                    "mtd_seconds": _hours(v.mtd),
                    "wrt_seconds": _hours(v.wrt),
                    "mtd_met": v.mtd_met,
                }
                for v in recovery_verdicts(system, name)
            ],
            "recommendations": [
                {
                    "title": r.title,
                    "kind": r.kind,
                    "availability": r.availability[name],
                    "gain": r.gain[name],
                    "minutes_saved_per_year": r.gain[name] * MINUTES_PER_YEAR,
                    "reaches_target": r.reaches(name, j.target),
                }
                for r in sorted(recs, key=lambda r: -r.gain[name])
                if r.gain[name] > 0
            ],
        }
        if name in sim:
            mc = sim[name]
            entry["simulation"] = {
                "unavailability": mc.unavailability,
                "availability": mc.availability,
                "ci95": [mc.low, mc.high],
                "relative_half_width": _finite(mc.relative_half_width),
                "replicate_years": mc.years,
                "outages": mc.outages,
                "seconds": mc.seconds,
                "agrees": mc.contains(res.unavailability),
            }
        if name in mission_blocks:
            entry["mission"] = mission_blocks[name]
        if name in fixed:
            sch = scheduled(analysis, name, missions.get(name))
            entry["schedule"] = {
                "availability": sch.availability,
                "periodic": sch.periodic,
                "mean_availability": sch.mean_availability,
            }
        if name in spread:
            u = spread[name]
            entry["uncertainty"] = {
                "samples": u.samples,
                "availability_p05": u.low,
                "availability_median": u.median,
                "availability_p95": u.high,
            }
        journeys.append(entry)
    comps = []
    single_points = []
    for name, c in system.components.items():
        if _has_own_spof(analysis, name):
            single_points.append(name)
        comps.append(
            {
                "name": name,
                "kind": c.kind,
                "replicas": c.replicas,
                "mode": c.mode if c.replicas > 1 else "single",
                "required": c.required,
                "placement": [c.zone_of(i) for i in range(c.replicas)],
                "shared": list(c.shared),
                "unit_availability": c.unit.availability,
                "availability": _own_availability(analysis, name, own),
                "depends_on": [{"name": d, "type": t} for d, t in c.deps],
                "members": list(c.members),
            }
        )
    return {
        "source": source,
        "journeys": journeys,
        "components": comps,
        "domains": [
            {
                "name": d.name,
                "kind": d.kind,
                "parent": d.parent,
                "availability": d.unit.availability,
            }
            for d in system.domains.values()
        ],
        "single_points": single_points,
        "recommendations": [
            {
                "title": r.title,
                "kind": r.kind,
                "target": r.target,
                "minutes_saved_per_year": r.minutes_saved,
                "availability": r.availability,
            }
            for r in recs
        ],
        "model": {
            "events": len(analysis.compiled.info),
            "bdd_nodes": len(analysis.bdd),
            "max_cut_set_order": max_order,
        },
    }


def _finite(x: float) -> float | None:
    return None if math.isinf(x) or math.isnan(x) else x


def _cut(c: Any) -> dict[str, Any]:
    return {
        "events": list(c.events),
        "order": c.order,
        "probability": c.probability,
        "explanation": c.explanation,
    }


# -- rendering ------------------------------------------------------------------------------------


BIA_NOTE = (
    "RTO+WRT: the estimated recovery plus the work recovery time of the business impact analysis;\n"
    "met when within the maximum tolerable downtime (MTD), as NIST SP 800-34 requires."
)
RISK_NOTE = (
    "bad min/yr = per yr x (detect x hit (detect) + recover x hit (recover)), times in minutes.\n"
    "hit: share of the journey's users failing in that phase. Until a failure is detected,\n"
    "requests routed to the failed replicas fail (1/n for one replica of n); after that they are\n"
    "routed around, and only the chance that the rest of the redundancy is also gone remains."
)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "BREACHED")


def sections(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, headers, rows, note) for every table, shared by text and Markdown."""
    out: list[tuple[str, list[str], list[list[str]], str]] = []
    rows = []
    for j in report["journeys"]:
        sim = j.get("simulation")
        mc = "-"
        if sim:  # ci95 bounds the unavailability: its high end is the availability's low end
            mc = interval(pct, sim["availability"], 1 - sim["ci95"][1], 1 - sim["ci95"][0])
        rows.append(
            [
                j["name"],
                pct(j["target"]),
                pct(j["availability"]),
                f"{j['nines']:.2f}" if j["nines"] is not None else "inf",
                f"{j['downtime_minutes_per_year']:.1f}",
                f"{j['downtime_minutes_per_month']:.1f}",
                "yes" if j["meets_target"] else "NO",
                pct(j["full_service_availability"]),
                mc,
            ]
        )
    out.append(
        (
            "Availability (exact, steady state)",
            [
                "journey",
                "target",
                "availability",
                "nines",
                "min/yr",
                "min/mo",
                "meets",
                "full service",
                "Monte Carlo (95% CI)",
            ],
            rows,
            "full service: no soft dependency degraded either.",
        )
    )
    missions = [j for j in report["journeys"] if j.get("mission")]
    if missions:
        out.append(mission_section(missions))
    if report.get("assumptions"):
        rows = [[a] for a in report["assumptions"]]
        note = "Figures the import could not read from the deployment: refine them in the model."
        out.append(("Assumptions (imported model)", ["assumption"], rows, note))
    fixed = [j for j in report["journeys"] if j.get("schedule")]
    if fixed:
        rows = [
            [
                j["name"],
                pct(j["schedule"]["availability"]),
                "-"
                if j["schedule"]["mean_availability"] is None
                else pct(j["schedule"]["mean_availability"]),
            ]
            for j in fixed
        ]
        note = "Fixed failure and repair times; nothing ages while the journey is down."
        headers = ["journey", "availability (long run)", "mean over the mission"]
        out.append(("Schedules (deterministic)", headers, rows, note))
    spread = [j for j in report["journeys"] if j.get("uncertainty")]
    if spread:
        rows = [
            [
                j["name"],
                pct(j["uncertainty"]["availability_p05"]),
                pct(j["uncertainty"]["availability_median"]),
                pct(j["uncertainty"]["availability_p95"]),
                "yes" if j["uncertainty"]["availability_p05"] >= j["target"] else "not surely",
            ]
            for j in spread
        ]
        headers = ["journey", "5th percentile", "median", "95th percentile", "meets (p05)"]
        note = f"From {spread[0]['uncertainty']['samples']} draws of the ranges (log-uniform)."
        out.append(("Uncertainty (availability, 90% interval)", headers, rows, note))
    for j in report["journeys"]:
        n = j["name"]
        spofs = [[c["explanation"]] for c in j["spofs"]] or [["none"]]
        out.append((f"{n}: single points of failure", ["explanation"], spofs, ""))
        pairs = [
            [f"{c['probability']:.2e}", c["explanation"]] for c in j["cut_sets"] if c["order"] > 1
        ][:8]
        if pairs:
            out.append(
                (f"{n}: most likely double failures", ["probability", "explanation"], pairs, "")
            )
        src = [
            [
                s["source"],
                f"{s['minutes_per_year']:.1f}",
                f"{s['minutes_per_year'] / max(j['downtime_minutes_per_year'], 1e-12):.0%}",
            ]
            for s in j["downtime_sources"][:10]
        ]
        out.append((f"{n}: where the downtime comes from", ["source", "min/yr", "share"], src, ""))
        b = j["budget"]
        brows = [
            [
                d["name"],
                pct(d["availability"]),
                f"{d['minutes_per_year']:.2f}",
                f"{d['share']:.0%}",
                "yes" if d["extra_nine"] else "no",
            ]
            for d in b["dependencies"]
        ]
        note = (
            f"budget at {pct(b['target'])}: {b['budget_minutes_per_year']:.2f} min/yr; critical "
            f"dependencies use {b['dependency_minutes_per_year']:.2f}, leaving "
            f"{b['remaining_minutes_per_year']:.2f}; best reachable {pct(b['bound'])}."
        )
        out.append(
            (
                f"{n}: dependency budget (Treynor)",
                ["dependency", "availability", "min/yr", "of budget", "extra nine"],
                brows,
                note,
            )
        )
        rrows = [
            [
                r["mode"],
                f"{r['frequency_per_year']:.2f}",
                duration(r["detect_seconds"]),
                share(r["users_hit_detecting"]),
                duration(r["recover_seconds"]),
                share(r["users_hit_recovering"]),
                f"{r['bad_minutes_per_year']:.1f}",
                f"{r['budget_share']:.0%}",
                f"{r['severity']}/{r['occurrence']}/{r['detection']}",
                str(r["rpn"]),
            ]
            for r in j["risks"][:12]
        ]
        out.append(
            (
                f"{n}: risk register",
                [
                    "failure mode",
                    "per yr",
                    "detect",
                    "hit (detect)",
                    "recover",
                    "hit (recover)",
                    "bad min/yr",
                    "of budget",
                    "S/O/D",
                    "RPN",
                ],
                rrows,
                RISK_NOTE,
            )
        )
        vrows = [
            [
                v["disruption"],
                duration(v["rto_seconds"]),
                duration(v["rto_target_seconds"]),
                _verdict(v["rto_met"]),
                duration(v["rpo_seconds"]),
                duration(v["rpo_target_seconds"]),
                _verdict(v["rpo_met"]),
                v["rto_driver"] or v["rpo_driver"],
            ]
            for v in j["recovery"]
        ]
        head = ["disruption", "RTO", "target", "verdict", "RPO", "target", "verdict", "driven by"]
        note = ""
        if any(v["mtd_seconds"] is not None for v in j["recovery"]):
            # The business impact analysis: the systems' recovery and the work after it must fit
            # in the maximum tolerable downtime.
            head[-1:-1] = ["RTO+WRT", "MTD", "verdict"]
            for row, v in zip(vrows, j["recovery"], strict=True):
                row[-1:-1] = [
                    duration(v["rto_seconds"] + v["wrt_seconds"]),
                    duration(v["mtd_seconds"]),
                    _verdict(v["mtd_met"]),
                ]
            note = BIA_NOTE
        out.append((f"{n}: RTO / RPO", head, vrows, note))
        recs = [
            [
                r["title"],
                pct(r["availability"]),
                f"+{r['minutes_saved_per_year']:.1f}",
                "yes" if r["reaches_target"] else "no",
            ]
            for r in j["recommendations"][:6]
        ]
        if recs:
            out.append(
                (
                    f"{n}: what would help most",
                    ["change", "availability", "min/yr saved", "reaches target"],
                    recs,
                    "",
                )
            )
    return out


def render_text(report: dict[str, Any]) -> str:
    """Terminal tables."""
    parts = []
    if report.get("source"):
        parts.append(f"Assessment of {report['source']}")
    for title, headers, rows, note in sections(report):
        right = {
            i
            for i, h in enumerate(headers)
            if h
            in {
                "nines",
                "min/yr",
                "min/mo",
                "per yr",
                "bad min/yr",
                "RPN",
                "probability",
                "min/yr saved",
                "share",
                "hit (detect)",
                "hit (recover)",
                "of budget",
            }
        }
        block = f"\n{title}\n" + render_table(headers, rows, right=right)
        if note:
            block += f"\n{note}"
        parts.append(block)
    return "\n".join(parts).lstrip("\n") + "\n"


def render_markdown(report: dict[str, Any]) -> str:
    """The same tables as Markdown."""
    parts = [f"# Availability assessment{': ' + report['source'] if report.get('source') else ''}"]
    for title, headers, rows, note in sections(report):
        parts.append(f"## {title}\n\n{markdown_table(headers, rows)}")
        if note:
            parts.append(note)
    return "\n\n".join(parts) + "\n"
