"""Self-healing in the shop lab, its pure and small parts: the fault kinds' validation, the burn
signal, the supervised hypothesis, the report's rows, and the shop's own fault hooks run as real
processes (tests/shop/test_lab_healing.py runs the whole lab)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import SpecError
from buttress.lab.system.driver import Sample
from buttress.lab.system.healing import (
    ControlFiles,
    burn_rates,
    healing_rows,
    healing_sentences,
    healing_tables,
    supervised_hypotheses,
)
from buttress.lab.system.load import load_lab
from buttress.lab.system.spec import BurnSignalSpec
from buttress.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
HEALING = SHOP / "healing.yaml"


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = HEALING.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "healing.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_healing_yaml_runs_the_same_shop_as_reliability_yaml() -> None:
    healing, shop = load_spec(HEALING), load_spec(SHOP / "reliability.yaml")
    assert healing.policies == shop.policies
    assert healing.slos == shop.slos
    assert healing.experiments is not None and shop.experiments is not None
    assert healing.experiments.system == shop.experiments.system
    lab = load_lab(HEALING)
    assert lab.app_dir == SHOP.resolve()  # the services are imported from examples/shop
    assert {"crash_loop", "hang", "leak"} == {f.kind for f in lab.experiments.plan}


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (
            "kind: crash_loop, target: datastore",
            "kind: crash_loop, target: payments",
            "experiments.plan[0].target",
            "unknown instance 'payments'",
        ),
        ("leak_rate: 10}", "}", "experiments.plan[2]", "a leak needs leak_rate:"),
        (
            "kind: leak, target: datastore",
            "kind: slow, target: datastore",
            "experiments.plan[2]",
            "leak_rate applies to leak faults, not 'slow'",
        ),
        (
            "leak_rate: 10}",
            "leak_rate: 10, slowdown: 10}",
            "experiments.plan[2]",
            "slowdown applies to slow faults, not 'leak'",
        ),
        (
            "kind: leak, target: datastore, at: 39s, duration: 8s, leak_rate: 10}",
            "kind: slow, target: datastore, at: 39s, duration: 8s}",
            "experiments.plan[2]",
            "a slow fault needs slowdown:",
        ),
        (
            "kind: leak, target: datastore, at: 39s, duration: 8s, leak_rate: 10}",
            "kind: slow, target: datastore, at: 39s, duration: 8s, slowdown: 1}",
            "experiments.plan[2].slowdown",
            "",
        ),
        (
            "kind: leak, target: datastore, at: 39s, duration: 8s, leak_rate: 10}",
            "kind: slow, target: store, at: 39s, duration: 8s, slowdown: 5}",
            "experiments.plan[2].target",
            "unknown instance 'store'",
        ),
        (
            "kind: hang, target: datastore, at: 21s, duration: 15s}",
            "kind: hang, target: datastore, at: 21s, duration: 15s, crashes: 2}",
            "experiments.plan[1]",
            "crashes applies to crash_loop faults, not 'hang'",
        ),
        (
            "faults: [datastore-crash-loop, datastore-hang]",
            "faults: [datastore-crash-loop, datastore-hung]",
            "experiments.hypotheses.supervised.faults[1]",
            "no fault named 'datastore-hung'",
        ),
        (
            "      api: {liveness_period: 1s",
            "      apy: {liveness_period: 1s",
            "experiments.healing.services.apy",
            "unknown service 'apy'",
        ),
        (
            "      liveness_timeout: 1s\n",
            "      liveness_timeout: -1s\n",
            "experiments.healing.child.liveness_timeout",
            "",
        ),
    ],
)
def test_bad_healing_input_is_located(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(SpecError) as e:
        load_spec(path)
    text = str(e.value)
    assert text.startswith(f"{path}:"), text  # file:line:column first
    assert field in text and message in text, text


def test_a_supervised_hypothesis_needs_the_supervised_run(tmp_path: Path) -> None:
    text = HEALING.read_text(encoding="utf-8")
    start, end = text.index("  healing:\n"), text.index("  hypotheses:\n")
    path = tmp_path / "healing.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(SpecError, match=r"supervised: needs experiments.healing"):
        load_spec(path)


def _sample(kind: str, start: float, good: bool, latency: float = 0.1) -> Sample:
    return Sample(kind, start, latency, 200 if good else 503, good)


@given(
    st.lists(
        st.tuples(st.sampled_from(["checkout", "browse"]), st.floats(0, 20), st.booleans()),
        max_size=80,
    ),
    st.floats(1, 20),
)
def test_the_burn_signal_is_the_burn_rate_of_the_last_window(
    raw: list[tuple[str, float, bool]], now: float
) -> None:
    # Samples arrive in completion order, as the driver appends them.
    samples = sorted((_sample(k, t, g) for k, t, g in raw), key=lambda s: s.start + s.latency)
    burn = BurnSignalSpec(window=3.0)
    got = burn_rates(samples, {"checkout": 0.995, "browse": 0.99}, now, burn)
    for kind, objective in (("checkout", 0.995), ("browse", 0.99)):
        window = [
            s
            for s in samples
            if s.kind == kind and now - 3.0 <= s.start + s.latency and s.start + s.latency <= now
        ]
        later = [s for s in samples if s.kind == kind and s.start + s.latency > now]
        seen = window + later  # what had completed by the time the driver appended them
        rate, n = got[kind]
        assert n == len(seen)
        bad = sum(not s.good for s in seen)
        assert rate == pytest.approx((bad / n) / (1 - objective) if n else 0.0)


def _run(spent: dict[str, float], *, starved: bool = False) -> dict[str, Any]:
    return {
        "faults": [
            {"name": name, "kind": "hang", "budget_consumed": {"checkout": v, "browse": 0.0}}
            for name, v in spent.items()
        ],
        "driver": {"starved": starved},
    }


def test_the_supervised_hypothesis_compares_each_fault_with_the_off_run() -> None:
    lab = load_lab(HEALING)
    off = _run({"datastore-crash-loop": 20.0, "datastore-hang": 30.0, "datastore-leak": 5.0})
    on = _run({"datastore-crash-loop": 4.0, "datastore-hang": 9.0, "datastore-leak": 5.0})
    got = supervised_hypotheses(lab, {"off": off, "on": on})
    # One per named fault and SLO the off run spent budget on (browse spent none: not judged).
    assert [True, False] == [h["passed"] for h in got]
    assert "20% of it" in got[0]["observed"] and "30% of it" in got[1]["observed"]
    assert "datastore-hang under supervision spends at most 25%" in got[1]["hypothesis"]
    starved = supervised_hypotheses(lab, {"off": off, "on": {**on, "driver": {"starved": True}}})
    assert [True, None] == [h["passed"] for h in starved]
    assert [] == supervised_hypotheses(lab, {"on": on})  # nothing to compare with


def test_the_report_shows_restarts_recovery_journal_and_modes() -> None:
    fault = {"name": "datastore-hang", "kind": "hang", "budget_consumed": {}}
    off = {"faults": [fault | {"time_to_recover": 16.9}], "duration": 50.0}
    healing = {
        "restarts": [{"time": 22.1, "instance": "datastore", "reason": "liveness: check failing"}],
        "journal": [
            {
                "time": 23.0,
                "rule": "degrade",
                "action": "mode essential-only",
                "signal": "slo_burn checkout",
                "figures": {"burn_rate": 150.0},
                "outcome": "done",
            }
        ],
        "modes": [{"mode": "essential-only", "on_at": 23.0, "off_at": 30.5}],
    }
    on = {"faults": [fault | {"time_to_recover": 3.4}], "duration": 50.0, "healing": healing}
    runs = {"off": off, "on": on}
    rows = healing_rows(runs, ["off", "on"])
    assert ("time to recover from datastore-hang", "16.9 s", "3.4 s") == rows[0]
    assert ("restarts by the supervisor", "-", "1") == rows[1]
    assert ("degraded mode (times, total)", "-", "1x, 7.5 s") == rows[2]
    tables = healing_tables(runs)
    assert [("Buttress", "22.1 s", "datastore", "liveness: check failing")] == tables["restarts"]
    assert "burn_rate 150.0" in tables["journal"][0]
    assert [("Buttress", "essential-only", "23.0 s", "30.5 s")] == tables["modes"]
    (_, switched) = healing_sentences(runs)
    assert "essential-only at 23.0 s" in switched and "off again at 30.5 s" in switched


# -- the shop's fault hooks, as real processes --------------------------------------------------


def _shop_env(control: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SHOP), "BUTTRESS_LAB_CONTROL": str(control)}


def test_a_crash_loop_fails_exactly_the_starts_it_asks_for(tmp_path: Path) -> None:
    control = ControlFiles(tmp_path)
    control.write("datastore", {"crash_loop": 2})
    path = control.path("datastore")
    codes = []
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", "import shop"],
            env=_shop_env(path),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        codes.append(done.returncode)
    assert [3, 3, 0] == codes  # two crashes at start, then a clean start
    assert {"crash_loop": 0} == json.loads(path.read_text())


def _watching(path: Path, shows: str) -> subprocess.Popen[str]:
    """A process that plays the shop's lab faults from the control file ``path`` and prints
    ``shows`` (an expression over ``leak``, its watcher, and ``labfaults``) every 50 ms."""
    program = (
        "import sys, time\n"
        "from shop import labfaults\n"
        "leak = labfaults.Leak(sys.argv[1]); leak.start()\n"
        "while True:\n"
        f"    time.sleep(0.05); print({shows}, flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", program, str(path)],
        env=_shop_env(path),
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_running_process_slows_down_when_asked_and_back_when_cleared(tmp_path: Path) -> None:
    control = ControlFiles(tmp_path)
    control.clear("datastore")
    path = control.path("datastore")
    proc = _watching(path, "labfaults.slowdown()")

    def reads(value: float) -> bool:
        assert proc.stdout is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if float(proc.stdout.readline()) == value:
                return True
        return False

    try:
        assert reads(1.0)
        control.write("datastore", {"slow": 12.5})
        assert reads(12.5)  # the catalogue query now takes 12.5 times as long
        control.clear("datastore")
        assert reads(1.0)
        assert proc.poll() is None  # alive throughout: only its capacity changed
    finally:
        proc.kill()
        proc.wait()


def test_a_running_process_crashes_and_leaks_when_asked(tmp_path: Path) -> None:
    control = ControlFiles(tmp_path)
    control.clear("api")
    path = control.path("api")
    proc = _watching(path, "round(leak.kept_mb, 1)")
    try:
        assert proc.stdout is not None
        assert 0.0 == float(proc.stdout.readline())
        control.write("api", {"leak": 40})
        deadline = time.monotonic() + 10
        kept = 0.0
        while kept < 8 and time.monotonic() < deadline:
            kept = float(proc.stdout.readline())
        assert kept >= 8  # megabytes really kept, at about 40 a second
        control.write("api", {"crash_loop": 1})
        assert 3 == proc.wait(timeout=10)  # the watcher notices the file and exits
    finally:
        proc.kill()
        proc.wait()


def test_the_plan_asks_for_a_slowdown_for_its_window_and_clears_it(tmp_path: Path) -> None:
    """The ``slow`` fault through the lab's own plan: the control file asks for the slowdown from
    the fault's start and is cleared at its end; the process is never touched (no supervisor
    call, no recovery to track)."""
    import asyncio

    from buttress.lab.system.plan import FaultPlan
    from buttress.lab.system.spec import FaultSpec
    from buttress.ports import free_port

    control = ControlFiles(tmp_path / "control")
    fault = FaultSpec(name="slow-db", kind="slow", target="datastore", at=0.1, duration=0.4,
                      slowdown=8)  # fmt: skip
    plan = FaultPlan(
        [fault],
        scale=1.0,
        proxy_url=f"http://127.0.0.1:{free_port()}",  # no proxy: a slow fault does not use it
        routes={"datastore": ["datastore"]},
        supervisor=None,  # any call on it would fail the test
        control=control,
    )
    # (faults applied at the read, what the control file asked): the plan writes the file and
    # marks the fault applied or removed in one step of the loop, so every read sees both agree.
    seen: list[tuple[list[str], Any]] = []

    def read() -> None:
        seen.append((plan.active(), json.loads(control.path("datastore").read_text()).get("slow")))

    async def main() -> None:
        control.clear("datastore")
        read()  # before the run
        run = asyncio.create_task(plan.run(time.monotonic()))
        while not run.done():
            await asyncio.sleep(0.02)
            read()
        await run
        read()  # after it

    asyncio.run(main())
    assert seen[0] == ([], None) and seen[-1] == ([], None)
    during = [slow for active, slow in seen if active == ["slow-db"]]
    assert during and all(slow == 8 for slow in during)
    assert all(slow is None for active, slow in seen if not active)
    assert [f["name"] for f in [a.to_json() for a in plan.faults]] == ["slow-db"]
    applied = plan.faults[0]
    assert applied.applied_at is not None and applied.removed_at is not None
    assert 0.35 <= applied.removed_at - applied.applied_at <= 0.6
    assert "time_to_recover" not in applied.to_json()  # not a process fault
