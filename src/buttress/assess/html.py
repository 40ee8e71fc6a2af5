"""A self-contained HTML report: the dependency graph and the downtime chart as inline SVG.

No script, no external stylesheet, font or CDN: the file opens anywhere, offline, and can be
attached to a design review.  The graph is laid out in layers (longest chain of dependencies from
an entry point), each layer ordered by the mean position of its callers (one barycentre pass);
hard edges are solid, soft dashed, async dotted.  Components with a single point of failure of
their own (a lone unit, a failover pair, a zone or shared-fate domain) are drawn in red.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .report import _sections, pct

__all__ = ["render_html"]

_W, _H, _GX, _GY = 170, 54, 40, 70

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2430}
h1{font-size:22px}
h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0 4px}
td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top} th{background:#f4f6fa} .note{color:#555;font-size:13px}
.bad{color:#b3261e;font-weight:600} .good{color:#1b6e3a;font-weight:600} svg{max-width:100%}
.legend span{display:inline-block;margin-right:16px}
"""


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


def _graph(report: dict[str, Any], red: set[str]) -> str:
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
    width = max(x for x, _ in pos.values()) + _W + 20
    height = max(y for _, y in pos.values()) + _H + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="dependency graph">',
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/>'
        "</marker></defs>",
    ]
    dash = {"hard": "", "soft": ' stroke-dasharray="7 5"', "async": ' stroke-dasharray="2 4"'}
    for c in comps.values():
        x1, y1 = pos[c["name"]]
        for d in c["depends_on"]:
            x2, y2 = pos[d["name"]]
            sx, sy = x1 + _W / 2, y1 + _H
            ex, ey = x2 + _W / 2, y2
            if y2 <= y1:
                sy, ey = y1 + _H / 2, y2 + _H / 2
                sx, ex = (x1 + _W, x2) if x2 > x1 else (x1, x2 + _W)
            out.append(
                f'<line x1="{sx:.0f}" y1="{sy:.0f}" x2="{ex:.0f}" y2="{ey:.0f}" stroke="#555" '
                f'stroke-width="1.4"{dash[d["type"]]} marker-end="url(#arr)">'
                f"<title>{escape(c['name'])} -> {escape(d['name'])} ({d['type']})</title></line>"
            )
    for name, c in comps.items():
        x, y = pos[name]
        fill, stroke = ("#fde8e6", "#b3261e") if name in red else ("#e8f1fb", "#2f5d8a")
        zones = sorted({z for z in c["placement"] if z})
        sub = f"x{c['replicas']} {c['mode']}" + (f" | {', '.join(zones)}" if zones else "")
        out.append(
            f'<g><rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="7" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.6"/>'
            f'<text x="{x + _W / 2}" y="{y + 20}" text-anchor="middle" font-size="13" '
            f'font-weight="600">{escape(name)}</text>'
            f'<text x="{x + _W / 2}" y="{y + 36}" text-anchor="middle" font-size="10">'
            f"{escape(sub[:34])}</text>"
            f'<text x="{x + _W / 2}" y="{y + 49}" text-anchor="middle" font-size="10">'
            f"{escape(c['kind'])} {pct(c['availability'])}</text>"
            f"<title>{escape(name)}: {c['replicas']} replica(s), own availability "
            f"{pct(c['availability'])}</title></g>"
        )
    out.append("</svg>")
    return "".join(out)


def _chart(journey: dict[str, Any]) -> str:
    src = journey["downtime_sources"][:12]
    if not src:
        return '<p class="note">No downtime sources: the model never goes down.</p>'
    top = max(s["minutes_per_year"] for s in src)
    label_w, bar_w, row = 150, 420, 24
    height = row * len(src) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 90}" '
        f'height="{height}" role="img" aria-label="downtime by source">'
    ]
    for i, s in enumerate(src):
        y = 10 + i * row
        w = max(1.0, bar_w * s["minutes_per_year"] / top)
        out.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(s['source'])}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#c2523d">'
            f"<title>{escape(s['source'])}: {s['minutes_per_year']:.2f} min/yr</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="11">'
            f"{s['minutes_per_year']:.1f} min/yr</text>"
        )
    out.append(
        f'<text x="{label_w}" y="{height - 4}" font-size="11" fill="#555">expected minutes down '
        "per year, by source (Fussell-Vesely share of the exact unavailability)</text></svg>"
    )
    return "".join(out)


def _cell(text: str) -> str:
    cls = (
        ' class="bad"'
        if text in {"BREACHED", "NO"}
        else (' class="good"' if text in {"met", "yes"} else "")
    )
    return f"<td{cls}>{escape(text)}</td>"


def render_html(report: dict[str, Any], red: set[str] | None = None) -> str:
    """One self-contained HTML page for ``report`` (the dict of :func:`~.report.assess`)."""
    red = red if red is not None else set(report.get("single_points", []))
    title = "Availability assessment" + (f": {report['source']}" if report.get("source") else "")
    body = [f"<h1>{escape(title)}</h1>"]
    body.append("<h2>Dependency graph</h2>")
    body.append(
        '<p class="legend"><span>solid: hard</span><span>dashed: soft</span>'
        '<span>dotted: async</span><span style="color:#b3261e">red: has a single point of '
        "failure of its own</span></p>"
    )
    body.append(_graph(report, red))
    for j in report["journeys"]:
        body.append(f"<h2>{escape(j['name'])}: where the downtime comes from</h2>")
        body.append(_chart(j))
    for heading, headers, rows, note in _sections(report):
        body.append(f"<h2>{escape(heading)}</h2><table><tr>")
        body.append("".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>")
        for r in rows:
            body.append("<tr>" + "".join(_cell(c) for c in r) + "</tr>")
        body.append("</table>")
        if note:
            body.append(f'<p class="note">{escape(note)}</p>')
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
