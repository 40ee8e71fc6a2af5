"""The circuit breaker as users meet it: configuration, classification, events, pipelines."""

from __future__ import annotations

import math
from typing import Any

import pytest

from buttress import (
    Backoff,
    BulkheadFull,
    CircuitBreaker,
    CircuitOpen,
    ConfigError,
    Pipeline,
    Retry,
)
from buttress.events import Event
from buttress.policies.breaker import (
    TRANSITIONS,
    BreakerClosed,
    BreakerDisabled,
    BreakerForcedOpen,
    BreakerHalfOpened,
    BreakerMachine,
    BreakerMetricsOnly,
    BreakerOpened,
    BreakerRejected,
    BreakerState,
    BreakerThresholdExceeded,
    IllegalTransition,
    Trigger,
)
from buttress.testing import FakeClock


def _fail(exc: BaseException | None = None) -> Any:
    def fn() -> None:
        raise exc if exc is not None else ConnectionError("down")

    return fn


def _calls(p: Pipeline, fn: Any, n: int) -> list[str]:
    """Call ``n`` times; return what happened each time."""
    out = []
    for _ in range(n):
        try:
            p.call(fn)
            out.append("ok")
        except CircuitOpen:
            out.append("open")
        except Exception as e:
            out.append(type(e).__name__)
    return out


def _setup(**kw: Any) -> tuple[FakeClock, CircuitBreaker, Pipeline, list[Event]]:
    clock = FakeClock()
    b = CircuitBreaker(clock=clock, **kw)
    p = Pipeline([b], name="payments", clock=clock)
    seen: list[Event] = []
    p.add_listener(seen.append)
    return clock, b, p, seen


def _moves(seen: list[Event]) -> list[tuple[str, str, str]]:
    return [
        (e.kind, e.from_state, e.trigger)  # type: ignore[attr-defined]
        for e in seen
        if e.policy_type == "circuit_breaker" and hasattr(e, "to_state")
    ]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.01}, "failure_rate_threshold"),
        ({"failure_rate_threshold": -0.5}, "failure_rate_threshold"),
        ({"failure_rate_threshold": math.nan}, "failure_rate_threshold"),
        ({"slow_call_rate_threshold": 0.0}, "slow_call_rate_threshold"),
        ({"slow_call_rate_threshold": 2}, "slow_call_rate_threshold"),
        ({"slow_call_duration": -1}, "slow_call_duration"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"break_duration": -5}, "break_duration"),
        ({"break_duration": math.inf}, "break_duration"),
        ({"half_open_timeout": -0.1}, "half_open_timeout"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 0, "window_type": "time"}, "window_size"),
        ({"window_size": -3, "window_type": "time"}, "window_size"),
        ({"window_size": 10, "window_type": "time", "window_buckets": 0}, "window_buckets"),
        ({"window_buckets": 4}, "window_buckets"),
        ({"window_type": "sliding"}, "window_type"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open"),
        ({"record_on": "ValueError"}, "record_on"),
        ({"ignore_on": (ValueError, 3)}, "ignore_on"),
        ({"failure_if_result": 5}, "failure_if_result"),
    ],
)
def test_bad_input_fails_at_build_naming_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ConfigError) as e:
        CircuitBreaker(**kwargs)
    assert param == e.value.parameter
    assert param in str(e.value)


def test_defaults_follow_resilience4j() -> None:
    m = CircuitBreaker().machine
    assert (0.5, 1.0, 60.0, 100, 10) == (
        m.failure_rate_threshold,
        m.slow_call_rate_threshold,
        m.slow_call_duration,
        m.minimum_calls,
        m.permitted_calls_in_half_open,
    )


def test_minimum_calls_is_capped_at_the_count_window_size() -> None:
    assert 10 == CircuitBreaker(window_size=10, minimum_calls=100).machine.minimum_calls
    assert 100 == CircuitBreaker(window_type="time", window_size=10).machine.minimum_calls


# --- the transition table -------------------------------------------------------------------------


def test_illegal_transitions_raise() -> None:
    m = BreakerMachine(minimum_calls=1, window_size=2)
    with pytest.raises(IllegalTransition, match="no transition from closed on break_elapsed"):
        m.apply(0.0, Trigger.BREAK_ELAPSED)
    with pytest.raises(IllegalTransition):
        m.apply(0.0, Trigger.PROBES_PASSED)
    m.apply(0.0, Trigger.THRESHOLD)
    with pytest.raises(IllegalTransition):
        m.apply(0.0, Trigger.THRESHOLD)  # open cannot open again
    assert BreakerState.OPEN == m.snapshot(0.0).state


