"""Self-contained HTML reports with charts: one file, no network, charts drawn by uPlot.

The same chart specs the dashboard draws live can be written into a single HTML file that opens
anywhere, offline: the uPlot library (vendored from npm, MIT; see ``scripts/vendor_assets.sh``),
its stylesheet, the small chart bootstrap ``charts.js`` and the data are all inlined.

Build a page from parts::

    from buttress.dashboard.report import Chart, Series, Mark, page, chart_html, table, section

    latency = Chart(
        "latency", "p99 latency", x=times, y_unit="s",
        series=[Series("policies on", p99_on), Series("policies off", p99_off, dash=True)],
        marks=[Mark(t0, t1, "payments +800 ms")],
    )
    html = page("Lab run", section("Latency", chart_html(latency)) + table(heads, rows))
    Path("report.html").write_text(html, encoding="utf-8")

Values may be ``None`` (a gap).  Times are Unix seconds (``time=True``, the default).  Units:
``"fraction"`` (0.995 shown as 99.5%), ``"percent"``, ``"s"``, ``"ms"`` or ``""``.  Everything
put into the page is escaped; chart data is embedded as JSON in ``<script type=
"application/json">`` with ``<`` escaped, so no value can close the element.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from buttress.errors import ConfigError

__all__ = [
    "UNITS",
    "Chart",
    "Mark",
    "Series",
    "Threshold",
    "asset",
    "badge",
    "chart_html",
    "page",
    "section",
    "table",
]

UNITS = ("fraction", "percent", "s", "ms", "")
"""Units a chart axis or series may use (see the module docstring)."""

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}|rgba?\([0-9., ]+\)")
_DASH = "\u2013"  # an en dash: no value
LEVEL_CLASSES = {"ok": "ok", "warn": "warn", "bad": "bad", "": "plain"}


@cache
def asset(name: str) -> str:
    """The text of a packaged static file: ``"charts.js"``, ``"report.css"``,
    ``"vendor/uPlot.iife.min.js"``, ``"vendor/uPlot.min.css"``, ``"vendor/uPlot.LICENSE"``."""
    node = resources.files("buttress.dashboard").joinpath("static")
    for part in name.split("/"):
        node = node.joinpath(part)
    try:
        return node.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("asset", name, "no such packaged file") from None


def _num(parameter: str, v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(parameter, v, "must be a number or None")
    f = float(v)
    return f if math.isfinite(f) else None


def _unit(parameter: str, unit: str) -> str:
    if unit not in UNITS:
        raise ConfigError(parameter, unit, f"must be one of {', '.join(map(repr, UNITS))}")
    return unit


def _color(parameter: str, color: str | None) -> str | None:
    if color is not None and not _COLOR.fullmatch(color):
        raise ConfigError(parameter, color, "must be '#rrggbb' or rgb()/rgba()")
    return color


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart.

    :param label: legend text.
    :param values: one value per x (``None``: a gap; NaN and infinities become gaps).
    :param color: ``#rrggbb`` (default: the palette, in order).
    :param unit: overrides the chart's y unit in the legend.
    :param step: draw as a step function (states, limits), not a line.
    :param fill: shade the area under the line.
    :param dash: dashed line (a baseline, a "policies off" run).
    """

    label: str
    values: Sequence[float | int | None]
    color: str | None = None
    unit: str | None = None
    step: bool = False
    fill: bool = False
    dash: bool = False
    width: float = 2.0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "values": [_num(f"series[{self.label!r}].values", v) for v in self.values],
            "color": _color("color", self.color),
            "unit": _unit("unit", self.unit) if self.unit is not None else None,
            "step": self.step,
            "fill": self.fill,
            "dash": self.dash,
            "width": self.width,
        }


@dataclass(frozen=True, slots=True)
class Mark:
    """A shaded time range (a fault, an experiment) from ``start`` to ``end`` (x units)."""

    start: float
    end: float
    label: str = ""
    color: str | None = None

    def to_json(self) -> dict[str, Any]:
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end < self.start:
            raise ConfigError("mark", (self.start, self.end), "needs finite start <= end")
        return {
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "color": _color("mark.color", self.color),
        }


