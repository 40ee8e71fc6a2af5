"""A self-contained HTML report: the dependency graph and the downtime chart as inline SVG.

No script, no external stylesheet, font or CDN: the file opens anywhere, offline, and can be
attached to a design review.  The graph is laid out in layers (longest chain of dependencies from
an entry point), each layer ordered by the mean position of its callers (one barycentre pass);
hard edges are solid, soft dashed, async dotted.  Components with a single point of failure of
their own (a lone unit, a failover pair, a zone or shared-fate domain) are drawn in red.

This module computes the layout; ``templates/assessment.html`` (Jinja2, autoescaped) draws it.
Jinja2 comes with the ``assess`` extra.
"""

from __future__ import annotations

from typing import Any

from buttress.templating import environment

from .formats import pct
from .report import sections

__all__ = ["render_html"]

_W, _H, _GX, _GY = 170, 54, 40, 70
_DASH = {"hard": "", "soft": "7 5", "async": "2 4"}


def _layers(report: dict[str, Any]) -> dict[str, int]:
    comps = {c["name"]: c for c in report["components"]}
    layer = dict.fromkeys(comps, 0)
    for _ in range(len(comps)):
        changed = False
        for c in comps.values():
            for d in c["depends_on"]:
                want = layer[c["name"]] + 1
                if d["type"] == "hard" and layer[d["name"]] < want:
                    layer[d["name"]] = want
                    changed = True
        if not changed:
            break
    called = {d["name"] for c in comps.values() for d in c["depends_on"] if d["type"] == "hard"}
    for c in comps.values():
        for d in c["depends_on"]:
            if d["type"] != "hard" and d["name"] not in called:
                layer[d["name"]] = max(layer[d["name"]], layer[c["name"]] + 1)
    return layer


def _positions(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Top-left corner of each component's box: one row per layer, each row ordered by the mean
    position of its callers (one barycentre pass)."""
    comps = {c["name"]: c for c in report["components"]}
    layer = _layers(report)
    rows: dict[int, list[str]] = {}
    for name in comps:
        rows.setdefault(layer[name], []).append(name)
    pos: dict[str, tuple[float, float]] = {}
    for lv in sorted(rows):
        names = rows[lv]
        if lv > 0:

            def bary(n: str) -> float:
                xs = [
                    pos[c][0]
                    for c in comps
                    if c in pos and any(d["name"] == n for d in comps[c]["depends_on"])
                ]
                return sum(xs) / len(xs) if xs else 1e9

            names.sort(key=bary)
        for i, n in enumerate(names):
            pos[n] = (20 + i * (_W + _GX), 20 + lv * (_H + _GY))
    return pos


def _edge(c: dict[str, Any], d: dict[str, Any], pos: dict[str, tuple[float, float]]) -> Any:
    x1, y1 = pos[c["name"]]
    x2, y2 = pos[d["name"]]
    sx, sy = x1 + _W / 2, y1 + _H
    ex, ey = x2 + _W / 2, y2
    if y2 <= y1:
        sy, ey = y1 + _H / 2, y2 + _H / 2
        sx, ex = (x1 + _W, x2) if x2 > x1 else (x1, x2 + _W)
    return {
        "x1": f"{sx:.0f}",
        "y1": f"{sy:.0f}",
        "x2": f"{ex:.0f}",
        "y2": f"{ey:.0f}",
        "dash": _DASH[d["type"]],
        "title": f"{c['name']} -> {d['name']} ({d['type']})",
    }


def _graph(report: dict[str, Any], red: set[str]) -> dict[str, Any]:
    pos = _positions(report)
    boxes = []
    for c in report["components"]:
        x, y = pos[c["name"]]
        zones = sorted({z for z in c["placement"] if z})
        sub = f"x{c['replicas']} {c['mode']}" + (f" | {', '.join(zones)}" if zones else "")
        fill, stroke = ("#fde8e6", "#b3261e") if c["name"] in red else ("#e8f1fb", "#2f5d8a")
        boxes.append(
            {
                "name": c["name"],
                "x": x,
                "y": y,
                "w": _W,
                "h": _H,
                "cx": x + _W / 2,
                "fill": fill,
                "stroke": stroke,
                "sub": sub[:34],
                "kind": c["kind"],
                "replicas": c["replicas"],
                "availability": pct(c["availability"]),
            }
        )
    return {
        "width": max(x for x, _ in pos.values()) + _W + 20,
        "height": max(y for _, y in pos.values()) + _H + 20,
        "edges": [_edge(c, d, pos) for c in report["components"] for d in c["depends_on"]],
        "boxes": boxes,
    }


def _chart(journey: dict[str, Any]) -> dict[str, Any]:
    """The downtime bars of one journey (the 12 largest sources)."""
    src = journey["downtime_sources"][:12]
    label_w, bar_w, row = 150, 420, 24
    top = max((s["minutes_per_year"] for s in src), default=1.0)
    bars = []
    for i, s in enumerate(src):
        w = max(1.0, bar_w * s["minutes_per_year"] / top)
        bars.append(
            {
                "source": s["source"],
                "y": 10 + i * row,
                "w": f"{w:.1f}",
                "value_x": f"{label_w + w + 6:.1f}",
                "minutes": f"{s['minutes_per_year']:.1f}",
                "minutes_title": f"{s['minutes_per_year']:.2f}",
            }
        )
    return {
        "name": journey["name"],
        "bars": bars,
        "label_w": label_w,
        "bar_h": row - 8,
        "width": label_w + bar_w + 90,
        "height": row * len(src) + 30,
    }


def render_html(report: dict[str, Any], red: set[str] | None = None) -> str:
    """One self-contained HTML page for ``report`` (the dict of :func:`~.report.assess`)."""
    red = red if red is not None else set(report.get("single_points", []))
    title = "Availability assessment" + (f": {report['source']}" if report.get("source") else "")
    return (
        environment("buttress.assess", command="buttress assess --html", extra="assess")
        .get_template("assessment.html")
        .render(
            title=title,
            graph=_graph(report, red),
            journeys=[_chart(j) for j in report["journeys"]],
            sections=[
                {"heading": h, "headers": heads, "rows": rows, "note": note}
                for h, heads, rows, note in sections(report)
            ],
            bad={"BREACHED", "NO"},
            good={"met", "yes"},
        )
    )