def test_the_table_has_every_automatic_edge_and_no_self_loops_but_reset() -> None:
    automatic = {(f.value, t.value, to.value) for (f, t), to in TRANSITIONS.items()}
    assert ("closed", "threshold", "open") in automatic
    assert ("open", "break_elapsed", "half_open") in automatic
    assert ("half_open", "probes_passed", "closed") in automatic
    assert ("half_open", "probes_failed", "open") in automatic
    assert ("half_open", "probe_timeout", "open") in automatic
    loops = [(f, t) for (f, t, to) in automatic if f == to]
    assert [("closed", "reset")] == loops


# --- the full cycle, with events ------------------------------------------------------------------


def test_open_half_open_close_cycle_emits_an_event_per_transition() -> None:
    clock, b, p, seen = _setup(
        minimum_calls=4, window_size=4, permitted_calls_in_half_open=2, break_duration=10.0
    )
    assert ["ok", "ok", "ConnectionError", "ConnectionError"] == _calls(p, lambda: 1, 2) + _calls(
        p, _fail(), 2
    )
    assert BreakerState.OPEN == b.state  # 2 of 4 failed: 50% >= 50%
    opened = [e for e in seen if isinstance(e, BreakerOpened)]
    assert 1 == len(opened)
    assert ("closed", "open", "threshold", 4, 2, 10.0) == (
        opened[0].from_state,
        opened[0].to_state,
        opened[0].trigger,
        opened[0].calls,
        opened[0].failures,
        opened[0].break_duration,
    )
    assert "buttress_circuit_breaker_opened" == opened[0].name
    assert "payments" == opened[0].pipeline

    with pytest.raises(CircuitOpen) as e:
        p.call(lambda: 1)
    assert 10.0 == e.value.retry_after
    assert "circuit_breaker" == e.value.policy
    rejected = [x for x in seen if isinstance(x, BreakerRejected)]
    assert [("open", 10.0)] == [(r.state, r.retry_after) for r in rejected]

    clock.advance(4.0)
    with pytest.raises(CircuitOpen) as e:
        p.call(lambda: 1)
    assert 6.0 == e.value.retry_after

    clock.advance(6.0)
    assert ["ok", "ok"] == _calls(p, lambda: 1, 2)  # two probes
    assert BreakerState.CLOSED == b.state
    assert 0 == b.snapshot().calls  # the window starts afresh
    assert [
        ("opened", "closed", "threshold"),
        ("half_opened", "open", "break_elapsed"),
        ("closed", "half_open", "probes_passed"),
    ] == _moves(seen)
    kinds = [type(e) for e in seen if hasattr(e, "to_state")]
    assert [BreakerOpened, BreakerHalfOpened, BreakerClosed] == kinds


def test_failed_probes_reopen_with_a_growing_break() -> None:
    backoff = Backoff.exponential(base=1.0, multiplier=2.0, cap=60.0, jitter="none")
    clock, b, p, seen = _setup(
        minimum_calls=1, window_size=1, permitted_calls_in_half_open=1, break_duration=backoff
    )
    _calls(p, _fail(), 1)
    breaks = []
    for _ in range(4):
        snap = b.snapshot()
        assert snap.retry_after is not None
        breaks.append(snap.retry_after)
        clock.advance(snap.retry_after)
        assert ["ConnectionError"] == _calls(p, _fail(), 1)  # the probe fails: open again
    assert [1.0, 2.0, 4.0, 8.0] == breaks
    assert 5 == b.snapshot().consecutive_opens
    clock.advance(16.0)
    assert ["ok"] == _calls(p, lambda: 1, 1)
    assert BreakerState.CLOSED == b.state
    assert 0 == b.snapshot().consecutive_opens
    assert "probes_failed" == [e for e in seen if isinstance(e, BreakerOpened)][1].trigger


