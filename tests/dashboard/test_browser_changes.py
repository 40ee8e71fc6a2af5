"""The dashboard as looked at during a lab run, in headless Chromium (Debian's, via Playwright)
against a real uvicorn, with the store written by a real Publisher watching real policies:

* a live chart with a single sample (the bulkhead chart right after the page opens) draws a time
  axis of about a minute, not one spanning years;
* a bulkhead flapping between ok, saturated and rejecting is one row of "Recent state changes",
  with its count and time span, and the breaker that opened meanwhile is a row of its own, in
  sight.

Screenshots go to test-artifacts/dashboard/ (gitignored)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from buttress import Pipeline
from buttress.dashboard.feed import FeedReader
from buttress.dashboard.publish import Publisher
from buttress.dashboard.report import Chart, Series, chart_html, page
from buttress.dashboard.state import DashboardConfig
from buttress.errors import Rejected
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.bulkhead import Bulkhead
from buttress.slo.store import SLIStore
from buttress.testing import FakeClock

from .conftest import ARTIFACTS

# The x axis of the chart in figure `fig`: its scale, the tick positions and the labels drawn
# (uPlot paints them on the canvas from axis._values, one string per tick).
X_AXIS = """(fig) => {
  const u = window.ButtressCharts.instances.find(i => i.root.closest('figure').id === fig);
  if (!u) return null;
  const a = u.axes[0];
  return {min: u.scales.x.min, max: u.scales.x.max, n: u.data[0].length, x: u.data[0],
          splits: a._splits || [], labels: (a._values || []).map(String)};
}"""

# A tick of a one-minute axis: "9:25:10pm" or ":10" (seconds, uPlot's style at 5 s steps).
TIME_LABEL = re.compile(r"^(\d{1,2})?:\d{2}(:\d{2})?\s*([ap]m)?$", re.IGNORECASE)
# Under the first tick, the day and minute ("12/6/26 9:25pm"); under a new minute's, the minute.
SECOND_LINE = re.compile(r"^(\d{1,2}/\d{1,2}/\d{2} )?\d{1,2}:\d{2}\s*([ap]m)?$", re.IGNORECASE)


def assert_minute_axis(axis: dict[str, Any], newest: float, *, within: float = 0.0) -> None:
    """The axis spans one minute ending at its newest sample (which is ``newest``, give or take
    ``within`` seconds) and every label is a time of day within it (no year, no date)."""
    assert axis["max"] - axis["min"] == pytest.approx(60, abs=1e-6), axis
    assert axis["max"] == pytest.approx(axis["x"][-1]), axis
    assert axis["x"][-1] == pytest.approx(newest, abs=within + 1e-6), axis
    assert len(axis["labels"]) >= 2, axis
    for i, label in enumerate(axis["labels"]):
        lines = [line.strip() for line in label.split("\n")]
        assert TIME_LABEL.match(lines[0]), axis["labels"]
        assert len(lines) <= 2 and all(SECOND_LINE.match(x) for x in lines[1:]), axis["labels"]
        assert i == 0 or "/" not in label, axis["labels"]  # the date once, on the first tick
        assert not re.search(r"\b(19|20)\d\d\b", label), axis["labels"]  # no years
    assert all(axis["min"] - 1 <= s <= axis["max"] + 1 for s in axis["splits"]), axis
    assert max(axis["splits"]) - min(axis["splits"]) <= 60, axis


def test_a_chart_with_one_sample_spans_the_last_minute(
    page: Any, tmp_path: Path, served_factory: Any
) -> None:
    store = tmp_path / "s.db"
    SLIStore(store).close()
    bh = Bulkhead(4, max_queue=0, name="inventory-bulkhead")
    pub = Publisher(store, source="api")
    pub.watch(Pipeline([bh], name="inventory"))
    assert bh.try_acquire()  # one call in flight
    pub.publish_now()  # one sample, and nothing more: the page opens on it
    sample = time.time()
    s = served_factory(DashboardConfig(store=store, poll=0.1))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(s.url + "/")
        page.wait_for_function(
            "() => document.querySelector('#limit-charts .uplot') !== null", timeout=10000
        )
        fig = page.evaluate("document.querySelector('#limit-charts figure').id")
        axis = page.evaluate(X_AXIS, fig)
        assert 1 == axis["n"], axis  # the chart right after the page opens: a single sample
        assert_minute_axis(axis, sample, within=30)  # the sample as of the page's payload
        assert "1 / 4" in page.inner_text("#limits")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator("#limit-charts").screenshot(path=str(ARTIFACTS / "one-sample-chart.png"))

        # A second sample a moment later: still the last minute, not a 0.2 s wide axis.
        assert bh.try_acquire()
        pub.publish_now()
        page.wait_for_function(f"() => ({X_AXIS})({fig!r}).n === 2", timeout=10000)
        axis = page.evaluate(X_AXIS, fig)
        assert_minute_axis(axis, axis["x"][-1])
    finally:
        pub.close()
    assert [] == errors


def test_a_one_sample_chart_in_a_static_report_spans_a_minute(page: Any, tmp_path: Path) -> None:
    t = 1_790_000_000.0
    html = page_doc(Chart("one", "One sample", x=[t], series=[Series("in flight", [3])]))
    out = tmp_path / "report.html"
    out.write_text(html, encoding="utf-8")
    page.goto(out.as_uri())
    page.wait_for_function("window.ButtressCharts.instances.length === 1", timeout=5000)
    assert_minute_axis(page.evaluate(X_AXIS, "one"), t)


def page_doc(chart: Chart) -> str:
    return page("One sample", chart_html(chart))


# -- recent state changes --------------------------------------------------------------------------


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def flap(pub: Publisher, clock: FakeClock, bh: Bulkhead, through: Pipeline, cycles: int) -> None:
    """The bulkhead goes saturated, rejecting, ok, `cycles` times, a change every half second
    (dozens a minute), each seen by the publisher's sample."""
    for _ in range(cycles):
        assert bh.try_acquire() and bh.try_acquire()
        clock.advance(0.5)
        pub.publish_now()  # saturated
        with pytest.raises(Rejected):
            through.call(lambda: None)
        clock.advance(0.5)
        pub.publish_now()  # rejecting
        bh.release()
        bh.release()
        clock.advance(0.5)
        pub.publish_now()  # ok


