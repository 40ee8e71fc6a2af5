"""`buttress lab --prometheus` for real: Debian's Prometheus and Alertmanager on loopback ports.

* a real Prometheus scraping a real service (a /metrics endpoint with Buttress's SLI counter) and
  evaluating the rules Buttress generates, time compressed; its alerts compared with the embedded
  evaluator on the same counts and with the hand-computed firing times; the same alerts routed by a
  real Alertmanager to the incident receiver, opened and then resolved;
* one `buttress lab examples/shop --quick --prometheus --runs off` run: the agreement
  figure holds, incidents were opened, and nothing is left running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import prometheus_client
import pytest

from _servers import UvicornThread
from buttress.lab.system.alerts import TOLERANCE
from buttress.lab.system.prometheus import PromStack
from buttress.slo.spec import SLOSpec
from buttress.telemetry.prometheus import SLICounter

from .helpers import (
    ROOT,
    SHOP,
    lab_command,
    lab_env,
    marked_pids,
    new_marker,
    run_lab,
    wait_no_marked,
)

SLO = SLOSpec.model_validate(
    {
        "name": "checkout",
        "service": "test",
        "objective": 99.0,
        "window": "30d",
        "sli": {"kind": "latency", "threshold": 2.0, "pipeline": "checkout"},
    }
)
BAD_FROM, BAD_UNTIL, END = 3.0, 11.0, 20.0
"""Seconds from the start: half the events are bad in [BAD_FROM, BAD_UNTIL); the load stops at
END."""


def drive(counter: SLICounter, wall0: float, stop: threading.Event) -> None:
    """4 events every 0.1 s (40 a second), half of them bad while the fault lasts."""
    tick = 0
    while not stop.is_set():
        t = wall0 + tick * 0.1
        if t - wall0 >= END:
            return
        time.sleep(max(0.0, t - time.time()))
        bad = 2 if BAD_FROM <= t - wall0 < BAD_UNTIL else 0
        counter.record("checkout", 4 - bad, 4)
        tick += 1


def wait_for(what: str, probe: object, timeout: float = 20.0) -> object:
    assert callable(probe)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.usefixtures("lab_lock")
def test_real_prometheus_agrees_with_the_embedded_evaluator(tmp_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    counter = SLICounter(["checkout"], registry=registry)
    stop = threading.Event()
    with UvicornThread(prometheus_client.make_asgi_app(registry)) as service:
        stack = PromStack([SLO], "test", {"svc-1": ("svc", service.port)}, tmp_path)
        try:
            stack.spawn()
            stack.wait_ready()
            wall0 = time.time()
            driver = threading.Thread(target=drive, args=(counter, wall0, stop))
            driver.start()
            driver.join(END + 5)
            time.sleep(2.0)
            result = stack.compared(wall0)

            def page_resolved() -> bool:
                incidents = stack.incidents(wall0)
                return any(i["tier"] == "page-1h" and i["state"] == "resolved" for i in incidents)

            wait_for("the page-1h incident resolved", page_resolved)
            incidents = stack.incidents(wall0)
        finally:
            stop.set()
            killed = stack.stop()
    assert [] == killed
    assert {} == stack.pids()
    assert not stack.tmp.exists()

    rows = {r["tier"]: r for r in result["alerts"]}
    # Every tier fired on both sides, within one evaluation plus one scrape interval.
    assert {"page-1h", "page-6h", "ticket-1d", "ticket-3d"} == set(rows), result
    for r in rows.values():
        assert r["agree"], r
        assert r["difference"] is not None
        assert abs(r["difference"]) <= TOLERANCE
    # By hand, half the events bad from 3 s on.  The evaluator's window of W steps holds W whole
    # seconds of events (W scrapes' increments); Prometheus's rate() over [T - W, T] holds the
    # increase from its first sample to its last, W - 1 scrape intervals of events, scaled to W.
    # page-6h (6%; its windows, 6 min and 30 s, hold everything since the start):
    # 0.5 (t - 3) / t > 0.06 from t = 3.41 s.  page-1h (14.4%): its 60 s window from
    # 0.5 (t - 3) / t > 0.144, 4.21 s; its 5 s window (5 s of events) from 3 + 1.44 = 4.44 s.
    # Seen at most a scrape and an evaluation interval after the events.
    assert 3.41 <= rows["page-6h"]["embedded"] <= 3.41 + TOLERANCE
    assert 4.44 <= rows["page-1h"]["embedded"] <= 4.44 + TOLERANCE
    assert 4.21 <= rows["page-1h"]["prometheus"] <= 4.44 + TOLERANCE
    # page-1h resolves once its 5 s window holds less than 14.4% bad: 5 s of events from
    # 0.5 (11 - (t - 5)) / 5 < 0.144, t > 14.56 s; Prometheus's 4 s, from its first sample
    # s > 11 - 4 x 0.288 = 9.85 s, at most 5 s before the evaluation: t > 14.85 - 1.
    assert 14.56 <= rows["page-1h"]["embedded_resolved"] <= 14.56 + TOLERANCE
    assert 13.85 <= rows["page-1h"]["prometheus_resolved"] <= 14.56 + TOLERANCE

    # Alertmanager routed each tier to the receiver: one incident per tier (grouped by alert, SLO
    # and tier), detected within a second of Prometheus firing it; page-1h resolved by Alertmanager.
    by_tier = {i["tier"]: i for i in incidents}
    assert {"page-1h", "page-6h", "ticket-1d", "ticket-3d"} <= set(by_tier)
    for tier, incident in by_tier.items():
        if tier in rows:
            assert incident["slo"] == "checkout"
            assert abs(incident["detected"] - rows[tier]["prometheus"]) <= 1.0, incident
    page = by_tier["page-1h"]
    assert page["state"] == "resolved"
    assert page["resolved"] >= rows["page-1h"]["prometheus_resolved"] - 0.5


@pytest.mark.usefixtures("lab_lock")
def test_quick_lab_with_prometheus_agrees_and_leaves_nothing(tmp_path: Path) -> None:
    marker = new_marker()
    out = tmp_path / "report"
    # The run without protection only: its alerts fire and its incidents open, which is what
    # there is to compare (a Buttress run added 35 s to the serial pass and little to check).
    done = run_lab(SHOP, out, marker, "--quick", "--prometheus", "--runs", "off", "--json")
    result = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    assert done.returncode in (0, 3), f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert [] == wait_no_marked(marker)  # services, proxy, Prometheus, Alertmanager, receiver
    hyps = result["hypotheses"]
    agreement = [h for h in hyps if "Prometheus and the embedded" in h["hypothesis"]]
    assert ["off"] == [h["mode"] for h in agreement]
    assert all(h["passed"] for h in agreement), agreement
    off = result["runs"]["off"]
    for run in (off,):
        assert [] == run["killed_at_stop"]
        prom = run["prometheus"]
        assert (60.0, 2.0) == (prom["factor"], prom["tolerance"])
        for row in prom["alerts"]:
            assert row["agree"], row
        assert not list(Path(prom["dir"]).glob("tsdb"))  # the TSDB lived in a temporary dir
        assert (Path(prom["dir"]) / "rules.yml").exists()
        assert len(prom["detection"]) == len(run["faults"])
    # Without protection the checkout SLO burns: Prometheus pages, the receiver opens incidents,
    # and the first fault is detected.
    fired = {(r["slo"], r["tier"]) for r in off["prometheus"]["alerts"] if r["prometheus"]}
    assert ("checkout", "page-1h") in fired
    assert off["prometheus"]["incidents"]
    first = off["prometheus"]["detection"][0]
    assert first["incident"] is not None and first["time_to_detect"] > 0
    # The report shows the comparison and the incidents.
    html = (out / "report.html").read_text()
    assert "Alerts: Prometheus and the embedded evaluator" in html
    assert "Time to detect" in html or "time to detect" in html


def _marked_commands(marker: str) -> list[str]:
    names = []
    for pid in marked_pids(marker):
        try:
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode())
        except OSError:
            continue
    return names


@pytest.mark.usefixtures("lab_lock")
def test_sigint_mid_run_stops_prometheus_and_alertmanager_too(tmp_path: Path) -> None:
    marker = new_marker()
    before = set(Path(tempfile.gettempdir()).glob("buttress-lab-prom-*"))
    proc = subprocess.Popen(
        lab_command(SHOP, tmp_path / "out", "--quick", "--prometheus", "--runs", "off"),
        env=lab_env(marker),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the lab writes a line per fault applied
            seen.append(line)
            if "fault payments-latency: applied" in line:
                break
        else:
            raise AssertionError("".join(seen))
        running = _marked_commands(marker)
        assert any(c.endswith("/prometheus") for c in running), running
        assert any(c.endswith("prometheus-alertmanager") for c in running), running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=40)
    finally:
        proc.kill()
    assert 130 == proc.returncode, err
    assert "Traceback" not in err
    assert [] == wait_no_marked(marker)
    assert before == set(Path(tempfile.gettempdir()).glob("buttress-lab-prom-*"))