def test_break_duration_from_a_function_of_consecutive_opens() -> None:
    clock, b, p, _ = _setup(
        minimum_calls=1,
        window_size=1,
        permitted_calls_in_half_open=1,
        break_duration=lambda n: 3.0 * n,
    )
    _calls(p, _fail(), 1)
    assert 3.0 == b.snapshot().retry_after
    clock.advance(3.0)
    _calls(p, _fail(), 1)
    assert 6.0 == b.snapshot().retry_after


def test_half_open_without_a_probe_result_reopens_after_the_bound() -> None:
    clock, b, p, seen = _setup(
        minimum_calls=1,
        window_size=1,
        permitted_calls_in_half_open=1,
        break_duration=5.0,
        half_open_timeout=2.0,
    )
    _calls(p, _fail(), 1)
    clock.advance(5.0)
    permit = b.machine.before_call(clock.monotonic())  # a probe that never reports
    assert permit.probe  # type: ignore[union-attr]
    assert ["open"] == _calls(p, lambda: 1, 1)  # the only slot is taken
    assert "half_open" == [e for e in seen if isinstance(e, BreakerRejected)][-1].state
    clock.advance(2.0)
    with pytest.raises(CircuitOpen) as e:
        p.call(lambda: 1)
    assert 5.0 == e.value.retry_after
    assert BreakerState.OPEN == b.state
    assert ("opened", "half_open", "probe_timeout") == _moves(seen)[-1]
    # the late probe result is not counted against the new state
    b.machine.on_result(clock.monotonic(), permit, "success", 0.1)  # type: ignore[arg-type]
    assert BreakerState.OPEN == b.state


# --- what counts ----------------------------------------------------------------------------------


def test_slow_calls_open_the_breaker() -> None:
    clock, b, p, seen = _setup(
        minimum_calls=3, window_size=3, slow_call_duration=1.0, slow_call_rate_threshold=0.6
    )

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    assert ["ok", "ok"] == _calls(p, slow, 1) + _calls(p, lambda: 1, 1)
    assert BreakerState.CLOSED == b.state
    _calls(p, slow, 1)  # 2 of 3 slow: 67% >= 60%
    assert BreakerState.OPEN == b.state
    opened = next(e for e in seen if isinstance(e, BreakerOpened))
    assert (3, 0, 2) == (opened.calls, opened.failures, opened.slow_calls)


def test_a_call_exactly_at_the_slow_threshold_is_not_slow() -> None:
    clock, b, p, _ = _setup(minimum_calls=1, window_size=2, slow_call_duration=1.0)

    def edge() -> int:
        clock.advance(1.0)
        return 1

    _calls(p, edge, 2)
    assert 0 == b.snapshot().slow_calls


def test_nothing_is_decided_before_minimum_calls() -> None:
    _, b, p, _ = _setup(minimum_calls=5, window_size=10)
    _calls(p, _fail(), 4)
    assert BreakerState.CLOSED == b.state
    _calls(p, _fail(), 1)
    assert BreakerState.OPEN == b.state


def test_which_errors_count() -> None:
    class Boring(Exception):
        pass

    _, b, p, _ = _setup(
        minimum_calls=10,
        window_size=10,
        record_on=(ConnectionError, TimeoutError),
        ignore_on=(ConnectionResetError,),
        failure_if_result=lambda r: r == "bad",
    )
    _calls(p, _fail(ConnectionError()), 1)  # failure
    _calls(
        p, _fail(ConnectionResetError()), 1
    )  # ignored (subclass of ConnectionError, listed first)
    _calls(p, _fail(Boring()), 1)  # not recorded: a success
    _calls(p, _fail(BulkheadFull("full", policy="bh")), 1)  # a rejection: never counted
    _calls(p, lambda: "bad", 1)  # a result counted as failure
    _calls(p, lambda: "good", 1)
    s = b.snapshot()
    assert (4, 2) == (s.calls, s.failures)
    assert 0.5 == s.failure_rate


async def test_async_path_counts_and_rejects_the_same_way() -> None:
    clock, b, p, seen = _setup(minimum_calls=2, window_size=2, break_duration=3.0)

    async def ok() -> int:
        return 1

    async def bad() -> None:
        raise ConnectionError("down")

    assert 1 == await p.call_async(ok)
    with pytest.raises(ConnectionError):
        await p.call_async(bad)
    assert BreakerState.OPEN == b.state
    with pytest.raises(CircuitOpen) as e:
        await p.call_async(ok)
    assert 3.0 == e.value.retry_after
    clock.advance(3.0)
    for _ in range(10):
        assert 1 == await p.call_async(ok)  # 10 probes by default, then closed
    assert BreakerState.CLOSED == b.state
    assert ["opened", "half_opened", "closed"] == [m[0] for m in _moves(seen)]


