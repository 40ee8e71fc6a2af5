"""The lab's results for people: the side-by-side table and the self-contained HTML report.

The HTML page is built with :mod:`buttress.dashboard.report` (uPlot inlined, no network): per
request kind, the error rate and the p99 latency per second, policies on against policies off, with
the plan's faults shaded; each SLO's error budget consumed over the run (100% = the whole budget);
the circuit breakers' states; then the tables (SLOs, budget per fault, hypotheses, assessment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from buttress.dashboard.report import (
    Chart,
    Mark,
    Series,
    Threshold,
    badge,
    chart_html,
    page,
    section,
    table,
)
from buttress.tables import render_table as text_table

if TYPE_CHECKING:
    from .run import LoadedLab

__all__ = ["render_html", "render_table"]

_STATE_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0, "forced_open": 1.0}


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f} ms"


def rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """The side-by-side rows: label, then one cell per run (policies on, policies off)."""
    runs = result["runs"]
    modes = list(runs)
    out: list[tuple[str, ...]] = [("", *(f"policies {m}" for m in modes))]
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
    out.append(
        (
            "orders acknowledged",
            *(str(runs[m]["history"]["acknowledged_count"]) for m in modes),
        )
    )
    out.append(("orders lost", *(str(runs[m]["history"]["lost_count"]) for m in modes)))
    out.append(
        (
            "breaker state changes",
            *(str(len(runs[m]["breakers"])) for m in modes),
        )
    )
    return out


def render_table(result: dict[str, Any]) -> str:
    """The two runs side by side, then the hypotheses, as plain text."""
    head, *body = rows(result)
    lines = [text_table(head, body), ""]
    for h in result["hypotheses"]:
        mark = "PASS" if h["passed"] else "FAIL"
        lines.append(f"{mark}  {h['hypothesis']}: {h['observed']}")
    verdict = "every hypothesis held" if result["passed"] else "a hypothesis FAILED"
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
    """Each breaker's state per second (0 closed, 0.5 half open, 1 open), from its changes."""
    out: dict[str, list[float | None]] = {}
    for e in sorted(run["breakers"], key=lambda e: e["time"]):
        values = out.setdefault(e["name"], [0.0] * n)
        level = _STATE_LEVEL.get(e["state"], 0.5)
        start = max(0, min(n - 1, int(e["time"])))
        for i in range(start, n):
            values[i] = level
    return out


