"""Priority load and panic routing against Envoy's published figures, plus properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.failover import choose_priority, compute_priority_load, level_health

# Envoy docs, "Priority levels": two levels, P=1 100% healthy.
ENVOY_TABLE = [(100, 100, 0), (72, 100, 0), (71, 99, 1), (50, 70, 30), (25, 35, 65), (0, 0, 100)]


@pytest.mark.parametrize(("healthy", "p0", "p1"), ENVOY_TABLE)
def test_envoy_priority_table(healthy: int, p0: int, p1: int) -> None:
    load = compute_priority_load([(healthy, 100), (100, 100)])
    assert (p0, p1) == load.loads
    assert (False, False) == load.panic


def test_health_score_is_capped_and_overprovisioned() -> None:
    assert 100 == level_health(8, 10)  # 80% x 1.4 = 112 -> 100
    assert 70 == level_health(5, 10)
    assert 0 == level_health(0, 0)
    assert 50 == level_health(5, 10, overprovisioning=100)


def test_no_panic_while_other_levels_absorb_the_load() -> None:
    # P0 at 10% healthy (far below the panic threshold) but P1 fully healthy: T = 100, no panic.
    load = compute_priority_load([(1, 10), (10, 10)])
    assert (False, False) == load.panic
    assert (14, 86) == load.loads


def test_panic_of_one_level_when_total_health_is_short() -> None:
    # P0 2/10 healthy (health 28, 20% < 50% -> panic), P1 6/10 healthy (health 84, 60%: no panic).
    load = compute_priority_load([(2, 10), (6, 10)])
    assert 100 == load.normalized_total  # 28 + 84 > 100: no panic at all
    assert (False, False) == load.panic
    load = compute_priority_load([(2, 10), (4, 10)])
    assert 84 == load.normalized_total
    assert (True, True) == load.panic  # 20% and 40% both under 50%
    assert load.total_panic
    assert (50, 50) == load.loads  # total panic: split by endpoint count
    load = compute_priority_load([(2, 10), (5, 10)])
    assert (True, False) == load.panic  # P1 at exactly 50% is not in panic
    assert (28 * 100 // 98 + 1, 70 * 100 // 98) == load.loads


def test_total_panic_splits_by_host_count_with_remainder_to_first() -> None:
    load = compute_priority_load([(0, 4), (0, 2)])
    assert load.total_panic
    assert (67, 33) == load.loads


def test_panic_threshold_zero_disables_panic() -> None:
    load = compute_priority_load([(0, 4), (0, 2)], panic_threshold=0)
    assert (False, False) == load.panic
    assert (100, 0) == load.loads


def test_choose_priority_follows_cumulative_loads() -> None:
    loads = (70, 30)
    assert [0] * 70 + [1] * 30 == [choose_priority(loads, d) for d in range(1, 101)]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"overprovisioning_factor": 0.5}, "overprovisioning_factor"),
        ({"panic_threshold": 101}, "panic_threshold"),
        ({"panic_threshold": -1}, "panic_threshold"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        compute_priority_load([(1, 1)], **kwargs)
    assert parameter == e.value.parameter


def test_impossible_levels_are_refused() -> None:
    with pytest.raises(ConfigError) as e:
        compute_priority_load([(3, 2)])
    assert "levels[0]" == e.value.parameter


levels_st = st.lists(
    st.integers(0, 20).flatmap(lambda t: st.tuples(st.integers(0, t), st.just(t))),
    min_size=1,
    max_size=5,
)


@given(levels=levels_st, opf=st.floats(1.0, 3.0), panic=st.floats(0, 100))
def test_loads_sum_to_100(levels: list[tuple[int, int]], opf: float, panic: float) -> None:
    load = compute_priority_load(levels, overprovisioning_factor=opf, panic_threshold=panic)
    assert 100 == sum(load.loads)
    assert all(0 <= x <= 100 for x in load.loads)
    assert len(levels) == len(load.loads) == len(load.panic) == len(load.health)


@given(levels=levels_st, data=st.data())
def test_spill_is_monotonic(levels: list[tuple[int, int]], data: st.DataObject) -> None:
    """Fewer healthy endpoints at P0 never give P0 more traffic (outside total panic, where Envoy
    splits by endpoint count instead), and never take traffic away from the levels below it."""
    h0, t0 = levels[0]
    fewer = data.draw(st.integers(0, h0))
    before = compute_priority_load(levels)
    after = compute_priority_load([(fewer, t0), *levels[1:]])
    if not before.total_panic and not after.total_panic:
        assert after.loads[0] <= before.loads[0]
        assert all(a >= b for a, b in zip(after.loads[1:], before.loads[1:], strict=True))


@given(healthy=st.integers(0, 100), other=st.integers(0, 100))
def test_two_level_spill_with_a_healthy_fallback(healthy: int, other: int) -> None:
    """With P1 fully healthy, P0's load equals its health score: min(100, 1.4 x healthy%)."""
    load = compute_priority_load([(healthy, 100), (100, 100)])
    assert min(100, 140 * healthy // 100) == load.loads[0]
    lower = compute_priority_load([(min(healthy, other), 100), (100, 100)])
    assert lower.loads[0] <= load.loads[0]
