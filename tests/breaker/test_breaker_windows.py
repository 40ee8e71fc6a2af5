"""Sliding-window arithmetic against a naive recomputation from the full history."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import ConfigError
from buttress.policies.windows import (
    FAILURE,
    SLOW_FAILURE,
    SLOW_SUCCESS,
    SUCCESS,
    CountWindow,
    TimeWindow,
    outcome_code,
)

codes = st.sampled_from([SUCCESS, FAILURE, SLOW_SUCCESS, SLOW_FAILURE])
# an operation: (time step, what): what is a code, ("bulk", n) for add_successes, or "read"
ops = st.lists(
    st.tuples(
        st.sampled_from([0.0, 0.0, 0.1, 0.25, 0.5, 1.0, 2.5, 7.0]),
        st.one_of(codes, st.tuples(st.just("bulk"), st.integers(1, 12)), st.just("read")),
    ),
    max_size=120,
)


def naive(entries: list[tuple[float, int]]) -> tuple[int, int, int]:
    return (
        len(entries),
        sum(c in (FAILURE, SLOW_FAILURE) for _, c in entries),
        sum(c in (SLOW_SUCCESS, SLOW_FAILURE) for _, c in entries),
    )


@settings(max_examples=300, deadline=None, database=None)
@given(size=st.integers(1, 9), ops=ops)
def test_count_window_matches_naive(size: int, ops: list[tuple[float, object]]) -> None:
    w = CountWindow(size)
    history: list[tuple[float, int]] = []
    now = 0.0
    for dt, what in ops:
        now += dt
        if isinstance(what, tuple):
            w.add_successes(what[1])
            history += [(now, SUCCESS)] * what[1]
        elif what == "read":
            pass
        elif what == SUCCESS and len(history) % 2:
            w.add_success(now)  # the fast form must agree with add(now, SUCCESS)
            history.append((now, SUCCESS))
        else:
            assert isinstance(what, int)
            w.add(now, what)
            history.append((now, what))
        last = history[-size:]
        assert naive(last) == w.totals(now)
        assert [c for _, c in last] == w.outcomes()
        assert 0 <= w.calls <= size


@settings(max_examples=300, deadline=None, database=None)
@given(
    shape=st.sampled_from([(1.0, 1), (4.0, 4), (2.0, 8), (3.0, 3), (10.0, 5)]),
    start=st.sampled_from([0.0, 1000.0, 12345.5]),
    ops=ops,
)
def test_time_window_matches_naive(
    shape: tuple[float, int], start: float, ops: list[tuple[float, object]]
) -> None:
    seconds, buckets = shape
    w = TimeWindow(seconds, buckets)
    width = seconds / buckets
    history: list[tuple[float, int]] = []
    now = start

    def k(t: float) -> int:
        return math.floor(t * (1.0 / width))

    for dt, what in ops:
        now += dt
        if isinstance(what, tuple):
            w.totals(now)  # add_successes adds to the current bucket: bring it up to now first
            w.add_successes(what[1])
            history += [(now, SUCCESS)] * what[1]
        elif what == "read":
            pass
        elif what == SUCCESS and len(history) % 2:
            w.add_success(now)
            history.append((now, SUCCESS))
        else:
            assert isinstance(what, int)
            w.add(now, what)
            history.append((now, what))
        inside = [(t, c) for t, c in history if k(t) > k(now) - buckets]
        assert naive(inside) == w.totals(now)
        # the span covered: at least seconds - width, at most seconds
        for t, _ in inside:
            assert now - t < seconds + 1e-9


def test_time_window_long_pause_clears_everything() -> None:
    w = TimeWindow(5, 5)
    for i in range(50):
        w.add(100.0 + i * 0.1, FAILURE)
    assert (50, 50, 0) == w.totals(104.95)
    assert (0, 0, 0) == w.totals(1e6)


def test_outcome_codes() -> None:
    assert SUCCESS == outcome_code(False, False)
    assert FAILURE == outcome_code(True, False)
    assert SLOW_SUCCESS == outcome_code(False, True)
    assert SLOW_FAILURE == outcome_code(True, True)


def test_snapshot_rates() -> None:
    w = CountWindow(4)
    assert 0.0 == w.snapshot(0).failure_rate
    for c in (SUCCESS, FAILURE, SLOW_FAILURE, SLOW_SUCCESS):
        w.add(0, c)
    s = w.snapshot(0)
    assert (4, 2, 2, 0.5, 0.5) == (
        s.calls,
        s.failures,
        s.slow_calls,
        s.failure_rate,
        s.slow_call_rate,
    )


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "10"])
def test_count_window_rejects_bad_size(size: object) -> None:
    with pytest.raises(ConfigError) as e:
        CountWindow(size)  # type: ignore[arg-type]
    assert "window_size" == e.value.parameter


@pytest.mark.parametrize(
    ("seconds", "buckets", "param"),
    [
        (0, None, "window_size"),
        (-1, None, "window_size"),
        (math.inf, None, "window_size"),
        (10, 0, "window_buckets"),
    ],
)
def test_time_window_rejects_bad_shape(seconds: float, buckets: int | None, param: str) -> None:
    with pytest.raises(ConfigError) as e:
        TimeWindow(seconds, buckets)
    assert param == e.value.parameter


def test_time_window_default_buckets_are_one_second() -> None:
    assert 60 == TimeWindow(60).buckets
    assert 60 == TimeWindow(600).buckets  # at most 60
    assert 1 == TimeWindow(0.5).buckets
