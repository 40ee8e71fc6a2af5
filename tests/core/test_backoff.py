"""Backoff curves and the four jitters of Brooker's "Exponential Backoff and Jitter"."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import Backoff, ConfigError

JITTERS = ("none", "full", "equal", "decorrelated")
KINDS = ("constant", "linear", "exponential")


def test_exponential_curve_doubles_until_the_cap() -> None:
    b = Backoff.exponential(0.1, multiplier=2, cap=1.0, jitter="none")
    assert [0.1, 0.2, 0.4, 0.8, 1.0, 1.0] == [round(b.delay(n), 12) for n in range(1, 7)]


def test_linear_and_constant_curves() -> None:
    lin = Backoff.linear(0.5, 0.25, cap=1.2)
    assert [0.5, 0.75, 1.0, 1.2, 1.2] == [lin.delay(n) for n in range(1, 6)]
    const = Backoff.constant(0.3)
    assert [0.3, 0.3, 0.3] == [const.delay(n) for n in range(1, 4)]


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    b = Backoff.exponential(0.1, multiplier=10, cap=30.0, jitter="none")
    assert 30.0 == b.delay(100_000)


def test_full_jitter_spreads_over_the_whole_interval() -> None:
    b = Backoff.exponential(1.0, cap=100.0, jitter="full", rng=random.Random(7))
    draws = [b.delay(4) for _ in range(2000)]  # curve: 8 s
    assert 0.0 <= min(draws) < 0.5
    assert 7.5 < max(draws) <= 8.0
    assert 3.6 < sum(draws) / len(draws) < 4.4  # uniform(0, 8) has mean 4


def test_equal_jitter_keeps_the_lower_half() -> None:
    b = Backoff.exponential(1.0, cap=100.0, jitter="equal", rng=random.Random(3))
    draws = [b.delay(3) for _ in range(2000)]  # curve: 4 s -> [2, 4]
    assert 2.0 <= min(draws) < 2.2
    assert 3.8 < max(draws) <= 4.0


def test_decorrelated_jitter_grows_from_the_previous_delay() -> None:
    b = Backoff.exponential(0.1, cap=5.0, jitter="decorrelated", rng=random.Random(11))
    prev = None
    seen = []
    for n in range(1, 40):
        d = b.delay(n, prev)
        lo, hi = b.bounds(n, prev)
        assert lo <= d <= hi
        prev = d
        seen.append(d)
    assert max(seen) > 1.0  # it does grow away from base
    assert max(seen) <= 5.0


def test_same_seed_same_schedule() -> None:
    a = Backoff.exponential(jitter="full", rng=random.Random(42))
    b = Backoff.exponential(jitter="full", rng=random.Random(42))
    assert [a.delay(n) for n in range(1, 10)] == [b.delay(n) for n in range(1, 10)]


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    jitter=st.sampled_from(JITTERS),
    base=st.floats(0.0, 50.0),
    extra=st.floats(0.0, 100.0),
    multiplier=st.floats(1.0, 10.0),
    step=st.floats(0.0, 20.0),
    attempt=st.integers(1, 10_000),
    previous=st.none() | st.floats(0.0, 1000.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_jitter_stays_within_its_bounds(
    kind: str,
    jitter: str,
    base: float,
    extra: float,
    multiplier: float,
    step: float,
    attempt: int,
    previous: float | None,
    seed: int,
) -> None:
    """For any curve, attempt and previous delay: the delay is in Brooker's interval, <= cap."""
    cap = base + extra
    b = Backoff(
        kind,  # type: ignore[arg-type]
        base=base,
        multiplier=multiplier,
        step=step,
        cap=cap,
        jitter=jitter,  # type: ignore[arg-type]
        rng=random.Random(seed),
    )
    d = b.delay(attempt, previous)
    curve = b.curve(attempt)
    assert 0.0 <= d <= cap
    if jitter == "none":
        assert curve == d
    elif jitter == "full":
        assert 0.0 <= d <= curve
    elif jitter == "equal":
        assert curve / 2 <= d <= curve
    else:
        prev = base if previous is None else previous
        assert min(base, cap) <= d <= min(cap, max(base, 3 * prev))
    lo, hi = b.bounds(attempt, previous)
    assert lo <= d <= hi


@pytest.mark.parametrize(
    ("kwargs", "parameter", "value"),
    [
        ({"base": -1.0}, "base", -1.0),
        ({"base": 2.0, "cap": 1.0}, "cap", 1.0),
        ({"multiplier": 0.5}, "multiplier", 0.5),
        ({"step": float("nan")}, "step", None),
        ({"cap": float("inf")}, "cap", float("inf")),
        ({"jitter": "fuzzy"}, "jitter", "fuzzy"),
        ({"base": True}, "base", True),
    ],
)
def test_bad_parameters_fail_at_build_naming_parameter_and_value(
    kwargs: dict[str, object], parameter: str, value: object
) -> None:
    with pytest.raises(ConfigError) as info:
        Backoff(**kwargs)  # type: ignore[arg-type]
    assert parameter == info.value.parameter
    assert str(info.value).startswith(f"invalid {parameter}=")
    if value is not None:
        assert value == info.value.value
        assert repr(value) in str(info.value)


def test_bad_kind_is_named() -> None:
    with pytest.raises(ConfigError, match=r"invalid kind='cubic'"):
        Backoff("cubic")  # type: ignore[arg-type]
