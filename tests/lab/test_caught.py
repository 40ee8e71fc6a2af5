"""Requests a fault caught in flight (buttress.lab.system.caught) and what ``except_during`` leaves
out with them, on synthetic samples and runs (no processes)."""

from __future__ import annotations

from typing import Any

import pytest

from buttress.lab.system.caught import caught_budget, caught_in_flight
from buttress.lab.system.driver import Sample

# The surge's arrivals are charged to it until the outage is applied at 10 s.
WINDOWS = [("surge", 3.0, 10.0), ("outage", 10.0, 16.0)]
KINDS = {"chart": "chart", "chart-latency": "chart", "lookup": "lookup"}


def _bad(kind: str, start: float, latency: float) -> Sample:
    return Sample(kind, start, latency, 503, False)


def test_a_bad_request_in_flight_when_a_fault_struck_is_that_faults_catch() -> None:
    samples = [
        _bad("chart", 9.99, 0.02),  # sent in the surge's window, cut by the outage at 10 s
        _bad("chart", 1.0, 0.5),  # bad long before any fault: caught by nothing
        _bad("chart", 10.5, 0.01),  # arrived during the outage: its own window, not a catch
        Sample("chart", 9.98, 0.05, 200, True),  # in flight at 10 s but good: not counted
        _bad("lookup", 2.99, 0.02),  # in flight when the surge began, charged to no fault
        _bad("reports", 9.99, 0.02),  # a kind no SLO is about
    ]
    caught = caught_in_flight(samples, WINDOWS, KINDS)
    assert {"chart": {"surge": 1}, "chart-latency": {"surge": 1}} == caught["outage"]
    assert {"lookup": {"": 1}} == caught["surge"]


def test_a_request_in_flight_across_two_applications_is_the_last_ones() -> None:
    # Sent at 2.5 s, timed out at 12.5 s: in flight when the surge and the outage were applied.
    caught = caught_in_flight([_bad("lookup", 2.5, 10.0)], WINDOWS, KINDS)
    assert {"outage": {"lookup": {"": 1}}} == caught


def _run(caught: dict[str, dict[str, int]], outage_budget: float) -> dict[str, Any]:
    return {
        "slos": [{"name": "chart", "request_kind": "chart", "objective": 99.0}],
        "requests": {"chart": {"total": 200}},
        "faults": [
            {"name": "surge", "budget_consumed": {"chart": 0.5}},
            {"name": "outage", "budget_consumed": {"chart": outage_budget},
             "caught_in_flight": {"chart": caught}},
        ],
    }  # fmt: skip


def test_except_during_leaves_out_what_the_fault_caught_unless_already_left_out() -> None:
    # 200 charts at 99%: a budget of 2 bad requests, so each bad one is 50% of it.
    run = _run({"surge": 1, "": 1}, 5.0)
    assert (pytest.approx(1.0), 2) == caught_budget(run, "chart", ["outage"])
    # The one that arrived in the surge's window is left out with the surge already.
    assert (pytest.approx(0.5), 1) == caught_budget(run, "chart", ["outage", "surge"])
    assert (0.0, 0) == caught_budget(run, "chart", ["surge"])
    assert (0.0, 0) == caught_budget(_run({}, 5.0), "chart", ["outage"])


def test_a_run_without_requests_of_the_kind_leaves_nothing_out() -> None:
    run = _run({"": 3}, 1.0)
    run["requests"] = {}
    assert (0.0, 0) == caught_budget(run, "chart", ["outage"])


@pytest.mark.parametrize("latency", [0.0, 0.009])
def test_a_request_answered_before_the_fault_was_applied_is_not_caught(latency: float) -> None:
    assert {} == caught_in_flight([_bad("chart", 9.99, latency)], WINDOWS, KINDS)


def test_the_chart_verdict_leaves_out_the_outage_and_what_it_caught_and_says_so() -> None:
    from buttress.lab.system.figures import _judged_verdict

    # 200 charts at 99%: 20 bad during the outage and 2 caught in flight (arrived in the surge's
    # window): 1100% over the run, 1000% + 100% of it left out: nothing left.
    on = _run({"surge": 2}, 10.0)
    on["slos"][0] |= {"verdict": "burned", "budget_consumed": 11.0}
    got, observed = _judged_verdict(on, "chart", ["outage"])
    assert "held" == got
    assert observed.startswith(
        "held: 0% of the budget outside outage and the 2 bad request(s) it caught in flight"
    )
    # Three more bad charts outside the outage: burned.
    on["slos"][0]["budget_consumed"] = 12.5
    got, observed = _judged_verdict(on, "chart", ["outage"])
    assert "burned" == got and observed.startswith("burned: 150% of the budget outside outage and")
    # Without a catch the sentence is the one it always was.
    got, observed = _judged_verdict(_run({}, 10.0) | {"slos": on["slos"]}, "chart", ["outage"])
    assert observed.startswith("burned: 250% of the budget outside outage (")
