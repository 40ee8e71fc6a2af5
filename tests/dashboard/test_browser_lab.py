"""Headless Chromium (Debian's, driven by Playwright) on the dashboard DURING a real shop lab run.

``buttress lab examples/shop --quick`` runs as a subprocess (seven real processes: the fault proxy,
the API, inventory, two payments, the datastore and the lab itself); its API service records SLIs
and publishes its breaker states into ``<out>/policies-on/store.db``.  The dashboard is served on
that store by a real uvicorn while the lab runs, and the page must show the SLO charts and the
inventory breaker opening during the inventory outage, live (server-sent events), within a few
seconds of the lab's own record of the opening (the event the API wrote into the store).  Then the
dashboard stops, the lab is interrupted (Ctrl-C) mid-run and must leave no process behind.

Screenshots go to test-artifacts/dashboard/lab-*.png (gitignored)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from buttress.dashboard.feed import FeedReader
from buttress.dashboard.state import DashboardConfig
from shop.helpers import ROOT, SHOP, lab_command, lab_env, marked_pids, new_marker, wait_no_marked

from .conftest import ARTIFACTS, stop
from .test_browser import CANVASES, painted

pytestmark = pytest.mark.serial

LAG_LIMIT = 3.0
"""Seconds allowed between the API writing the breaker's opening into the store and the page
showing it (the dashboard polls the store every 0.1 s here and pushes by SSE)."""

# Every change of the breaker row's state, with the browser's wall-clock time (s since the epoch).
RECORD_BREAKER = """
window.__breaker = [];
setInterval(() => {
  const row = document.querySelector('tr[data-key^="circuit_breaker|"]');
  if (!row) return;
  const last = window.__breaker[window.__breaker.length - 1];
  if (!last || last[1] !== row.dataset.state || last[2] !== row.dataset.key)
    window.__breaker.push([Date.now() / 1000, row.dataset.state, row.dataset.key]);
}, 10);
"""

SERIES = """(id) => {
  const u = window.ButtressCharts.instances.find(i => i.root.parentNode.id === 'fig-' + id);
  return u ? u.data[1] : null;
}"""


class Lines:
    """The lab's stderr, line by line, each with the wall-clock time it was read."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[tuple[float, str]] = []
        self._proc = proc
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="lab-stderr", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            with self._cond:
                self.seen.append((time.time(), line))
                self._cond.notify_all()
        with self._cond:
            self.seen.append((time.time(), ""))  # end of stream
            self._cond.notify_all()

    def wait(self, needle: str, timeout: float) -> float:
        """The time of the first line containing ``needle`` (fails after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, line in self.seen:
                    if needle in line:
                        return t
                ended = bool(self.seen) and self.seen[-1][1] == ""
                left = deadline - time.monotonic()
                if ended or left <= 0:
                    raise AssertionError(f"{needle!r} not seen; stderr:\n{self.text()}")
                self._cond.wait(left)

    def text(self) -> str:
        return "".join(line for _, line in self.seen)


@pytest.mark.usefixtures("lab_lock")
def test_dashboard_shows_a_live_lab_run(page: Any, served_factory: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    marker = new_marker()
    out = tmp_path / "lab"
    store = out / "policies-on" / "store.db"
    started = time.monotonic()
    with (tmp_path / "lab.stdout").open("w") as stdout:
        proc = subprocess.Popen(
            lab_command(SHOP, out, "--quick", "--runs", "buttress"),
            env=lab_env(marker),
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
    lines = Lines(proc)
    served = None
    left: list[int] = []
    try:
        lines.wait("services and the fault proxy are up", 60)  # the first run: policies on
        assert store.exists()  # where the lab's API records SLIs and publishes breaker states
        served = served_factory(
            DashboardConfig(store=store, spec=SHOP / "reliability.yaml", poll=0.1, slo_every=1.0)
        )
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        external: list[str] = []
        page.on(
            "request",
            lambda r: external.append(r.url) if not r.url.startswith(served.url) else None,
        )
        page.add_init_script(RECORD_BREAKER)
        page.goto(served.url + "/")
        page.wait_for_function(
            "document.getElementById('conn').textContent === 'live'", timeout=10000
        )
        page.wait_for_function(
            "document.querySelectorAll('#slo-list .slo').length === 2", timeout=10000
        )

        # The SLO charts: both SLOs' per-minute error ratio has the lab's traffic in it (the API
        # flushes its SLI counts every second), every uPlot canvas has a size and drawn pixels.
        for slo in ("checkout", "browse"):
            page.wait_for_function(
                f"(({SERIES})('slo-{slo}-errors') || []).some(v => v !== null)", timeout=10000
            )
        snap = json.loads(page.evaluate("fetch('/api/snapshot').then(r => r.text())"))
        recent = {e["name"]: e["recent"] for e in snap["slos"]["slos"]}
        for slo in ("checkout", "browse"):
            assert 0 < max(t for t in recent[slo]["total"] if t is not None), recent[slo]
        sizes = page.evaluate(CANVASES)
        assert len(sizes) >= 4
        assert all(w > 0 and h > 0 and cw > 0 and ch > 0 for w, h, cw, ch in sizes), sizes
        assert 4 <= painted(page, "#slo-list")
        assert {"checkout", "browse"} == set(
            page.evaluate(
                "Array.from(document.querySelectorAll('#slo-list .slo')).map(e => e.dataset.slo)"
            )
        )
        assert "checkout" in page.inner_text("#assess")
        page.screenshot(path=str(ARTIFACTS / "lab-charts.png"), full_page=True)

        # The inventory outage: the API's breaker opens, and the page shows it live.
        applied = lines.wait("fault inventory-outage: applied", 30)
        page.wait_for_function(
            "window.__breaker.some(s => s[1] === 'open')", timeout=15000, polling=50
        )
        page.screenshot(path=str(ARTIFACTS / "lab-breaker-open.png"), full_page=True)
        shown = page.evaluate("window.__breaker")
        with FeedReader(store) as reader:
            opened = [
                e
                for e in reader.events(limit=5000)
                if e.policy_type == "circuit_breaker" and e.state == "open"
            ]
        assert opened, "the lab's store records no breaker opening"
        first = opened[0]
        assert "api" == first.source
        # Seen closed first (so the opening arrived live, not with the page), then open.
        assert "closed" == shown[0][1], shown
        key = f"circuit_breaker|api|{first.scope}|{first.name}"
        assert {key} == {k for _, _, k in shown}  # one breaker: the API's, on inventory
        seen_open = next(t for t, state, _ in shown if state == "open")
        assert applied - 0.5 <= first.time  # it opened because of the outage
        lag = seen_open - first.time
        assert -0.05 <= lag < LAG_LIMIT, (lag, shown, [e.time for e in opened])
        assert page.evaluate("window.ButtressDashboard.received.states") >= 2
        # The change log lists the opening too (its kind, as the API's publisher logged it).
        page.wait_for_function(
            "(kind) => Array.from(document.querySelectorAll('#events tr')).some("
            " r => r.textContent.includes(kind) && r.textContent.includes('open'))",
            arg=first.kind,
            timeout=5000,
        )

        # The outage ends: the breaker closes again, live, and its timeline shows the open spell.
        page.wait_for_function(
            "(() => { const b = window.__breaker; const i = b.findIndex(s => s[1] === 'open');"
            " return b.slice(i).some(s => s[1] === 'closed'); })()",
            timeout=15000,
            polling=50,
        )
        timeline = page.evaluate(
            """() => { const u = window.ButtressCharts.instances.find(
                           i => i.root.parentNode.id.startsWith('fig-brk-'));
                       return u ? u.data[1] : null; }"""
        )
        assert timeline is not None and 2 in timeline, timeline
        shown = page.evaluate("window.__breaker")
        page.screenshot(path=str(ARTIFACTS / "lab-breaker-closed.png"), full_page=True)
        assert [] == errors
        assert [] == external
        (ARTIFACTS / "lab-timing.txt").write_text(
            f"inventory outage applied (lab stderr): {applied:.3f}\n"
            f"breaker open recorded by the lab's API: {first.time:.3f}"
            f" ({first.time - applied:+.3f} s)\n"
            f"breaker open shown on the page: {seen_open:.3f} ({lag:+.3f} s after the store)\n"
            f"page states: {[(round(t - applied, 3), s) for t, s, _ in shown]}\n"
        )
    finally:
        if served is not None:
            stop(served)  # the dashboard first, then the lab: Ctrl-C mid-run
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        lines.thread.join(5)
        left = wait_no_marked(marker, 10)
        for pid in left:  # never leave the lab's processes behind, even when the test failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    err = lines.text()
    assert 130 == proc.returncode, err[-3000:]
    assert "interrupted: faults removed, every process stopped" in err
    assert "Traceback" not in err
    assert [] == left
    assert [] == marked_pids(marker)
    assert time.monotonic() - started < 70