async def test_async_cancellation_is_not_counted() -> None:
    import asyncio

    _, b, p, _ = _setup(minimum_calls=1, window_size=4)

    async def hang() -> None:
        await asyncio.sleep(10)

    t = asyncio.create_task(p.call_async(hang))
    await asyncio.sleep(0)
    t.cancel()
    with pytest.raises(asyncio.CancelledError):
        await t
    assert 0 == b.snapshot().calls
    assert BreakerState.CLOSED == b.state


# --- manual states --------------------------------------------------------------------------------


def test_manual_states_and_their_events() -> None:
    _, b, p, seen = _setup(minimum_calls=1, window_size=4)
    b.disable()
    assert ["ConnectionError"] * 3 == _calls(p, _fail(), 3)  # permitted, not recorded
    assert (BreakerState.DISABLED, 0) == (b.state, b.snapshot().calls)

    b.force_open()
    with pytest.raises(CircuitOpen, match="forced open") as e:
        p.call(lambda: 1)
    assert e.value.retry_after is None

    b.metrics_only()
    assert ["ConnectionError"] * 2 == _calls(p, _fail(), 2)  # permitted and recorded, never opens
    assert (BreakerState.METRICS_ONLY, 2) == (b.state, b.snapshot().calls)
    alarms = [e for e in seen if isinstance(e, BreakerThresholdExceeded)]
    assert 1 == len(alarms)  # once per crossing
    assert "buttress_circuit_breaker_threshold_exceeded" == alarms[0].name

    b.metrics_only()  # already there: nothing happens
    b.reset()
    assert (BreakerState.CLOSED, 0) == (b.state, b.snapshot().calls)
    kinds = [type(e) for e in seen if hasattr(e, "to_state")]
    assert [BreakerDisabled, BreakerForcedOpen, BreakerMetricsOnly, BreakerClosed] == kinds
    assert ("closed", "metrics_only", "reset") == _moves(seen)[-1]


# --- in a pipeline --------------------------------------------------------------------------------


def test_an_open_breakers_rejection_is_not_retried() -> None:
    clock = FakeClock()
    b = CircuitBreaker(minimum_calls=2, window_size=2, clock=clock)
    retry = Retry(attempts=5, backoff=Backoff.constant(0.1), budget=None, clock=clock)
    p = Pipeline([b, retry], clock=clock)  # default order puts the retry outside
    assert ("retry", "circuit_breaker") == tuple(x.kind for x in p.policies)
    seen: list[Event] = []
    p.add_listener(seen.append)
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(CircuitOpen):
        p.call(flaky)
    assert 2 == calls  # two failures opened the breaker; the third attempt was refused, not retried
    gave_up = [e for e in seen if e.kind == "gave_up"]
    assert ["not_retryable"] == [e.reason for e in gave_up]  # type: ignore[attr-defined]

    calls = 0
    with pytest.raises(CircuitOpen):
        p.call(flaky)
    assert 0 == calls
    assert [0.1, 0.1] == clock.sleeps  # the first call's two retries; the second call none


def test_one_breaker_in_two_pipelines_shares_its_state() -> None:
    b = CircuitBreaker(minimum_calls=1, window_size=1)
    p1 = Pipeline([b], name="a")
    p2 = Pipeline([b], name="b")
    _calls(p1, _fail(), 1)
    assert ["open"] == _calls(p2, lambda: 1, 1)


def test_decorator_use_and_repr() -> None:
    b = CircuitBreaker(minimum_calls=1, window_size=1, name="db")

    @b
    def query(x: int) -> int:
        return x * 2

    assert 8 == query(4)
    assert "CircuitBreaker(name='db'" in repr(b)
    assert "state=closed" in repr(b)


def test_the_docs_show_the_diagram_drawn_from_the_table() -> None:
    from pathlib import Path

    from buttress.policies.breaker import state_diagram

    page = Path(__file__).resolve().parents[2] / "docs" / "circuit-breaker.md"
    assert "```mermaid\n" + state_diagram() + "```" in page.read_text()
