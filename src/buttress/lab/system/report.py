"""The lab's results for people: the side-by-side table and the self-contained HTML report.

The HTML page's body comes from ``templates/report.html`` (Jinja2, autoescaped), inside the
self-contained page of :mod:`buttress.dashboard.report` (uPlot inlined, no network): per
request kind, the error rate and the p99 latency per second (every request, a timeout counted at
the client's timeout), policies on against policies off, with the plan's faults shaded; each SLO's
error budget consumed over the run (100% = the whole budget); one chart per circuit breaker (every
breaker the services published, those that never changed state too); a sentence for each request
kind that stayed failed after a fault ended (a metastable failure); the load driver's scheduling
lag; then the tables (SLOs, budget per fault, hypotheses, assessment).

The page is static: the charts' legends name the series and do not follow the pointer (no hover
values, no cursor), so what is printed or shared reads the same as what is on screen.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from buttress.dashboard.report import Chart, Mark, Series, Threshold, chart_html, page
from buttress.tables import render_table as text_table

from .alerts import alert_lines, alert_tables
from .audit import audit_rows
from .compare import as_well_sentences
from .drill import drill_rows
from .figures import metastable_sentences, starved_text
from .healing import healing_rows, healing_sentences, healing_tables
from .priority import priority_rows
from .spec import MODE_NAMES
from .tenants import tenant_rows, tenant_sentences

if TYPE_CHECKING:
    from .run import LoadedLab

__all__ = ["render_html", "render_table"]

_COLORS = {"on": "#1f77b4", "typical": "#ff7f0e", "off": "#d62728"}
_VERDICT_TEXT = {
    "passed": "every hypothesis held",
    "failed": "a hypothesis FAILED",
    "inconclusive": "INCONCLUSIVE: the load driver was starved",
}
_VERDICT_LEVEL = {"passed": "ok", "failed": "bad", "inconclusive": "warn"}
_STATE_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0, "forced_open": 1.0}


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f} ms"


def rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """The side-by-side rows: label, then one cell per run (off, typical, Buttress)."""
    runs = result["runs"]
    modes = list(runs)
    out: list[tuple[str, ...]] = [("", *(MODE_NAMES.get(m, m) for m in modes))]
    first = runs[modes[0]]
    for i, slo in enumerate(first["slos"]):
        cells = []
        for m in modes:
            s = runs[m]["slos"][i]
            cells.append(f"{_pct(s['sli'])} {s['verdict']}")
        out.append((f"SLO {slo['name']} ({slo['objective']:g}%)", *cells))
        out.append(
            ("  budget consumed", *(_pct(runs[m]["slos"][i]["budget_consumed"], 0) for m in modes))
        )
        for j, f in enumerate(first["faults"]):
            spent = [runs[m]["faults"][j]["budget_consumed"].get(slo["name"]) for m in modes]
            if any(spent):
                out.append((f"    by {f['name']}", *(_pct(v, 0) for v in spent)))
    for kind in first["requests"]:
        out.append(
            (
                f"{kind}: good / total",
                *(
                    f"{runs[m]['requests'][kind]['good']} / {runs[m]['requests'][kind]['total']}"
                    for m in modes
                ),
            )
        )
        out.append(
            (f"{kind}: p99 latency (good)", *(_ms(runs[m]["requests"][kind]["p99"]) for m in modes))
        )
        if all("p99_all" in runs[m]["requests"][kind] for m in modes):
            out.append(
                (
                    f"{kind}: p99 latency (all, timeouts at the timeout)",
                    *(_ms(runs[m]["requests"][kind]["p99_all"]) for m in modes),
                )
            )
    out.append(
        ("orders acknowledged", *(str(runs[m]["history"]["acknowledged_count"]) for m in modes))
    )
    out.append(("orders lost", *(str(runs[m]["history"]["lost_count"]) for m in modes)))
    for name in runs[modes[0]].get("effects") or {}:
        cells = []
        for m in modes:
            e = (runs[m].get("effects") or {}).get(name)
            cells.append(
                "-"
                if e is None
                else f"{e['once']} once, {e['missing_count']} never, {e['duplicated_count']} twice+"
            )
        out.append((f"acknowledged orders {name}", *cells))
    if all("pending" in runs[m] for m in modes):
        out.append(("orders left unfinished", *(str(runs[m]["pending"]["count"]) for m in modes)))
    out.extend(_load_rows(runs, modes))
    out.extend(_recovery_rows(runs, modes))
    out.extend(audit_rows(runs, modes))
    out.extend(healing_rows(runs, modes))
    out.extend(priority_rows(runs, modes))
    out.extend(tenant_rows(runs, modes))
    out.append(("breaker state changes", *(str(len(runs[m]["breakers"])) for m in modes)))
    if all("driver" in runs[m] for m in modes):
        out.append(("driver lag p99 / max", *(_lag(runs[m]["driver"]) for m in modes)))
    if all("verdict" in runs[m] for m in modes):
        out.append(("run verdict", *(runs[m]["verdict"] for m in modes)))
    return out


def _load_rows(runs: dict[str, Any], modes: list[str]) -> list[tuple[str, ...]]:
    """Attempts per user request on each dependency, and the amplification each fault caused on
    the dependency it made fail."""
    if not all(runs[m].get("attempts") for m in modes):
        return []
    out: list[tuple[str, ...]] = []
    for dep in runs[modes[0]]["attempts"]:
        per = (runs[m]["attempts"].get(dep, {}).get("per_request") for m in modes)
        out.append(
            (f"{dep}: attempts per request", *("-" if v is None else f"{v:.2f}" for v in per))
        )
    for j, f in enumerate(runs[modes[0]]["faults"]):
        dep = f.get("failing")
        if not dep:
            continue
        amps = (runs[m]["faults"][j].get("amplification", {}).get(dep) for m in modes)
        out.append(
            (
                f"  load on {dep} during {f['name']}",
                *("-" if a is None else f"x{a:.2f}" for a in amps),
            )
        )
    return out


def _recovery_rows(runs: dict[str, Any], modes: list[str]) -> list[tuple[str, ...]]:
    """Seconds from each fault's removal until the first request kind's errors were back to the
    steady state (``never`` within the window; ``-``: not judged)."""
    out: list[tuple[str, ...]] = []
    kind = next(iter(runs[modes[0]]["requests"]), None)
    for f in runs[modes[0]]["faults"]:
        cells = []
        for m in modes:
            r = next(
                (
                    r
                    for r in runs[m].get("recovery", [])
                    if r["fault"] == f["name"] and r["kind"] == kind
                ),
                None,
            )
            after = None if r is None else r.get("recovered_after", None)
            cells.append("-" if r is None else ("never" if after is None else f"{after:.1f} s"))
        if any(c != "-" for c in cells):
            out.append((f"{kind} recovered after {f['name']}", *cells))
    return out


def _lag(d: dict[str, Any]) -> str:
    if d.get("p99") is None:
        return "-"
    starved = " STARVED" if d["starved"] else ""
    return f"{d['p99'] * 1000:.0f} / {d['max'] * 1000:.0f} ms{starved}"


def _verdict(result: dict[str, Any]) -> str:
    return str(result.get("verdict", "passed" if result["passed"] else "failed"))


def notes(result: dict[str, Any]) -> list[str]:
    """Sentences the figures call for: each run that stayed failed after a fault ended (a
    metastable failure), and each run whose load driver was starved."""
    out: list[str] = as_well_sentences(result["runs"]) + healing_sentences(result["runs"])
    out += tenant_sentences(result["runs"])
    for mode, run in result["runs"].items():
        out.extend(metastable_sentences(mode, run))
        lag = run.get("driver") or {}
        if lag.get("starved"):
            out.append(
                f"With {MODE_NAMES.get(mode, mode)}, {starved_text(lag)} ({lag['late']} of "
                f"{lag['count']} requests sent later than that), so this run's verdict is "
                "inconclusive: a slow driver cannot be told from a slow system."
            )
    return out


def render_table(result: dict[str, Any]) -> str:
    """The two runs side by side, then the hypotheses, as plain text."""
    head, *body = rows(result)
    lines = [text_table(head, body), ""]
    if result.get("drill"):
        dhead, *dbody = drill_rows(result["drill"])
        lines += [text_table(dhead, dbody), ""]
    lines += alert_lines(result["runs"], MODE_NAMES)
    for h in result["hypotheses"]:
        mark = {True: "PASS", False: "FAIL", None: "INCONCLUSIVE"}[h["passed"]]
        lines.append(f"{mark}  {h['hypothesis']}: {h['observed']}")
    for n in notes(result):
        lines.append(f"NOTE  {n}")
    verdict = _VERDICT_TEXT[_verdict(result)]
    lines.append(f"\n{verdict}; report: {result.get('report', '-')} ({result['elapsed']:.0f} s)")
    return "\n".join(lines) + "\n"


# -- HTML --------------------------------------------------------------------------------------


def _marks(run: dict[str, Any]) -> list[Mark]:
    out = []
    for f in run["faults"]:
        lo = f["applied_at"] if f["applied_at"] is not None else f["planned"][0]
        hi = f["removed_at"] if f["removed_at"] is not None else f["planned"][1]
        out.append(Mark(float(lo), float(max(lo, hi)), f["name"]))
    return out


def _breaker_series(run: dict[str, Any], n: int) -> dict[str, list[float | None]]:
    """Each breaker's state per second (0 closed, 0.5 half open, 1 open), from its changes; a
    breaker the services published that never changed state stays closed."""
    out: dict[str, list[float | None]] = {name: [0.0] * n for name in run.get("breaker_names", [])}
    for e in sorted(run["breakers"], key=lambda e: e["time"]):
        values = out.setdefault(e["name"], [0.0] * n)
        level = _STATE_LEVEL.get(e["state"], 0.5)
        start = max(0, min(n - 1, int(e["time"])))
        for i in range(start, n):
            values[i] = level
    return out


class _Charts:
    """The report's charts, drawn by uPlot from the specs ``chart_html`` embeds: x is seconds
    since the start of the run, the plan's faults are shaded; one series per run."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.runs = result["runs"]
        self.modes = list(self.runs)
        first = self.runs[self.modes[0]]
        self.x = first["series"]["t"]
        self.marks = _marks(first)

    def chart(self, id: str, title: str, series: list[Series], **options: Any) -> Markup:
        spec = Chart(id, title, x=self.x, series=series, time=False, marks=self.marks, **options)
        return Markup(chart_html(spec))

    def series(self, key: str) -> list[Series]:
        n = len(self.x)
        return [
            Series(
                MODE_NAMES.get(m, m),
                (self.runs[m]["series"][key] + [None] * n)[:n],
                color=_COLORS.get(m),
                dash=m == "off",
            )
            for m in self.modes
            if key in self.runs[m]["series"]
        ]

    def requests(self, kind: str, timeout: float) -> list[Markup]:
        """Bad requests per second (a fraction) and the p99 latency of one request kind (every
        request: a timeout counts at the client's timeout)."""
        bad = self.series(f"{kind}_error")
        p99 = self.series(f"{kind}_p99")
        limit = [Threshold(timeout, "client timeout")]
        lat_title = (
            f"{kind}: p99 latency per second, every request (a timeout counts as "
            f"{timeout:g} s, the client timeout)"
        )
        return [
            self.chart(f"err-{kind}", f"{kind}: bad requests per second (fraction)", bad,
                       y_unit="fraction", y_min=0, y_max=1),
            self.chart(f"lat-{kind}", lat_title, p99,
                       y_unit="s", y_min=0, thresholds=limit),
        ]  # fmt: skip

    def budget(self, slo: dict[str, Any]) -> Markup:
        name = slo["name"]
        return self.chart(
            f"budget-{name}",
            f"SLO {name} ({slo['objective']:g}%): error budget consumed",
            self.series(f"budget_{name}"),
            y_unit="fraction",
            y_min=0,
            y_soft=True,
            thresholds=[Threshold(1.0, "budget exhausted", "#d62728")],
        )

    def breakers(self) -> list[Markup]:
        """One chart per breaker (every breaker of every run), one series per run that has it:
        breakers drawn in one chart would hide each other where their states are equal."""
        n = len(self.x)
        states = {m: _breaker_series(self.runs[m], n) for m in self.modes}
        names = sorted({name for per in states.values() for name in per})
        out = []
        for i, name in enumerate(names):
            series = [
                Series(MODE_NAMES.get(m, m), states[m][name], color=_COLORS.get(m), step=True,
                       dash=m == "off")
                for m in self.modes
                if name in states[m]
            ]  # fmt: skip
            out.append(
                self.chart(
                    f"breaker-{i}",
                    f"circuit breaker {name} (0 closed, 0.5 half open, 1 open)",
                    series,
                    y_min=0,
                    y_max=1,
                    height=120,
                )
            )
        return out

    def all(self, lab: LoadedLab) -> dict[str, list[Markup]]:
        first = self.runs[self.modes[0]]
        timeout = lab.experiments.load.timeout
        return {
            "requests": [c for kind in first["requests"] for c in self.requests(kind, timeout)],
            "budgets": [
                self.budget(s) for s in first["slos"] if f"budget_{s['name']}" in first["series"]
            ],
            "breakers": self.breakers(),
        }


