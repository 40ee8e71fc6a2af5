"""Retry-storm: the issue's figures on a fixed seed, determinism, the metrics' definitions."""

from __future__ import annotations

import math

import pytest

from buttress import ConfigError
from buttress.lab.sim import STRATEGIES, RetryStorm, RetryStormParams, ScenarioReport, to_json
from buttress.lab.sim.measure import recovery_time
from buttress.lab.sim.scenarios.retry_storm import arrival_times


def _recovery(report: ScenarioReport, name: str) -> float:
    r = report.result(name).recovery_seconds
    return math.inf if r is None else r


def test_default_pipeline_keeps_amplification_at_or_under_1_25(
    storm_report: ScenarioReport,
) -> None:
    assert storm_report.result("buttress").load_amplification <= 1.25


def test_naive_retries_amplify_load_more_than_2_5_times(storm_report: ScenarioReport) -> None:
    assert storm_report.result("naive").load_amplification > 2.5


def test_default_recovers_at_least_as_fast_as_backoff_without_budget(
    storm_report: ScenarioReport,
) -> None:
    assert _recovery(storm_report, "buttress") <= _recovery(storm_report, "backoff")
    # ...and it does recover within the run: the retry budget alone as fast as not retrying at
    # all; the breaker adds at most one break (1 s) plus its probes' round trip.
    assert storm_report.result("buttress").recovery_seconds is not None
    assert _recovery(storm_report, "budget") <= _recovery(storm_report, "no-retry")
    assert _recovery(storm_report, "buttress") <= _recovery(storm_report, "no-retry") + 1.5


def test_the_breaker_takes_the_failing_load_off_the_dependency(
    storm_report: ScenarioReport,
) -> None:
    """With the breaker, most attempts during the outage are refused locally: fewer server calls
    than requests, the peak stays under capacity, the queue stays short, and the success rate
    pays at most the requests refused while the breaker waits out its last break."""
    p = RetryStormParams()
    budget, guarded = storm_report.result("budget"), storm_report.result("buttress")
    assert guarded.load_amplification < 1.0 < budget.load_amplification
    assert guarded.peak_load_over_capacity < 1.0
    assert guarded.extra["max_queue"] < budget.extra["max_queue"]
    assert guarded.extra["breaker_opens"] >= p.instances  # every instance's breaker opened
    refused = guarded.extra["local_refusals"]
    assert (
        refused
        == guarded.extra["breaker_rejections"]
        == guarded.extra["give_up_reasons"]["not_retryable"]
    )
    # Each refusal ends its request (CircuitOpen is never retried); a refused request would have
    # failed anyway during the outage, so the cost is the refusals after it: under 1 s of traffic.
    lost = budget.success_rate - guarded.success_rate
    assert 0 <= lost < p.offered_rate * 1.0 / guarded.extra["client_requests"]


def test_the_storm_is_what_the_model_says(storm_report: ScenarioReport) -> None:
    """Consistency of the counts behind the table, strategy by strategy."""
    p = RetryStormParams()
    requests = {r.extra["client_requests"] for r in storm_report.results}
    assert {len(arrival_times(p, 1))} == requests  # every strategy faced the same requests
    n = requests.pop()
    for r in storm_report.results:
        assert r.extra["server_calls"] == pytest.approx(r.load_amplification * n)
        assert r.extra["successes"] == pytest.approx(r.success_rate * n)
        assert r.extra["client_timeouts"] >= r.extra["wasted_services"]
    no_retry = storm_report.result("no-retry")
    assert 1.0 == no_retry.load_amplification
    # Without retries, requests completing during the outage fail and the others succeed.
    outage_share = (p.outage_end - p.outage_start) / p.duration
    assert 1 - outage_share == pytest.approx(no_retry.success_rate, abs=0.01)
    # Naive retries burn their 5 attempts; a full queue is what sustains the storm.
    naive = storm_report.result("naive")
    assert p.queue_limit == naive.extra["max_queue"]
    assert naive.recovery_seconds is None
    assert naive.peak_load_over_capacity > 2.5


def test_the_budget_bounds_retries_by_its_formula(storm_report: ScenarioReport) -> None:
    """retries <= ratio x requests + min_per_second x ttl per window, summed over the windows."""
    p = RetryStormParams()
    for name in ("budget", "buttress"):
        r = storm_report.result(name)
        attempts = r.extra["server_calls"] + r.extra["local_refusals"]
        retries = attempts - r.extra["client_requests"]
        windows = math.ceil(r.extra["simulated_until"] / 10.0) + 1
        assert 0 < retries <= 0.2 * r.extra["client_requests"] + 10 * 10.0 * p.instances * windows
    # Without a breaker the budget, not the attempts, stopped most retries.
    reasons = storm_report.result("budget").extra["give_up_reasons"]
    assert reasons["budget"] > reasons["attempts"]


