"""The supervisor's decisions (sans I/O), against the rules of Erlang/OTP and a reference model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.supervise.core import (
    CycleError,
    Escalate,
    Leave,
    Restart,
    SupervisorCore,
    start_order,
)
from buttress.supervise.options import ChildOptions, SupervisorOptions

NAMES = ["a", "b", "c", "d", "e"]


def _core(
    strategy: str = "one_for_one",
    restarts: tuple[str, ...] = ("permanent",) * 5,
    intensity: int = 1000,
    period: float = 5.0,
    **child: object,
) -> SupervisorCore:
    children = [
        (n, ChildOptions(restart=r, **child))  # type: ignore[arg-type]
        for n, r in zip(NAMES, restarts, strict=False)
    ]
    core = SupervisorCore(
        children, SupervisorOptions(strategy=strategy, intensity=intensity, period=period)
    )
    for n, _ in children:
        core.started(n, 0.0)
    return core


def test_one_for_one_restarts_only_the_failed_child() -> None:
    core = _core()
    d = core.exited("c", 1.0, failed=True)
    assert Restart(stop=(), start=("c",), delay=0.1, failures=1) == d


def test_one_for_all_stops_the_others_in_reverse_and_starts_all_in_order() -> None:
    core = _core("one_for_all")
    d = core.exited("c", 1.0, failed=True)
    assert isinstance(d, Restart)
    assert ("e", "d", "b", "a") == d.stop
    assert tuple(NAMES) == d.start


def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it() -> None:
    core = _core("rest_for_one")
    d = core.exited("b", 1.0, failed=True)
    assert isinstance(d, Restart)
    assert ("e", "d", "c") == d.stop
    assert ("b", "c", "d", "e") == d.start


def test_transient_restarts_after_a_failure_only() -> None:
    core = _core(restarts=("transient",) * 5)
    assert Leave(removed=False) == core.exited("a", 1.0, failed=False)
    assert isinstance(core.exited("b", 1.0, failed=True), Restart)


def test_temporary_is_never_restarted_even_when_a_sibling_fails() -> None:
    core = _core(
        "one_for_all", restarts=("permanent", "temporary", "permanent", "permanent", "permanent")
    )
    d = core.exited("c", 1.0, failed=True)
    assert isinstance(d, Restart)
    assert "b" in d.stop and ("b",) == d.removed
    assert ("a", "c", "d", "e") == d.start
    assert Leave(removed=True) == _core(restarts=("temporary",) * 5).exited("a", 1.0, failed=True)


def test_intensity_exceeded_escalates() -> None:
    # Intensity 2: two restarts within the period are allowed; the third failure escalates.
    core = _core(intensity=2, period=10.0)
    assert isinstance(core.exited("a", 1.0, failed=True), Restart)
    core.started("a", 1.1)
    assert isinstance(core.exited("a", 2.0, failed=True), Restart)
    core.started("a", 2.1)
    d = core.exited("a", 3.0, failed=True)
    assert isinstance(d, Escalate)
    assert 3 == d.restarts and "intensity 2" in d.reason


def test_restarts_older_than_the_period_no_longer_count() -> None:
    core = _core(intensity=1, period=10.0)
    assert isinstance(core.exited("a", 1.0, failed=True), Restart)
    core.started("a", 1.0)
    assert isinstance(core.exited("a", 11.5, failed=True), Restart)


def test_options_refuse_non_positive_intensity_and_period() -> None:
    with pytest.raises(ConfigError, match="intensity"):
        SupervisorOptions(intensity=0)
    with pytest.raises(ConfigError, match="period"):
        SupervisorOptions(period=0)
    with pytest.raises(ConfigError, match="backoff_cap"):
        ChildOptions(backoff_initial=2.0, backoff_cap=1.0)


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_run() -> None:
    core = _core(backoff_initial=0.5, backoff_factor=2.0, backoff_cap=3.0, reset_after=60.0)
    now, delays = 0.0, []
    for _ in range(5):
        d = core.exited("a", now, failed=True)
        assert isinstance(d, Restart)
        delays.append(d.delay)
        now += d.delay
        core.started("a", now)
    assert [0.5, 1.0, 2.0, 3.0, 3.0] == delays
    d = core.exited("a", now + 60.0, failed=True)  # it ran a whole minute: the count starts again
    assert isinstance(d, Restart) and 0.5 == d.delay and 1 == d.failures


events = st.lists(
    st.tuples(st.integers(0, 4), st.booleans(), st.floats(0.0, 4.0, allow_nan=False)), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    restarts=st.lists(
        st.sampled_from(["permanent", "transient", "temporary"]), min_size=5, max_size=5
    ),
    intensity=st.integers(1, 6),
    period=st.floats(0.5, 20.0),
    steps=events,
)
def test_decisions_follow_the_rules(
    strategy: str,
    restarts: list[str],
    intensity: int,
    period: float,
    steps: list[tuple[int, bool, float]],
) -> None:
    core = _core(strategy, tuple(restarts), intensity, period, backoff_cap=5.0)
    kinds = dict(zip(NAMES, restarts, strict=False))
    history: list[float] = []  # the reference model of the intensity
    last_delay: dict[str, float] = {}
    now = 0.0
    for index, failed, gap in steps:
        now += gap
        name = NAMES[index]
        if name not in core.running:
            continue
        before = [n for n in core.order if n in core.running]
        d = core.exited(name, now, failed=failed)
        if kinds[name] == "temporary" or (kinds[name] == "transient" and not failed):
            assert isinstance(d, Leave)
            continue
        recent = [t for t in history if t > now - period]
        if len(recent) >= intensity:
            assert isinstance(d, Escalate) and d.restarts == len(recent) + 1
            return
        history = [*recent, now]
        assert isinstance(d, Restart)
        # who: the strategy's group, among the children that were running
        if strategy == "one_for_one":
            group = [name]
        elif strategy == "one_for_all":
            group = [n for n in NAMES if n in before or n == name]
        else:
            group = [n for n in NAMES[NAMES.index(name) :] if n in before or n == name]
        assert tuple(n for n in reversed(group) if n != name) == d.stop
        assert tuple(n for n in group if kinds[n] != "temporary" or n == name) == d.start
        assert all(kinds[n] == "temporary" for n in d.removed)
        # how long: never above the cap, growing until a reset
        assert 0 <= d.delay <= 5.0
        if d.failures > 1:
            assert d.delay >= last_delay[name]
        last_delay[name] = d.delay
        for n in d.stop:
            core.stopped(n)
        now += d.delay
        for n in d.start:
            core.started(n, now)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_start_order_puts_dependencies_first(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 8))
    names = [f"c{i}" for i in range(n)]
    # edges only from later to earlier names in a random permutation: always a DAG
    perm = data.draw(st.permutations(names))
    deps = {
        perm[i]: data.draw(st.lists(st.sampled_from(perm[:i]), unique=True)) if i else []
        for i in range(n)
    }
    order = start_order(names, deps)
    assert sorted(names) == sorted(order)
    for child, needs in deps.items():
        assert all(order.index(dep) < order.index(child) for dep in needs)


def test_a_cycle_is_named() -> None:
    with pytest.raises(CycleError, match="a -> b -> c -> a"):
        start_order(["a", "b", "c"], {"a": ["b"], "b": ["c"], "c": ["a"]})
    with pytest.raises(KeyError, match="unknown child 'z'"):
        start_order(["a"], {"a": ["z"]})