@dataclass(frozen=True, slots=True)
class Threshold:
    """A dashed horizontal line at ``value`` (an objective, a limit)."""

    value: float
    label: str = ""
    color: str | None = None

    def to_json(self) -> dict[str, Any]:
        v = _num("threshold.value", self.value)
        if v is None:
            raise ConfigError("threshold.value", self.value, "must be finite")
        return {"value": v, "label": self.label, "color": _color("threshold.color", self.color)}


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart: shared x values and one or more series.

    :param id: a unique HTML id (letters, digits, ``-``, ``_``; starts with a letter).
    :param title: shown above the chart.
    :param x: x values, ascending (Unix seconds when ``time``).
    :param series: at least one, each with ``len(x)`` values.
    :param y_unit: the y axis unit (see :data:`UNITS`).  Default ``""``.
    :param y_min, y_max: fix the y range (``None``: automatic).
    :param y_soft: let the data widen a fixed range instead of being clipped.
    :param height: pixels (default 220).
    :param time: x values are times (default True).
    """

    id: str
    title: str
    x: Sequence[float | int]
    series: Sequence[Series]
    y_label: str = ""
    y_unit: str = ""
    y_min: float | None = None
    y_max: float | None = None
    y_soft: bool = False
    height: int = 220
    time: bool = True
    marks: Sequence[Mark] = field(default_factory=tuple)
    thresholds: Sequence[Threshold] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The spec ``charts.js`` draws; raises :class:`~buttress.errors.ConfigError` naming the
        field when the chart is malformed."""
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise ConfigError("id", self.id, "must start with a letter; letters, digits, - and _")
        if not self.series:
            raise ConfigError("series", [], f"chart {self.id!r} needs at least one series")
        xs: list[float] = []
        for i, v in enumerate(self.x):
            f = _num(f"{self.id}.x[{i}]", v)
            if f is None:
                raise ConfigError(f"{self.id}.x[{i}]", v, "x values must be finite")
            if xs and f < xs[-1]:
                raise ConfigError(f"{self.id}.x[{i}]", v, "x values must be ascending")
            xs.append(f)
        for s in self.series:
            if len(s.values) != len(xs):
                raise ConfigError(
                    f"{self.id}.series[{s.label!r}]",
                    f"{len(s.values)} values",
                    f"needs one value per x ({len(xs)})",
                )
        if not isinstance(self.height, int) or not 40 <= self.height <= 2000:
            raise ConfigError("height", self.height, "must be an integer from 40 to 2000 pixels")
        return {
            "id": self.id,
            "title": self.title,
            "time": self.time,
            "height": self.height,
            "x": xs,
            "series": [s.to_json() for s in self.series],
            "y": {
                "label": self.y_label,
                "unit": _unit("y_unit", self.y_unit),
                "min": _num("y_min", self.y_min),
                "max": _num("y_max", self.y_max),
                "soft": self.y_soft,
            },
            "marks": [m.to_json() for m in self.marks],
            "thresholds": [t.to_json() for t in self.thresholds],
        }


def script_json(data: Any) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` escaped as unicode escapes."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def chart_html(chart: Chart | Mapping[str, Any]) -> str:
    """A ``<figure class="bt-chart">`` holding the chart's spec; drawn when the page loads."""
    spec = chart.to_json() if isinstance(chart, Chart) else dict(chart)
    cid = escape(str(spec.get("id", "")), quote=True)
    return (
        f'<figure class="bt-chart" id="{cid}">'
        f'<script type="application/json">{script_json(spec)}</script></figure>'
    )


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, levels: Sequence[str] | None = None
) -> str:
    """An HTML table; cells are escaped (``None`` shows as an en dash).  ``levels`` (one per row:
    ``ok``/``warn``/``bad``/``""``) colours rows."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    level_list = list(levels) if levels is not None else None
    for i, row in enumerate(rows):
        cells = "".join(f"<td>{_DASH if c is None else escape(str(c))}</td>" for c in row)
        cls = ""
        if level_list is not None:
            lv = level_list[i] if i < len(level_list) else ""
            cls = f' class="{LEVEL_CLASSES.get(lv, "plain")}"'
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def badge(text: str, level: str = "") -> str:
    """A coloured label: ``level`` is ``ok``, ``warn``, ``bad`` or ``""``."""
    return f'<span class="badge {LEVEL_CLASSES.get(level, "plain")}">{escape(text)}</span>'


def section(title: str, body_html: str, *, note: str = "") -> str:
    """``<section>`` with an ``<h2>`` title, an optional note paragraph and ``body_html``
    (trusted HTML, e.g. from :func:`table` or :func:`chart_html`)."""
    n = f'<p class="note">{escape(note)}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{n}{body_html}</section>"


def _license_comment() -> str:
    text = asset("vendor/uPlot.LICENSE").replace("*/", "* /")
    return f"/* uPlot, bundled: https://github.com/leeoniya/uPlot\n{text}*/\n"


def page(title: str, body_html: str, *, subtitle: str = "", generated: str = "") -> str:
    """A complete, self-contained HTML document: ``body_html`` (trusted HTML) under a header,
    with uPlot, its CSS and ``charts.js`` inlined, and every chart drawn on load."""
    css = asset("vendor/uPlot.min.css") + "\n" + asset("report.css")
    js = _license_comment() + asset("vendor/uPlot.iife.min.js") + "\n" + asset("charts.js")
    js = js.replace("</script", "<\\/script")
    sub = f'<p class="sub">{escape(subtitle)}</p>' if subtitle else ""
    gen = f'<p class="gen">{escape(generated)}</p>' if generated else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css}</style></head>"
        f'<body class="bt-report"><header><h1>{escape(title)}</h1>{sub}{gen}</header>'
        f"<main>{body_html}</main>"
        f"<script>{js}</script>"
        "<script>window.ButtressCharts.renderAll(document);</script>"
        "</body></html>\n"
    )