def _fault_rows(runs: dict[str, Any]) -> list[tuple[str, ...]]:
    modes = list(runs)
    out = []
    for j, f in enumerate(runs[modes[0]]["faults"]):
        for name in f["budget_consumed"]:
            spent = (_pct(runs[m]["faults"][j]["budget_consumed"].get(name), 1) for m in modes)
            when = f"{f['planned'][0]:.1f}-{f['planned'][1]:.1f} s"
            out.append((f["name"], f["kind"], f["target"], when, name, *spent))
    return out


def _slo_rows(runs: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (
            MODE_NAMES.get(m, m),
            s["name"],
            f"{s['objective']:g}%",
            f"{int(s['good'])} / {int(s['total'])}",
            _pct(s["sli"], 3),
            _pct(s["budget_consumed"], 1),
            s["verdict"],
            f"{int(s['service_good'])} / {int(s['service_total'])}",
            _pct(s["service_sli"], 3),
        )
        for m in runs
        for s in runs[m]["slos"]
    ]


def _history_rows(runs: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("attempted", "acknowledged", "lost", "recovered", "vanished")
    return [
        (
            MODE_NAMES.get(m, m),
            *(runs[m]["history"][f"{k}_count"] for k in keys[:3]),
            runs[m].get("pending", {}).get("count", "-"),
            *(runs[m]["history"][f"{k}_count"] for k in keys[3:]),
        )
        for m in runs
    ]


def _journey_rows(assessment: dict[str, Any] | None) -> list[tuple[str, ...]]:
    return [
        (
            j["name"],
            _pct(j["target"]),
            _pct(j["availability"], 4),
            "yes" if j["meets_target"] else "no",
            f"{j['downtime_minutes_per_month']:.1f} min",
            "; ".join(j["spofs"]) or "none",
        )
        for j in (assessment or {}).get("journeys", [])
    ]


def _driver_rows(runs: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for m, run in runs.items():
        d = run.get("driver")
        if not d or d.get("p99") is None:
            continue
        rows.append(
            (
                MODE_NAMES.get(m, m),
                d["count"],
                _ms(d["p50"]),
                _ms(d["p99"]),
                _ms(d["max"]),
                _ms(d["limit"]),
                d["late"],
                "starved: inconclusive" if d["starved"] else "ok",
            )
        )
    return {"rows": rows, "levels": [_level(r[7] == "ok") for r in rows]}


def _level(ok: bool) -> str:
    return "ok" if ok else "bad"


def render_html(lab: LoadedLab, result: dict[str, Any]) -> str:
    """The whole report as one HTML document: ``templates/report.html`` inside the dashboard's
    self-contained page."""
    runs = result["runs"]
    hyps = result["hypotheses"]
    verdict = _verdict(result)
    slo_rows, history_rows = _slo_rows(runs), _history_rows(runs)
    marks = {True: ("pass", "ok"), False: ("FAIL", "bad"), None: ("inconclusive", "warn")}
    body = _template().render(
        verdict={
            "text": _VERDICT_TEXT[verdict].lower(),
            "level": _VERDICT_LEVEL[verdict],
            "rows": [
                (h["hypothesis"], h["expected"], h["observed"], marks[h["passed"]][0]) for h in hyps
            ],
            "levels": [marks[h["passed"]][1] for h in hyps],
        },
        notes=notes(result),
        driver=_driver_rows(runs),
        side=rows(result),
        charts=_Charts(result).all(lab),
        modes=[MODE_NAMES.get(m, m) for m in runs],
        faults=_fault_rows(runs),
        slos={"rows": slo_rows, "levels": [_level(r[6] == "held") for r in slo_rows]},
        history={"rows": history_rows, "levels": [_level(r[3] == 0) for r in history_rows]},
        assessment=_journey_rows(result.get("assessment")),
        drill=drill_rows(result["drill"]) if result.get("drill") else None,
        healing=healing_tables(runs),
        alerts=alert_tables(runs, MODE_NAMES),
    )
    mode_text = "quick" if result["quick"] else "full"
    return page(
        "Buttress lab: what the policies buy",
        body,
        subtitle=f"{result['file']} ({mode_text} plan, seed {result['seed']})",
        generated=f"{result['elapsed']:.0f} s",
    )


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("buttress.lab.system", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html")