def test_same_seed_same_figures_other_seed_other_figures(storm_report: ScenarioReport) -> None:
    storm = RetryStorm()
    buttress = next(s for s in STRATEGIES if s.name == "buttress")
    again = storm.run_strategy(buttress, 1)
    assert storm_report.result("buttress") == again
    other = storm.run_strategy(buttress, 2)
    assert storm_report.result("buttress").extra != other.extra
    # The property the issue asks for holds on other seeds too.
    assert other.load_amplification <= 1.25


def test_json_carries_the_table_figures(storm_report: ScenarioReport) -> None:
    doc = storm_report.as_dict()
    assert ["no-retry", "naive", "backoff", "budget", "buttress"] == [
        s["name"] for s in doc["strategies"]
    ]
    for row, r in zip(doc["strategies"], storm_report.results, strict=True):
        assert round(r.success_rate, 6) == row["success_rate"]
        assert round(r.load_amplification, 6) == row["load_amplification"]
        assert round(r.peak_load_over_capacity, 6) == row["peak_load_over_capacity"]
        assert r.recovery_seconds == row["recovery_seconds"] or (
            r.recovery_seconds is not None
            and round(r.recovery_seconds, 6) == row["recovery_seconds"]
        )
    assert to_json(storm_report) == to_json(storm_report)


def test_a_short_queue_cannot_hold_a_storm() -> None:
    """With less than a timeout's worth of queue, served work is never stale: backoff recovers too.

    This pins the mechanism the docs describe (a queue longer than the client timeout is what makes
    the overload self-sustaining), on a scaled-down system: 200 clients, 8 workers, one instance.
    """
    small = RetryStormParams(clients=200, instances=1, workers=8, queue_limit=100)
    storm = RetryStorm(small, [s for s in STRATEGIES if s.name in ("backoff", "budget")])
    report = storm.run(5)
    assert report.result("backoff").recovery_seconds is not None
    long_queue = RetryStorm(
        RetryStormParams(clients=200, instances=1, workers=8, queue_limit=400),
        [s for s in STRATEGIES if s.name == "backoff"],
    ).run(5)
    assert long_queue.result("backoff").recovery_seconds is None


# -- recovery_time ------------------------------------------------------------------------------


def test_recovery_is_zero_when_every_window_meets_the_target() -> None:
    issued = [10] * 50
    assert 0.0 == recovery_time(
        issued, issued, step=0.1, window=1.0, start=2.0, end=5.0, target=0.99
    )


def test_recovery_is_the_end_of_the_last_bad_window() -> None:
    issued = [10] * 60
    ok = [10] * 60
    ok[25] = 0  # bucket [2.5, 2.6): every window containing it fails
    # Windows start at 2.0, 2.1, ...; the last containing bucket 25 starts at 2.5.
    assert pytest.approx(0.6) == recovery_time(
        issued, ok, step=0.1, window=1.0, start=2.0, end=6.0, target=0.99
    )


def test_recovery_is_none_when_the_last_window_still_fails() -> None:
    issued = [10] * 60
    ok = [10] * 59 + [8]  # the last window [5, 6) has 98 of 100
    assert recovery_time(issued, ok, step=0.1, window=1.0, start=2.0, end=6.0, target=0.99) is None


def test_a_window_exactly_at_the_target_passes() -> None:
    issued = [10] * 60
    ok = [10] * 59 + [9]  # the last window has 99 of 100: 99% meets a 99% target
    assert 0.0 == recovery_time(issued, ok, step=0.1, window=1.0, start=2.0, end=6.0, target=0.99)


def test_windows_without_requests_do_not_count_against_recovery() -> None:
    issued = [0] * 60
    assert 0.0 == recovery_time(issued, issued, step=0.1, window=1.0, start=2.0, end=6.0, target=1)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"clients": 0}, "clients"),
        ({"instances": 5, "clients": 4}, "instances"),
        ({"queue_limit": -1}, "queue_limit"),
        ({"client_timeout": 0}, "client_timeout"),
        ({"service_time": float("inf")}, "service_time"),
        ({"outage_end": 50.0}, "outage_end"),
        ({"outage_start": 15.0, "outage_end": 12.0}, "outage_end"),
        ({"step": 0.3}, "step"),
        ({"target": 1.5}, "target"),
        ({"interval_spread": 1.0}, "interval_spread"),
        ({"network_delay": -1.0}, "network_delay"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        RetryStormParams(**kwargs)  # type: ignore[arg-type]
    assert parameter == info.value.parameter


def test_strategy_lists_are_checked() -> None:
    with pytest.raises(ConfigError) as info:
        RetryStorm(strategies=[])
    assert "strategies" == info.value.parameter
    with pytest.raises(ConfigError, match="unique"):
        RetryStorm(strategies=[STRATEGIES[0], STRATEGIES[0]])