def render_html(lab: LoadedLab, result: dict[str, Any]) -> str:
    """The whole report as one HTML document."""
    runs = result["runs"]
    modes = list(runs)
    first = runs[modes[0]]
    x = first["series"]["t"]
    n = len(x)
    marks = _marks(first)
    colors = {"on": "#1f77b4", "off": "#d62728"}
    body: list[str] = []

    verdict = badge(
        "every hypothesis held" if result["passed"] else "a hypothesis failed",
        "ok" if result["passed"] else "bad",
    )
    body.append(
        section(
            "Verdict",
            verdict
            + table(
                ["hypothesis", "expected", "observed", ""],
                [
                    (
                        h["hypothesis"],
                        h["expected"],
                        h["observed"],
                        "pass" if h["passed"] else "FAIL",
                    )
                    for h in result["hypotheses"]
                ],
                levels=["ok" if h["passed"] else "bad" for h in result["hypotheses"]],
            ),
            note="The same fault plan ran twice against the same services: first with the "
            "policies of reliability.yaml, then with every policy switched off.",
        )
    )
    side = rows(result)
    body.append(section("Side by side", table(list(side[0]), side[1:])))

    def series_of(key: str, unit: str | None = None) -> list[Series]:
        return [
            Series(
                f"policies {m}",
                (runs[m]["series"][key] + [None] * n)[:n],
                color=colors.get(m),
                dash=m == "off",
                unit=unit,
            )
            for m in modes
            if key in runs[m]["series"]
        ]

    charts: list[str] = []
    for kind in first["requests"]:
        charts.append(
            chart_html(
                Chart(
                    f"err-{kind}",
                    f"{kind}: bad requests per second (fraction)",
                    x=x,
                    series=series_of(f"{kind}_error"),
                    y_unit="fraction",
                    y_min=0,
                    y_max=1,
                    time=False,
                    marks=marks,
                )
            )
        )
        charts.append(
            chart_html(
                Chart(
                    f"lat-{kind}",
                    f"{kind}: p99 latency per second",
                    x=x,
                    series=series_of(f"{kind}_p99"),
                    y_unit="s",
                    y_min=0,
                    time=False,
                    marks=marks,
                    thresholds=[Threshold(lab.experiments.load.timeout, "client timeout")],
                )
            )
        )
    body.append(
        section(
            "Errors and latency over the run",
            "".join(charts),
            note="x: seconds since the start of the run; shaded: the faults of the plan.",
        )
    )
    budget_charts = []
    for s in first["slos"]:
        key = f"budget_{s['name']}"
        if key not in first["series"]:
            continue
        budget_charts.append(
            chart_html(
                Chart(
                    f"budget-{s['name']}",
                    f"SLO {s['name']} ({s['objective']:g}%): error budget consumed",
                    x=x,
                    series=series_of(key),
                    y_unit="fraction",
                    y_min=0,
                    y_soft=True,
                    time=False,
                    marks=marks,
                    thresholds=[Threshold(1.0, "budget exhausted", "#d62728")],
                )
            )
        )
    if budget_charts:
        body.append(
            section(
                "Error budget burn",
                "".join(budget_charts),
                note="Budget consumed = bad requests so far / (requests in the run x (1 - "
                "objective)), seen by the load driver; above 100% the SLO is burned.",
            )
        )
    breaker_charts = []
    for m in modes:
        states = _breaker_series(runs[m], n)
        if not states:
            continue
        breaker_charts.append(
            chart_html(
                Chart(
                    f"breakers-{m}",
                    f"circuit breakers, policies {m} (0 closed, 0.5 half open, 1 open)",
                    x=x,
                    series=[Series(name, v, step=True) for name, v in states.items()],
                    y_min=0,
                    y_max=1,
                    time=False,
                    marks=marks,
                    height=160,
                )
            )
        )
    body.append(
        section(
            "Breaker states",
            "".join(breaker_charts) or "<p>No breaker changed state.</p>",
            note="From the state feed the API published into the run's store.",
        )
    )
    fault_rows = []
    for j, f in enumerate(first["faults"]):
        for name in f["budget_consumed"]:
            fault_rows.append(
                (
                    f["name"],
                    f["kind"],
                    f["target"],
                    f"{f['planned'][0]:.1f}-{f['planned'][1]:.1f} s",
                    name,
                    *(_pct(runs[m]["faults"][j]["budget_consumed"].get(name), 1) for m in modes),
                )
            )
    body.append(
        section(
            "Budget consumed per fault",
            table(
                ["fault", "kind", "target", "when", "SLO", *(f"policies {m}" for m in modes)],
                fault_rows,
            ),
            note="Share of the run's error budget burned by the requests that arrived while the "
            "fault was applied (plus the client timeout, at most until the next fault began).",
        )
    )
    slo_rows = []
    for m in modes:
        for s in runs[m]["slos"]:
            slo_rows.append(
                (
                    m,
                    s["name"],
                    f"{s['objective']:g}%",
                    f"{int(s['good'])} / {int(s['total'])}",
                    _pct(s["sli"], 3),
                    _pct(s["budget_consumed"], 1),
                    s["verdict"],
                    f"{int(s['service_good'])} / {int(s['service_total'])}",
                    _pct(s["service_sli"], 3),
                )
            )
    body.append(
        section(
            "SLOs from the store",
            table(
                [
                    "policies",
                    "SLO",
                    "objective",
                    "good / total",
                    "SLI",
                    "budget consumed",
                    "verdict",
                    "good / total (API)",
                    "SLI (API)",
                ],
                slo_rows,
                levels=["ok" if r[6] == "held" else "bad" for r in slo_rows],
            ),
            note="What the users saw (recorded by the load driver into the run's client.db), "
            "beside what the API recorded into store.db; both SQLite stores of buttress.slo, "
            "evaluated by buttress.slo.evaluator.  Verdicts use the users' view.",
        )
    )
    hist_rows = [
        (
            m,
            runs[m]["history"]["attempted_count"],
            runs[m]["history"]["acknowledged_count"],
            runs[m]["history"]["lost_count"],
            runs[m]["history"]["recovered_count"],
            runs[m]["history"]["vanished_count"],
        )
        for m in modes
    ]
    body.append(
        section(
            "Nothing lost",
            table(
                [
                    "policies",
                    "orders sent",
                    "acknowledged",
                    "lost",
                    "unknown, stored",
                    "unknown, not",
                ],
                hist_rows,
                levels=["ok" if r[3] == 0 else "bad" for r in hist_rows],
            ),
            note="The history checker (buttress.chaos.checker) compares every acknowledged order "
            "with a final read of the datastore.",
        )
    )
    assessment = result.get("assessment")
    if assessment:
        body.append(
            section(
                "Assessment of the architecture",
                table(
                    ["journey", "target", "availability", "meets", "downtime/month", "SPOFs"],
                    [
                        (
                            j["name"],
                            _pct(j["target"]),
                            _pct(j["availability"], 4),
                            "yes" if j["meets_target"] else "no",
                            f"{j['downtime_minutes_per_month']:.1f} min",
                            "; ".join(j["spofs"]) or "none",
                        )
                        for j in assessment["journeys"]
                    ],
                ),
                note="buttress.assess on the architecture: section (steady state, exact).",
            )
        )
    mode_text = "quick" if result["quick"] else "full"
    return page(
        "Buttress lab: what the policies buy",
        "".join(body),
        subtitle=f"{result['file']} ({mode_text} plan, seed {result['seed']})",
        generated=f"{result['elapsed']:.0f} s",
    )
