"""AIMD, Vegas and Gradient2 against steps computed by hand from Netflix's formulas."""

from __future__ import annotations

import random
from typing import Any

import pytest

from buttress.errors import ConfigError
from buttress.policies.limits import AIMD, Gradient2, Vegas, log10_root


def test_log10_root_matches_netflix_table() -> None:
    # max(1, floor(log10 n)) below 1000 (their lookup table), floor(sqrt n) from 1000 on.
    expected = {0: 1, 1: 1, 9: 1, 10: 1, 99: 1, 100: 2, 999: 2, 1000: 3, 4096: 3, 10000: 4}
    assert expected == {n: log10_root(n) for n in expected}


# -- AIMD ------------------------------------------------------------------------------------------


def test_aimd_defaults_are_netflix_defaults() -> None:
    a = AIMD()
    assert (20, 20, 200, 0.9, 5.0) == (
        a.limit,
        a.min_limit,
        a.max_limit,
        a.backoff_ratio,
        a.timeout,
    )


def test_aimd_steps_by_hand() -> None:
    a = AIMD(initial_limit=10, min_limit=1, max_limit=12, backoff_ratio=0.5, timeout=1.0)
    steps = [
        ((0.1, 5, False), 11),  # 5 * 2 >= 10: grow by one
        ((0.1, 5, False), 11),  # 5 * 2 < 11: the caller is the bottleneck, hold
        ((0.1, 6, False), 12),  # 6 * 2 >= 11: grow
        ((0.1, 12, False), 12),  # 13 clamped to max_limit
        ((0.1, 12, True), 6),  # a drop: floor(12 * 0.5)
        ((2.0, 6, False), 3),  # slower than the timeout counts as a drop: floor(6 * 0.5)
        ((0.1, 1, True), 1),  # floor(1.5) = 1
        ((0.1, 1, True), 1),  # floor(0.5) = 0, clamped to min_limit
    ]
    assert [want for _, want in steps] == [a.update(*sample) for sample, _ in steps]


def test_aimd_grows_on_good_latency_and_shrinks_on_drops() -> None:
    a = AIMD(initial_limit=20, min_limit=5, max_limit=100)
    for _ in range(30):
        a.update(0.01, a.limit, False)
    assert 50 == a.limit
    a.update(0.01, 50, True)
    assert 45 == a.limit  # floor(50 * 0.9)


# -- Vegas -----------------------------------------------------------------------------------------


def test_vegas_steps_by_hand() -> None:
    v = Vegas(initial_limit=20, probe_multiplier=1000, rng=random.Random(1))
    steps = [
        ((0.1, 20, False), 20),  # first sample: rtt_noload = 0.1, no change
        ((0.1, 20, False), 26),  # queue ceil(20 * 0) = 0 <= threshold 1: grow by beta = 6
        ((0.2, 26, False), 25),  # queue ceil(26 * 0.5) = 13 > beta 6: shrink by log10 = 1
        ((0.2, 25, True), 24),  # a drop: shrink by 1 whatever the queue
        ((0.5, 5, False), 24),  # 5 * 2 < 24: app limited, hold
        ((0.105, 24, False), 25),  # queue ceil(24 * (1 - 0.1/0.105)) = 2: 1 < 2 < alpha 3, +1
        ((0.115, 25, False), 25),  # queue ceil(25 * (1 - 0.1/0.115)) = 4: within [alpha, beta]
        ((0.05, 25, False), 25),  # faster than rtt_noload: new rtt_noload, no change
    ]
    assert [want for _, want in steps] == [v.update(*sample) for sample, _ in steps]
    assert 0.05 == v.rtt_noload


def test_vegas_smoothing_blends_the_estimate() -> None:
    v = Vegas(initial_limit=20, smoothing=0.5, probe_multiplier=1000)
    v.update(0.1, 20, False)
    assert 23 == v.update(0.1, 20, False)  # 0.5 * 20 + 0.5 * 26
    assert 23.0 == v.estimate


def test_vegas_probes_the_no_load_rtt() -> None:
    """Every ``probe_multiplier * limit * jitter`` samples the current rtt becomes the new
    baseline."""
    jitter = random.Random(7).uniform(0.5, 1.0)
    assert 1 < jitter * 1 * 2 <= 2  # so the probe comes on the second sample
    v = Vegas(initial_limit=2, probe_multiplier=1, rng=random.Random(7))
    v.update(0.1, 2, False)
    assert 0.1 == v.rtt_noload
    assert 2 == v.update(0.3, 2, False)  # the probe: no change of limit
    assert 0.3 == v.rtt_noload  # a higher baseline, taken as is


def test_vegas_shrinks_on_latency_rise_and_ignores_empty_rtts() -> None:
    v = Vegas(initial_limit=50, probe_multiplier=1000)
    v.update(0.01, 50, False)
    for _ in range(10):
        v.update(0.1, v.limit, False)  # queue = ceil(L * 0.9) > beta: shrink each time
    assert 40 == v.limit
    assert 40 == v.update(0.0, 40, True)  # rtt 0 says nothing


