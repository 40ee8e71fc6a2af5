"""The lab's pure parts: hypotheses, the side-by-side table, scaling, load statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import SpecError
from buttress.lab.system.driver import Burst, LoadDriver, Sample, window_stats
from buttress.lab.system.figures import hypotheses as _hypotheses
from buttress.lab.system.load import load_lab
from buttress.lab.system.plan import scaled
from buttress.lab.system.report import render_table
from buttress.lab.system.spec import FaultSpec, ServiceSpec, instance_names
from buttress.spec import load_spec

from .helpers import SHOP


def _run(verdict: str, lost: int, acked: int = 100, valid: bool | None = True) -> dict[str, Any]:
    return {
        "slos": [
            {
                "name": "checkout",
                "objective": 99.5,
                "sli": 0.999 if verdict == "held" else 0.9,
                "verdict": verdict,
                "budget_consumed": 0.2 if verdict == "held" else 20.0,
            }
        ],
        "faults": [{"name": "outage", "budget_consumed": {"checkout": 0.1}}],
        "requests": {"checkout": {"good": 99, "total": 100, "p99": 0.05}},
        "history": {"valid": valid, "lost_count": lost, "acknowledged_count": acked},
        "breakers": [],
    }


def test_hypotheses_pass_only_when_every_expectation_is_met() -> None:
    lab = load_lab(SHOP)
    good = _hypotheses(lab, {"on": _run("held", 0), "off": _run("burned", 0)})
    assert [True, True, True, True] == [h["passed"] for h in good]
    # The SLO burned with policies on: the lab must fail.
    bad = _hypotheses(lab, {"on": _run("burned", 0), "off": _run("burned", 0)})
    assert [False, True, True, True] == [h["passed"] for h in bad]
    # An acknowledged order lost fails "nothing lost"; so does an invalid history without loss
    # (an order read back that was never written, or one reported failed yet stored).
    lost = _hypotheses(lab, {"on": _run("held", 1), "off": _run("burned", 0, valid=False)})
    assert [True, True, False, False] == [h["passed"] for h in lost]
    unread = _hypotheses(lab, {"on": _run("held", 0, valid=None), "off": _run("burned", 0)})
    assert "no final read" == unread[2]["observed"] and not unread[2]["passed"]


def test_the_table_puts_the_runs_side_by_side_and_says_what_failed() -> None:
    lab = load_lab(SHOP)
    runs = {"on": _run("burned", 0), "off": _run("burned", 2)}
    result = {
        "runs": runs,
        "hypotheses": _hypotheses(lab, runs),
        "passed": False,
        "elapsed": 3.0,
        "report": "r.html",
    }
    text = render_table(result)
    lines = text.splitlines()
    assert lines[0].split() == ["Buttress", "off"]
    assert "SLO checkout (99.5%)" in text and "90.00% burned" in text
    assert "FAIL  SLO checkout held with policies on outside datastore-crash: burned" in text
    assert "FAIL  no acknowledged order lost with policies off: 2 lost of 100 acknowledged" in text
    assert "a hypothesis FAILED" in text


@given(
    at=st.floats(0, 100, allow_nan=False),
    duration=st.floats(0.1, 100, allow_nan=False),
    scale=st.floats(0.01, 1, allow_nan=False),
)
def test_scaling_a_fault_keeps_its_shape(at: float, duration: float, scale: float) -> None:
    f = FaultSpec(name="f", kind="outage", target="x", at=at, duration=duration)
    lo, hi = scaled(f, scale)
    assert lo == pytest.approx(at * scale)
    assert hi - lo == pytest.approx(duration * scale)


def test_instances_are_named_after_their_service() -> None:
    assert ["api"] == instance_names("api", ServiceSpec(app="a:b"))
    assert ["p-1", "p-2", "p-3"] == instance_names("p", ServiceSpec(app="a:b", instances=3))


def test_a_burst_changes_the_rate_only_inside_its_window() -> None:
    lab = load_lab(SHOP)
    load = lab.experiments.load
    from buttress.chaos.checker import History

    d = LoadDriver(
        "http://x", load, duration=10, history=History(), bursts=[Burst("browse", 2, 4, 99)]
    )
    assert load.requests["browse"].rate == d.rate("browse", 1.99)
    assert 99 == d.rate("browse", 2.0) == d.rate("browse", 3.99)
    assert load.requests["browse"].rate == d.rate("browse", 4.0)
    assert load.requests["checkout"].rate == d.rate("checkout", 3.0)


def test_window_stats_counts_recent_samples_only() -> None:
    samples = [Sample("k", float(i), 0.01 * (i + 1), 200, i % 4 != 0) for i in range(100)]
    st_ = window_stats(samples, 50.0)
    assert 50 == st_["count"]
    assert pytest.approx(38 / 50) == st_["good"]  # 12 multiples of 4 in 50..99
    assert pytest.approx(0.01 * 100) == st_["p99"]
    assert {"count": 0, "good": 1.0, "p99": 0.0, "lag_p99": 0.0} == window_stats(samples, 1000.0)


def test_a_verdict_leaves_out_only_the_faults_it_names_and_says_so() -> None:
    lab = load_lab(SHOP)
    # Burned over the whole run (1500%), but 1450% of it during the datastore crash: held outside.
    crashed = _run("burned", 0)
    crashed["slos"][0]["budget_consumed"] = 15.0
    crashed["faults"].append({"name": "datastore-crash", "budget_consumed": {"checkout": 14.5}})
    on = _hypotheses(lab, {"on": crashed, "off": _run("burned", 0)})[0]
    assert on["passed"] is True
    assert on["hypothesis"] == "SLO checkout held with policies on outside datastore-crash"
    assert "held: 50% of the budget outside datastore-crash" in on["observed"]
    assert "1500% over the whole run, burned" in on["observed"]
    # The budget spent outside the crash (the outage's, or unattributed) still counts.
    crashed["faults"][-1]["budget_consumed"]["checkout"] = 13.0
    on = _hypotheses(lab, {"on": crashed, "off": _run("burned", 0)})[0]
    assert on["passed"] is False and on["observed"].startswith("burned: 200% of the budget")


def test_leaving_out_a_fault_the_plan_lacks_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "reliability.yaml"
    text = (SHOP / "reliability.yaml").read_text(encoding="utf-8")
    path.write_text(text.replace("except_during: [datastore-crash]", "except_during: [db-crash]"))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if "db-crash" in s)
    assert e.value.line == line
    assert "experiments.hypotheses.slos.checkout.except_during[0]" == e.value.field
    assert "no fault named 'db-crash'" in str(e.value) and "datastore-crash" in str(e.value)


def test_effects_must_be_once_where_required_and_never_twice_anywhere() -> None:
    from buttress.lab.system.figures import _effect, _exactly_once

    acknowledged = {"a", "b", "c"}
    once = _effect({"a": 1, "b": 1, "c": 1, "x": 3}, acknowledged)  # x: not acknowledged
    assert (3, 0, 0) == (once["once"], once["missing_count"], once["duplicated_count"])
    pending = _effect({"a": 1}, acknowledged)
    assert (1, ["b", "c"]) == (pending["once"], pending["missing"])
    twice = _effect({"a": 2, "b": 1, "c": 1}, acknowledged)
    assert ["a"] == twice["duplicated"]
    runs = {
        "typical": {"effects": {"reserved": pending}},
        "on": {"effects": {"reserved": once}},
        "off": {"effects": {"reserved": twice}},
    }
    hyps = {h["mode"]: h for h in _exactly_once(["on"], runs)}
    assert hyps["on"]["passed"] is True and "exactly once" in hyps["on"]["hypothesis"]
    assert hyps["typical"]["passed"] is True  # never reserved is not twice: left unfinished
    assert hyps["off"]["passed"] is False and "twice" in hyps["off"]["hypothesis"]
    # Required where it is missing: fails.
    assert _exactly_once(["typical"], runs)[0]["passed"] is False
