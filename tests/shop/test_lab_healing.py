"""Self-healing in the lab, for real: the supervised services on their own (a crash, a hang),
then `buttress lab examples/shop/healing.yaml` off against Buttress, and the issue's figure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from buttress.lab.system.healing import SupervisedServices
from buttress.lab.system.spec import HealingSpec
from buttress.lab.system.supervisor import free_port

from .helpers import SHOP, copy_shop, new_marker, run_lab, wait_no_marked


def _wait(predicate: object, services: SupervisedServices, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out; the supervisor's events: {services.events}"
        time.sleep(0.05)


def _serving(services: SupervisedServices, name: str, old_pid: int | None) -> bool:
    """A new run of ``name`` the supervisor has seen ready (only then does its liveness check
    run) and that answers the lab."""
    pid = services.pid(name)
    if pid is None or pid == old_pid:
        return False
    events = [e for e in services.events if e["child"] == name]
    started = [i for i, e in enumerate(events) if e["event"] == "child_started"]
    if not started or events[started[-1]]["pid"] != pid:
        return False
    if not any(e["event"] == "child_ready" for e in events[started[-1] :]):
        return False
    try:
        asyncio.run(services.restore(name, 0.2))
    except Exception:
        return False
    return True


@pytest.mark.usefixtures("lab_lock")
def test_supervised_services_come_back_after_a_crash_and_a_hang(tmp_path: Path) -> None:
    healing = HealingSpec(
        child={
            "backoff_initial": 0.05,
            # A probe may take up to a period (0.5 s): on a loaded 2-core machine a 0.2 s probe of
            # a healthy child can fail often enough to kill it again and again.
            "liveness_period": 0.5,
            "liveness_timeout": 1.5,
            "grace": 1,
        },
        liveness="/",
    )
    services = SupervisedServices(healing)
    port = free_port()
    services.add(
        "web",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        port=port,
        log=tmp_path / "web.log",
        ready_url=f"http://127.0.0.1:{port}/",
        env={},
    )
    services.start(20.0)
    try:
        first = services.pid("web")
        assert first is not None and first in services.pids().values()
        # A crash: the supervisor starts it again, on the same port, without the lab.
        services.kill("web")
        _wait(lambda: _serving(services, "web", first), services)
        second = services.pid("web")
        # A hang: alive, answering nothing; the liveness check fails and the supervisor restarts.
        os.kill(second, signal.SIGSTOP)  # type: ignore[arg-type]
        started = time.monotonic()
        _wait(lambda: _serving(services, "web", second), services)
        assert time.monotonic() - started < 8.0
    finally:
        killed = services.stop_all(grace=1.0)
    assert [] == killed and {} == services.pids()
    reasons = [e.get("reason", "") for e in services.events if e["event"] == "child_exited"]
    assert any("killed by the lab" in r for r in reasons), reasons
    assert any(r.startswith("liveness: check failing") for r in reasons), reasons
    assert "Serving HTTP" in (tmp_path / "web.log").read_text()  # its output went to its log


@pytest.mark.usefixtures("lab_lock")
def test_supervision_spends_under_a_quarter_of_the_budget_off_spends(tmp_path: Path) -> None:
    marker = new_marker()
    out = tmp_path / "report"
    done = run_lab(
        SHOP / "healing.yaml",
        out,
        marker,
        "--quick",
        "--json",
        "--runs",
        "off,buttress",
        timeout=300,
    )
    result = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    failed = [h for h in result.get("hypotheses", []) if h["passed"] is False]
    assert done.returncode in (0, 3), (failed, done.stderr[-3000:])
    assert [] == wait_no_marked(marker)
    assert ["off", "on"] == list(result["runs"])
    off, on = result["runs"]["off"], result["runs"]["on"]
    for run in (off, on):
        assert run["cleanup"]["clean"], run["cleanup"]
        assert 0 == run["history"]["lost_count"] and run["history"]["valid"] is True
        for f in run["faults"]:
            assert f["applied_at"] is not None and f["removed_at"] is not None, f
    # Without a supervisor nothing restarted the datastore before the end of each window.
    assert "healing" not in off
    for f in off["faults"]:
        assert (
            f["time_to_recover"] is not None
            and f["time_to_recover"] >= f["planned"][1] - f["planned"][0]
        )
    # Under supervision: the crash loop's three exits and the hang were restarted by the
    # supervisor, each fault recovered long before its window ended.
    healing = on["healing"]
    reasons = [r["reason"] for r in healing["restarts"] if r["instance"] == "datastore"]
    assert sum("exited 3" in r for r in reasons) >= 3, reasons
    assert any(r.startswith("liveness") for r in reasons), reasons
    by_name = {f["name"]: f for f in on["faults"]}
    for name in ("datastore-crash-loop", "datastore-hang"):
        ttr = by_name[name]["time_to_recover"]
        assert ttr is not None and ttr < 8.0, by_name[name]
    # Remediation switched the degraded mode on whenever checkout's burn signal held for the
    # rule's second (healing.yaml: `for: 1s`, ticks every 0.5 s), only then, and journaled it.
    # How long checkout burns depends on how fast the supervisor mends (usually the leak's
    # restart burns for a few seconds; in about one run in ten nothing burns for a second).
    burns = [b for b in healing["burns"] if b["slo"] == "checkout"]
    held = [b for b in burns if b["to"] - b["from"] >= 1.2]
    for b in held:
        assert any(
            m["on_at"] <= b["to"] + 0.1 and (m["off_at"] is None or m["off_at"] >= b["from"])
            for m in healing["modes"]
        ), (b, healing)
    for m in healing["modes"]:
        assert m["mode"] == "essential-only"
        assert any(b["from"] + 0.9 <= m["on_at"] <= b["to"] + 0.1 for b in burns), (m, burns)
    switched = [e for e in healing["journal"] if e["action"] == "mode essential-only"]
    assert len(switched) == len(healing["modes"]), healing
    assert all(e["outcome"] == "done" for e in healing["journal"])
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert "Self-healing" in report
    assert ("switched the system to its degraded mode essential-only" in report) == bool(
        healing["modes"]
    )
    assert any(r[0] == "restarts by the supervisor" for r in result["side_by_side"])
    # The figure: crash loop and hang each spend under a quarter of off's budget.
    figure = [h for h in result["hypotheses"] if "under supervision" in h["hypothesis"]]
    assert {"datastore-crash-loop", "datastore-hang"} <= {
        n
        for h in figure
        for n in ("datastore-crash-loop", "datastore-hang")
        if n in h["hypothesis"]
    }
    if on["driver"]["starved"]:
        assert all(h["passed"] in (True, None) for h in figure), figure
        return
    # In every run that was not starved (the api's wedged connection pool that made it fail in
    # half the runs is gone: docs/shop-lab.md, "It used to hold in half the runs").
    assert all(h["passed"] is True for h in figure), figure


@pytest.mark.usefixtures("lab_lock")
def test_a_supervised_service_that_cannot_start_is_named_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    shop = copy_shop(tmp_path)
    (shop / "shop" / "payments.py").write_text(
        "raise RuntimeError('payments cannot read its key file')\n", encoding="utf-8"
    )
    text = (shop / "healing.yaml").read_text(encoding="utf-8")
    (shop / "healing.yaml").write_text(text.replace("intensity: 10", "intensity: 1"), "utf-8")
    marker = new_marker()
    done = run_lab(
        shop / "healing.yaml", tmp_path / "out", marker, "--runs", "buttress", timeout=90
    )
    assert 2 == done.returncode, done.stderr[-3000:]
    assert "Traceback" not in done.stderr.split("--- last lines of")[0]
    assert "service 'payments-1' failed to start: exited 1 before it was ready" in done.stderr
    assert "gave up" in done.stderr  # the supervisor's intensity was exceeded: it escalated
    assert "payments cannot read its key file" in done.stderr  # why: the end of its log
    assert [] == wait_no_marked(marker)
