"""Postmortems, following the Google SRE book's template: summary, impact, root causes and trigger
(left to the author, with the timeline's candidates listed), resolution, detection, action items,
lessons learned, timeline.

The figures are drawn from the incident and its :class:`~buttress.incident.timeline.Timeline`:
impact in SLO budget minutes and failed requests, detection and response times, and every action
item linked to a risk of the assessment's risk register (:func:`buttress.assess.risk.risk_register`)
by its event name, with the risk's expected bad minutes per year and FMEA priority beside it.  An
item naming a risk the register does not hold is flagged, not dropped.

Rendered to Markdown and to HTML (autoescaped) with Jinja2 (extra ``incident``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from buttress.templating import environment

from .model import stamp
from .store import ActionItem
from .timeline import Timeline

if TYPE_CHECKING:
    import jinja2

    from buttress.assess.risk import Risk

__all__ = ["LinkedItem", "load_risks", "postmortem_context", "render_html", "render_markdown"]

AUTHOR = "_To be written by the author._"


@dataclass(frozen=True, slots=True)
class LinkedItem:
    """An action item and the risk it answers (``None`` when the register has no such risk)."""

    item: ActionItem
    risk: Risk | None


def load_risks(spec: str | Path) -> list[Risk]:
    """Every journey's risk register of the architecture in ``spec`` (``reliability.yaml``)."""
    from buttress.assess.analysis import analyse
    from buttress.assess.model import load_architecture
    from buttress.assess.risk import risk_register
    from buttress.assess.system import System

    arch, _ = load_architecture(str(spec))
    analysis = analyse(System.from_spec(arch))
    return [r for journey in analysis.journeys for r in risk_register(analysis, journey)]


def link(items: Sequence[ActionItem], risks: Sequence[Risk]) -> list[LinkedItem]:
    """Each item with the register's row for its risk (the journey where it costs most)."""
    worst: dict[str, Risk] = {}
    for r in risks:
        if r.event not in worst or r.bad_minutes > worst[r.event].bad_minutes:
            worst[r.event] = r
    return [LinkedItem(i, worst.get(i.risk)) for i in items]


def _span(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    s = max(0.0, b - a)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def postmortem_context(
    timeline: Timeline, items: Sequence[ActionItem], risks: Sequence[Risk]
) -> dict[str, Any]:
    """The data both templates render (also the JSON form of a postmortem)."""
    inc = timeline.incident
    budget = sum(i.budget_minutes for i in timeline.impacts)
    failed = sum(i.failed for i in timeline.impacts)
    total = sum(i.total for i in timeline.impacts)
    peak = max((i.peak_failing_share for i in timeline.impacts), default=0.0)
    end = inc.resolved
    first_errors = min((i.first_bad for i in timeline.impacts if i.first_bad), default=None)
    summary = (
        f"{inc.title} ({inc.service}, {inc.mode}): detected {stamp(inc.detected)}, "
        + (f"resolved after {_span(inc.started, end)}" if end else f"still {inc.state}")
        + (f"; {budget:.1f} SLO budget minutes spent, {failed} requests failed" if total else "")
        + "."
    )
    candidates = [
        e for e in timeline.entries if e.source in ("deploy", "chaos") and e.time <= inc.detected
    ]
    return {
        "incident": inc,
        "title": f"Postmortem: {inc.title}",
        "date": stamp(inc.detected)[:10],
        "status": "draft" if inc.state != "resolved" else "resolved, draft",
        "summary": summary,
        "impacts": timeline.impacts,
        "budget_minutes": budget,
        "failed": failed,
        "total": total,
        "peak_share": peak,
        "times": {
            "errors began": stamp(first_errors),
            "alert started": stamp(inc.started),
            "detected": stamp(inc.detected),
            "acknowledged": stamp(inc.acknowledged),
            "mitigated": stamp(inc.mitigated),
            "resolved": stamp(inc.resolved),
        },
        "durations": {
            "time to detect": _span(first_errors or inc.started, inc.detected),
            "time to acknowledge": _span(inc.detected, inc.acknowledged),
            "time to mitigate": _span(inc.started, inc.mitigated),
            "time to recover": _span(inc.started, inc.resolved),
        },
        "people": {
            "acknowledged": inc.acknowledged_by,
            "mitigated": inc.mitigated_by,
            "resolved": inc.resolved_by,
        },
        "candidates": candidates,
        "entries": timeline.entries,
        "items": link(items, risks),
        "author": AUTHOR,
        "stamp": stamp,
    }


def _environment(autoescape: bool) -> jinja2.Environment:
    return environment(
        "buttress.incident",
        command="buttress incident postmortem",
        extra="incident",
        autoescape=autoescape,
        strict=True,
    )


def render_markdown(context: dict[str, Any]) -> str:
    """The postmortem as Markdown."""
    return _environment(False).get_template("postmortem.md.j2").render(**context)


def render_html(context: dict[str, Any]) -> str:
    """The postmortem as one self-contained HTML page."""
    return _environment(True).get_template("postmortem.html.j2").render(**context)