# -- Gradient2 -------------------------------------------------------------------------------------


def test_gradient2_steps_by_hand() -> None:
    g = Gradient2(initial_limit=20, min_limit=1, max_limit=200)
    # 1: long = 0.1; gradient = min(1, 1.5 * 1) = 1; new = 20 + 4; est = 0.8*20 + 0.2*24 = 20.8
    assert 20 == g.update(0.1, 20, False)
    assert 20.8 == pytest.approx(g.estimate)
    # 2: est = 0.8*20.8 + 0.2*24.8 = 21.6
    assert 21 == g.update(0.1, 20, False)
    assert 21.6 == pytest.approx(g.estimate)
    # 3: long = mean(0.1, 0.1, 0.4) = 0.2; gradient = 1.5 * 0.5 = 0.75;
    #    new = 21.6 * 0.75 + 4 = 20.2; est = 0.8*21.6 + 0.2*20.2 = 21.32
    assert 21 == g.update(0.4, 21, False)
    assert 21.32 == pytest.approx(g.estimate)
    assert 0.2 == pytest.approx(g.long_rtt)
    # 4: long = 1.6 / 4 = 0.4; gradient = 1.5 * 0.4 = 0.6;
    #    new = 21.32 * 0.6 + 4 = 16.792; est = 0.8*21.32 + 0.2*16.792 = 20.4144
    assert 20 == g.update(1.0, 21, False)
    assert 20.4144 == pytest.approx(g.estimate)
    # 5: long = 1.7 / 5 = 0.34 > 2 * 0.1: decays to 0.323; 5 < 20.4 / 2: app limited, hold
    assert 20 == g.update(0.1, 5, False)
    assert 0.323 == pytest.approx(g.long_rtt)
    assert 20.4144 == pytest.approx(g.estimate)


def test_gradient2_long_average_after_warmup() -> None:
    g = Gradient2(initial_limit=20, min_limit=1)
    for _ in range(10):
        g.update(1.0, 0, False)  # warm-up: a plain mean
    assert 1.0 == pytest.approx(g.long_rtt)
    g.update(0.1, 0, False)
    # exponential average with factor 2 / 601, then the quick decay (long / rtt > 2) by 0.95
    assert (1.0 * (1 - 2 / 601) + 0.1 * 2 / 601) * 0.95 == pytest.approx(g.long_rtt)


def test_gradient2_grows_on_good_latency_shrinks_on_a_rise_and_keeps_min() -> None:
    g = Gradient2(initial_limit=20, min_limit=10, max_limit=60)
    for _ in range(200):
        g.update(0.05, g.limit, False)
    assert 60 == g.limit  # steady latency: + queue_size per step up to max_limit
    seen = []
    for _ in range(30):
        seen.append(g.update(5.0, g.limit, False))
    # latency up 100x: the gradient (clamped at 0.5) cuts the limit at every step while the
    # long-term average still lags the new latency
    assert seen == sorted(seen, reverse=True)
    assert seen[-1] <= 20
    floor = Gradient2(initial_limit=20, min_limit=20)
    for _ in range(10):
        floor.update(0.05, floor.limit, False)  # warm the long-term average up at 50 ms
    assert floor.limit > 20
    for _ in range(40):
        floor.update(5.0, 20, False)
    assert 20 == floor.limit  # never below min_limit


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "parameter"),
    [
        (AIMD, {"backoff_ratio": 1.0}, "backoff_ratio"),
        (AIMD, {"backoff_ratio": 0.4}, "backoff_ratio"),
        (AIMD, {"timeout": 0}, "timeout"),
        (AIMD, {"timeout": -1.0}, "timeout"),
        (AIMD, {"initial_limit": 0}, "initial_limit"),
        (AIMD, {"initial_limit": 300}, "initial_limit"),
        (AIMD, {"min_limit": 50, "max_limit": 40}, "max_limit"),
        (Vegas, {"smoothing": 0}, "smoothing"),
        (Vegas, {"smoothing": 1.5}, "smoothing"),
        (Vegas, {"probe_multiplier": 0}, "probe_multiplier"),
        (Vegas, {"max_limit": 0}, "max_limit"),
        (Gradient2, {"rtt_tolerance": 0.9}, "rtt_tolerance"),
        (Gradient2, {"long_window": 0}, "long_window"),
        (Gradient2, {"queue_size": -1}, "queue_size"),
        (Gradient2, {"queue_size": "4"}, "queue_size"),
        (Gradient2, {"smoothing": -0.1}, "smoothing"),
    ],
)
def test_bad_input_names_the_parameter(cls: Any, kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert parameter == info.value.parameter
