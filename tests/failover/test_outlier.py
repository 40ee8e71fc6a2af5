"""Outlier detection on a fake clock: Envoy's figures, ejection growth and decay, the cap."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.failover import OutlierDetection, OutlierDetector, success_rate_threshold
from buttress.failover.outlier import Ejection, Return, Skip


def test_success_rate_threshold_envoy_example() -> None:
    # Envoy's outlier_detection_impl.cc comment: {50, 100, 100, 100, 100} -> mean 90, stdev 20,
    # threshold 90 - 1.9 x 20 = 52.
    mean, threshold = success_rate_threshold([50, 100, 100, 100, 100], 1.9)
    assert 90 == mean
    assert 52 == pytest.approx(threshold)


def feed(d: OutlierDetector, i: int, ok: int, bad: int, now: float) -> list[object]:
    notes: list[object] = []
    for _ in range(ok):
        notes += d.record(i, "success", now)
    for _ in range(bad):
        # interleave so that no consecutive detector fires
        notes += d.record(i, "server_error", now)
        notes += d.record(i, "success", now)
    return notes


def test_success_rate_ejection_at_the_sweep() -> None:
    cfg = OutlierDetection(max_ejection_percent=100)
    d = OutlierDetector(cfg, 5, now=0.0)
    for i in range(4):
        feed(d, i, 200, 0, 1.0)
    feed(d, 4, 0, 100, 1.0)  # 100 of 200 fail: 50%
    assert [] == d.sweep(9.9)  # not due yet
    notes = d.sweep(10.0)
    assert [Ejection(4, "success_rate", 30.0, 1)] == notes
    assert d.is_ejected(4)
    assert [] == d.sweep(39.9)
    assert [Return(4, 30.0)] == d.sweep(40.0)


def test_success_rate_needs_minimum_hosts_and_volume() -> None:
    d = OutlierDetector(OutlierDetection(max_ejection_percent=100), 5, now=0.0)
    for i in range(4):
        feed(d, i, 200, 0, 1.0)
    feed(d, 4, 0, 49, 1.0)  # 98 requests: below the volume of 100, so only 4 hosts qualify
    assert [] == d.sweep(10.0)
    assert not d.is_ejected(4)


def test_consecutive_5xx_ejects_inline_and_time_grows_then_decays() -> None:
    cfg = OutlierDetection(interval=10, base_ejection_time=30, max_ejection_time=90)
    d = OutlierDetector(cfg, 2, now=0.0)
    durations = []
    now = 0.0
    for _ in range(5):
        notes: list[object] = []
        for _ in range(5):
            notes += d.record(0, "server_error", now)
        (ej,) = notes
        assert isinstance(ej, Ejection)
        assert "consecutive_5xx" == ej.reason
        durations.append(ej.duration)
        now += ej.duration
        assert [Return(0, ej.duration)] == [n for n in d.sweep(now) if isinstance(n, Return)]
    # 30, 60, 90, then capped at max_ejection_time (the multiplier stops at max/base + 1).
    assert [30.0, 60.0, 90.0, 90.0, 90.0] == durations
    m = d.multiplier(0)
    assert 4 == m
    # Every sweep that finds it in service takes one off the multiplier.
    for k in range(1, m + 1):
        now += 10
        d.sweep(now)
        assert m - k == d.multiplier(0)
    notes = []
    for _ in range(5):
        notes += d.record(0, "local_failure", now)
    assert [Ejection(0, "consecutive_5xx", 30.0, 1)] == notes
    assert 6 == d.ejections(0)


def test_success_resets_the_consecutive_count() -> None:
    d = OutlierDetector(OutlierDetection(), 2, now=0.0)
    for _ in range(4):
        assert [] == d.record(0, "server_error", 0.0)
    d.record(0, "success", 0.0)
    for _ in range(4):
        assert [] == d.record(0, "server_error", 0.0)
    assert not d.is_ejected(0)


def test_gateway_failures_are_detected_but_not_enforced_by_default() -> None:
    cfg = OutlierDetection(consecutive_5xx=10)
    d = OutlierDetector(cfg, 2, now=0.0)
    notes: list[object] = []
    for _ in range(5):
        notes += d.record(0, "gateway_error", 0.0)
    assert [Skip(0, "not_enforced", "consecutive_gateway_failure")] == notes
    cfg = OutlierDetection(consecutive_5xx=10, enforcing_consecutive_gateway_failure=100)
    d = OutlierDetector(cfg, 2, now=0.0)
    notes = []
    for _ in range(5):
        notes += d.record(0, "gateway_error", 0.0)
    assert [Ejection(0, "consecutive_gateway_failure", 30.0, 1)] == notes


def test_failure_percentage_when_enforced() -> None:
    cfg = OutlierDetection(enforcing_failure_percentage=100, consecutive_5xx=100)
    d = OutlierDetector(cfg, 5, now=0.0)
    for i in range(4):
        feed(d, i, 60, 0, 1.0)  # 60 requests: enough for failure percentage (50), not SR (100)
    for _ in range(6):  # 9 failures, 1 success in every 10: 90% of 60 fail
        for _ in range(9):
            d.record(4, "server_error", 1.0)
        d.record(4, "success", 1.0)
    assert [Ejection(4, "failure_percentage", 30.0, 1)] == d.sweep(10.0)


def test_failure_percentage_is_off_by_default() -> None:
    d = OutlierDetector(OutlierDetection(consecutive_5xx=100), 5, now=0.0)
    for i in range(4):
        feed(d, i, 60, 0, 1.0)
    for _ in range(60):
        d.record(4, "server_error", 1.0)
    assert [Skip(4, "not_enforced", "failure_percentage")] == d.sweep(10.0)


def test_cap_limits_ejections() -> None:
    d = OutlierDetector(OutlierDetection(max_ejection_percent=20), 10, now=0.0)
    ejected = []
    for i in range(10):
        for _ in range(5):
            for n in d.record(i, "server_error", 0.0):
                ejected.append(n)
    assert 2 == sum(isinstance(n, Ejection) for n in ejected)  # 20% of 10
    assert 8 == sum(isinstance(n, Skip) and n.reason == "cap" for n in ejected)


def test_always_eject_one_can_be_switched_off() -> None:
    d = OutlierDetector(OutlierDetection(always_eject_one=False), 2, now=0.0)
    notes: list[object] = []
    for _ in range(5):
        notes += d.record(0, "server_error", 0.0)
    assert [Skip(0, "cap", "consecutive_5xx")] == notes


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    percent=st.floats(0, 100),
    one=st.booleans(),
    ops=st.lists(
        st.tuples(
            st.integers(0, 29), st.sampled_from(["success", "server_error", "local_failure"])
        ),
        max_size=300,
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_ejection_cap_is_never_exceeded(
    n: int, percent: float, one: bool, ops: list[tuple[int, str]], seed: int
) -> None:
    cfg = OutlierDetection(
        max_ejection_percent=percent,
        always_eject_one=one,
        consecutive_5xx=2,
        success_rate_request_volume=1,
        success_rate_minimum_hosts=1,
        interval=1.0,
        base_ejection_time=3.0,
    )
    rng = random.Random(seed)
    d = OutlierDetector(cfg, n, now=0.0, draw=rng.random)
    now = 0.0
    allowed = max(int(percent * n // 100), 1 if one else 0)
    for i, outcome in ops:
        now += 0.1
        d.sweep(now)
        d.record(i % n, outcome, now)
        ejected = sum(d.is_ejected(k) for k in range(n))
        assert ejected == d.ejected_count
        assert ejected <= allowed


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"interval": 0}, "interval"),
        ({"base_ejection_time": -1}, "base_ejection_time"),
        ({"max_ejection_time": 10}, "max_ejection_time"),
        ({"max_ejection_percent": 101}, "max_ejection_percent"),
        ({"consecutive_5xx": 0}, "consecutive_5xx"),
        ({"success_rate_stdev_factor": -1}, "success_rate_stdev_factor"),
        ({"enforcing_success_rate": 150}, "enforcing_success_rate"),
        ({"failure_percentage_request_volume": 0}, "failure_percentage_request_volume"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        OutlierDetection(**kwargs)  # type: ignore[arg-type]
    assert parameter == e.value.parameter