def rows(pg: Any) -> list[dict[str, Any]]:
    return list(
        pg.evaluate(
            """() => Array.from(document.querySelectorAll('#events tbody > tr')).map(r => ({
                   policy: r.dataset.policy, count: +r.dataset.count, text: r.innerText,
                   time: r.cells[0].innerText, cls: r.className}))"""
        )
    )


def test_a_flapping_bulkhead_is_one_row_and_the_breaker_opening_stays_in_sight(
    page: Any, tmp_path: Path, served_factory: Any
) -> None:
    store = tmp_path / "s.db"
    SLIStore(store).close()
    # The policies run on a fake clock whose wall time ends about now, so a minute of flapping
    # takes no real minute; the dashboard reads the store as it would during a lab run.
    clock = FakeClock(wall_start=time.time() - 60)
    bh = Bulkhead(2, max_queue=0, name="inventory-bulkhead", clock=clock)
    inventory = Pipeline([bh], name="inventory", clock=clock)
    breaker = CircuitBreaker(
        name="payments-breaker",
        minimum_calls=4,
        window_size=4,
        failure_rate_threshold=0.5,
        break_duration=30.0,
        clock=clock,
    )
    payments = Pipeline([breaker], name="payments", clock=clock)
    pub = Publisher(store, source="api", clock=clock)
    pub.watch(inventory)
    pub.watch(payments)
    try:
        pub.publish_now()  # first samples: bulkhead ok, breaker closed
        flap(pub, clock, bh, inventory, 15)
        for _ in range(4):
            with pytest.raises(Boom):
                payments.call(boom)
        assert "open" == breaker.state.value
        pub.publish_now()
        flap(pub, clock, bh, inventory, 20)  # 60 more changes: the opening is no longer newest

        with FeedReader(store) as r:
            logged = [e for e in r.events(limit=10_000) if e.policy_type != "source"]
        bulkhead_changes = [e for e in logged if e.policy_type == "bulkhead"]
        assert 1 + 35 * 3 == len(bulkhead_changes)
        assert len(logged) > 50  # one row per change would push the opening off the table

        s = served_factory(DashboardConfig(store=store, poll=0.1))
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(s.url + "/")
        page.wait_for_function(
            "() => document.querySelector('#events tbody tr') !== null", timeout=10000
        )
        shown = rows(page)
        assert ["bulkhead", "circuit_breaker"] == [r["policy"] for r in shown], shown
        flapping, brk = shown
        # One row for the bulkhead: every change counted, its span and its states tallied.
        assert len(bulkhead_changes) == flapping["count"]
        assert f"{len(bulkhead_changes)} changes" in flapping["text"]
        span = flapping["time"].split("\u2013")
        assert 2 == len(span), flapping
        first, last = bulkhead_changes[0].time, bulkhead_changes[-1].time
        assert [clock_of(page, first), clock_of(page, last)] == [t.strip() for t in span]
        took = re.search(r"changes in (\d+) s", flapping["text"])
        assert took and abs(int(took.group(1)) - (last - first)) <= 1, flapping["text"]
        for state, n in (("ok", 36), ("saturated", 35), ("rejecting", 35)):
            assert f"{state} \u00d7{n}" in flapping["text"], flapping["text"]
        # The breaker: its opening is a row of its own, on screen, marked bad.
        assert 2 == brk["count"]  # its first sample (closed) and the opening
        assert "opened" in brk["text"] and "bad" in brk["cls"].split()
        breaker_row = page.locator('#events tr[data-policy="circuit_breaker"]')
        state_cell = breaker_row.locator("td").nth(5)
        assert state_cell.locator(".badge.bad", has_text="open").first.is_visible()
        assert breaker_row.is_visible()

        # Nothing lost, just grouped: the row opens on its changes (the newest ones listed).
        bulk = page.locator('#events tr[data-policy="bulkhead"]')
        bulk.locator("summary").click()
        items = bulk.locator("details[open] li")
        assert 50 == items.count()
        assert f"the newest 50 of {len(bulkhead_changes)} shown" in bulk.inner_text()
        assert "ok" in items.first.inner_text()  # the newest change: back to ok
        page.locator("#events-section").screenshot(path=str(ARTIFACTS / "changes-coalesced.png"))

        # More flapping arrives live: the same row counts on, and stays open.
        flap(pub, clock, bh, inventory, 2)
        n = len(bulkhead_changes) + 6
        page.wait_for_function(
            f"() => document.querySelector('#events tr[data-policy=\"bulkhead\"]')"
            f".dataset.count === '{n}'",
            timeout=10000,
        )
        assert 1 == page.locator('#events tr[data-policy="bulkhead"]').count()
        assert (
            page.locator('#events tr[data-policy="bulkhead"] details').get_attribute("open")
            is not None
        )
        assert [] == errors
    finally:
        pub.close()


def clock_of(pg: Any, t: float) -> str:
    """The time ``t`` as the page prints it (the browser's own locale and time zone)."""
    return str(pg.evaluate("(t) => new Date(t * 1000).toLocaleTimeString()", t))
