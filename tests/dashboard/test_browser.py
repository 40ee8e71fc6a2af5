"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against the dashboard
served by a real uvicorn, while a separate writer process runs real pipelines into the store.

Screenshots go to test-artifacts/dashboard/ (gitignored)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from buttress.dashboard.report import Chart, Mark, Series, Threshold, chart_html, page, section
from buttress.dashboard.state import DashboardConfig

from .conftest import ARTIFACTS, SPEC, Writer

CANVASES = """() => Array.from(document.querySelectorAll('.uplot canvas')).map(
    c => [c.width, c.height, c.getBoundingClientRect().width, c.getBoundingClientRect().height])"""

BREAKER_STATE = """() => {
  const row = document.querySelector('tr[data-key^="circuit_breaker|"]');
  return row ? row.dataset.state : null;
}"""


def painted(pg: Any, selector: str) -> int:
    """How many canvases under ``selector`` have non-blank pixels (uPlot really drew)."""
    return int(
        pg.evaluate(
            """(sel) => Array.from(document.querySelectorAll(sel + ' .uplot canvas')).filter(c => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true;
                return false;
            }).length""",
            selector,
        )
    )


def test_live_dashboard_during_a_run(
    page: Any, writer: Writer, served_factory: Any, journals_dir: Path
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    s = served_factory(
        DashboardConfig(
            store=writer.store, spec=SPEC, journals=journals_dir, poll=0.1, slo_every=1.0
        )
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    external: list[str] = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(s.url) else None)
    page.goto(s.url + "/")
    page.wait_for_function("document.getElementById('conn').textContent === 'live'", timeout=10000)
    page.wait_for_function(
        "document.querySelectorAll('#slo-list .slo').length === 2", timeout=10000
    )
    page.wait_for_function(
        "() => document.querySelector('tr[data-key^=\"circuit_breaker|\"]') !== null", timeout=10000
    )

    # Charts: uPlot instances exist and every canvas has a real, non-zero size and pixels drawn.
    n = page.evaluate("window.ButtressCharts.instances.length")
    assert n >= 5  # 2 SLOs x (burn-down, error ratio) + a breaker timeline (+ live limits)
    sizes = page.evaluate(CANVASES)
    assert len(sizes) >= n
    assert all(w > 0 and h > 0 and cw > 0 and ch > 0 for w, h, cw, ch in sizes), sizes
    assert painted(page, "#slo-list") >= 4

    # SLOs in the order the server computed: least budget remaining first.
    snap = json.loads(page.evaluate("fetch('/api/snapshot').then(r => r.text())"))
    expected = [e["name"] for e in snap["slos"]["slos"]]
    dom = page.evaluate(
        "Array.from(document.querySelectorAll('#slo-list .slo')).map(e => e.dataset.slo)"
    )
    assert expected == dom
    alert_rows = page.locator("#slo-list table.alerts tbody tr").count()
    assert sum(len(e["tiers"]) for e in snap["slos"]["slos"]) == alert_rows

    # The other panels: assessment, experiments, limits, the publishing process.
    assert "checkout" in page.inner_text("#assess")
    assert 3 == page.locator("#journals details").count()
    assert "deviated" in page.inner_text("#journals")
    assert "payments-bulkhead" in page.inner_text("#limits")
    assert "writer-" in page.inner_text("#sources")
    assert "closed" == page.evaluate(BREAKER_STATE)
    page.screenshot(path=str(ARTIFACTS / "dashboard-closed.png"), full_page=True)

    # Break the dependency: the breaker opens in the writer process and the page shows it live.
    t0 = time.monotonic()
    writer.fail()
    page.wait_for_function(f"({BREAKER_STATE})() === 'open'", timeout=5000)
    seen_after = time.monotonic() - t0
    assert seen_after < 5.0
    page.wait_for_function(
        "() => document.querySelector('#events').textContent.includes('opened')", timeout=5000
    )
    page.screenshot(path=str(ARTIFACTS / "dashboard-open.png"), full_page=True)

    # Mend it: after the 3 s break, probes succeed and the breaker closes again, live.
    writer.recover()
    page.wait_for_function(f"({BREAKER_STATE})() === 'closed'", timeout=10000)
    timeline = page.evaluate(
        """() => { const u = window.ButtressCharts.instances.find(
                       i => i.root.parentNode.id.startsWith('fig-brk-'));
                   return u ? u.data[1] : null; }"""
    )
    assert timeline is not None and 2 in timeline  # the open spell is on the breaker chart
    page.screenshot(path=str(ARTIFACTS / "dashboard-recovered.png"), full_page=True)
    (ARTIFACTS / "dashboard-timing.txt").write_text(
        f"breaker open shown {seen_after:.3f} s after the dependency failed\n"
    )
    assert [] == errors
    assert [] == external  # nothing fetched from anywhere but the dashboard itself


def test_a_run_younger_than_a_minute_is_not_an_empty_board(
    page: Any, served_factory: Any, tmp_path: Path
) -> None:
    """Only the minute still filling has counts: the cards show events and SLI so far, marked
    partial, and the burn-down and error-ratio charts draw the filling minute as a dot."""
    from buttress.slo.store import SLIStore

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    db = tmp_path / "young.db"
    # The board must be read within the minute the counts are for: a minute boundary between
    # writing and reading makes the filling minute a settled one (200 events "so far", seen once
    # in a full run).  Start at least 15 s before a boundary.
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)
    m = int(time.time() // 60)
    with SLIStore(db) as st:  # the next minute too, so a minute boundary mid-test changes nothing
        st.add(
            [
                (n, k, 96, 100)
                for n in ("checkout-availability", "checkout-latency")
                for k in (m, m + 1)
            ]
        )
    s = served_factory(DashboardConfig(store=db, spec=SPEC, poll=0.1, slo_every=1.0))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(s.url + "/")
    page.wait_for_function(
        "document.querySelectorAll('#slo-list .slo[data-partial=\"1\"]').length === 2",
        timeout=10000,
    )
    for name in ("checkout-availability", "checkout-latency"):
        card = page.locator(f'#slo-list .slo[data-slo="{name}"]')
        assert "100 events so far" == card.locator(".events").inner_text()
        assert "SLI 96.0% so far" == card.locator(".sli").inner_text()
        assert "partial" in card.locator(".slo-head").inner_text()
    dots = page.evaluate(
        """() => window.ButtressCharts.instances
             .filter(u => u.root.parentNode.id.endsWith('-burndown'))
             .map(u => u.data[2].filter(v => v !== null).length)"""
    )
    assert [1, 1] == dots  # one "so far" point per burn-down
    # The filling minute's error ratio is drawn as a dot: pixels of the series colour at its spot.
    shown = page.evaluate(
        """() => window.ButtressCharts.instances
             .filter(u => u.root.parentNode.id.endsWith('-errors'))
             .map(u => {
               const i = u.data[0].length - 1;
               const x = Math.round(u.valToPos(u.data[0][i], 'x', true));
               const y = Math.round(u.valToPos(u.data[1][i], 'y', true));
               const d = u.ctx.getImageData(x - 3, y - 3, 4, 7).data;
               let red = 0;
               for (let k = 0; k < d.length; k += 4)
                 if (d[k] > 180 && d[k + 1] < 90 && d[k + 2] < 90 && d[k + 3] > 0) red++;
               return [u.buttressSpec.series[0].points === true, u.data[1][i], red];
             })"""
    )
    assert 2 == len(shown), shown
    assert all(pts and 0.04 == pytest.approx(v) and red >= 6 for pts, v, red in shown), shown
    assert painted(page, "#slo-list") >= 4
    page.screenshot(path=str(ARTIFACTS / "dashboard-young-run.png"), full_page=True)
    assert [] == errors


def test_report_file_renders_offline(page: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = 1_760_000_000
    xs = [t0 + i for i in range(120)]
    on = [0.002 + (0.3 if 40 <= i < 60 else 0) * 0.05 for i in range(120)]
    off = [0.002 + (0.6 if 40 <= i < 80 else 0) for i in range(120)]
    charts = [
        Chart(
            "errors",
            "Error ratio",
            x=xs,
            series=[Series("policies on", on), Series("policies off", off, dash=True)],
            y_unit="fraction",
            y_min=0,
            marks=[Mark(t0 + 40, t0 + 60, "inventory outage")],
            thresholds=[Threshold(0.005, "SLO 99.5%")],
        ),
        Chart(
            "breaker",
            "Breaker state",
            x=xs,
            series=[Series("state", [2 if 42 <= i < 58 else 0 for i in range(120)], step=True)],
            y_min=0,
            y_max=2,
        ),
    ]
    html = page_html = page_doc(charts)
    out = tmp_path / "report.html"
    out.write_text(html, encoding="utf-8")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(out.as_uri())
    page.wait_for_function("window.ButtressCharts.instances.length === 2", timeout=5000)
    sizes = page.evaluate(CANVASES)
    assert 2 == len(sizes)
    assert all(w > 0 and h > 0 for w, h, _, _ in sizes)
    assert 2 == painted(page, "main")
    assert [out.as_uri()] == requests  # the file itself and nothing else
    assert [] == errors
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert page_html.count("<figure") == 2


def page_doc(charts: list[Chart]) -> str:
    return page(
        "Lab run",
        section("Errors", chart_html(charts[0]), note="policies on vs off")
        + section("Breaker", chart_html(charts[1])),
        subtitle="two charts, one file",
    )
