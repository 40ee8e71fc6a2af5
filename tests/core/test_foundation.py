"""Clock, context, errors, budgets' bad input, and the testing helpers."""

from __future__ import annotations

import asyncio
import time

import pytest

from buttress import ConfigError, RetryBudget
from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import Context, current_context, use_context
from buttress.errors import AttemptTimeout, DeadlineExceeded, Rejected, SpecError
from buttress.events import Event
from buttress.policies.budget import TokenBucketBudget
from buttress.testing import FakeClock, set_testing


def test_fake_clock_waits_take_no_real_time() -> None:
    clock = FakeClock(start=10.0)
    t0 = time.perf_counter()
    clock.sleep(3600)
    asyncio.run(clock.sleep_async(1800))
    assert time.perf_counter() - t0 < 0.5
    assert 10.0 + 5400 == clock.monotonic()
    assert [3600, 1800] == clock.sleeps
    assert isinstance(clock, Clock)


def test_fake_clock_refuses_to_go_backwards() -> None:
    clock = FakeClock(start=5.0)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(4.0)
    clock.set(7.5)
    assert 7.5 == clock.monotonic()
    assert clock.wall() - 7.5 == pytest.approx(1_700_000_000.0 - 5.0)


def test_set_testing_turns_real_waits_off_and_restores() -> None:
    with set_testing(True):
        t0 = time.perf_counter()
        SYSTEM_CLOCK.sleep(5)
        asyncio.run(SYSTEM_CLOCK.sleep_async(5))
        assert time.perf_counter() - t0 < 0.5
    t0 = time.perf_counter()
    SYSTEM_CLOCK.sleep(0.02)
    assert time.perf_counter() - t0 >= 0.015


def test_no_waits_fixture(no_waits: None) -> None:
    t0 = time.perf_counter()
    SYSTEM_CLOCK.sleep(10)
    assert time.perf_counter() - t0 < 0.5


def test_captured_events_fixture(captured_events: list[Event]) -> None:
    from buttress import Fallback, Pipeline

    def down() -> None:
        raise ConnectionError

    Pipeline([Fallback(0)], name="fixture").call(down)
    assert ["buttress_fallback_used", "buttress_pipeline_call_succeeded"] == [
        e.name for e in captured_events if e.pipeline == "fixture"
    ]


def test_context_is_scoped() -> None:
    assert current_context().operation_key is None
    ctx = Context(operation_key="op", properties={"tenant": "a"})
    with use_context(ctx):
        assert current_context() is ctx
    assert current_context() is not ctx
    with pytest.raises(ConfigError, match="invalid ctx="):
        use_context("op")  # type: ignore[arg-type]


def test_error_hierarchy() -> None:
    assert issubclass(DeadlineExceeded, Rejected)
    assert issubclass(DeadlineExceeded, TimeoutError)
    assert not issubclass(AttemptTimeout, Rejected)
    e = SpecError("bad", file="r.yaml", line=3, column=5, field="policies.x")
    assert "r.yaml:3:5: policies.x: bad" == str(e)
    c = ConfigError("attempts", 0, "must be an integer >= 1")
    assert ("attempts", 0) == (c.parameter, c.value)
    assert "invalid attempts=0: must be an integer >= 1" == str(c)


@pytest.mark.parametrize(
    ("cls", "kwargs", "parameter"),
    [
        (RetryBudget, {"ratio": -0.1}, "ratio"),
        (RetryBudget, {"ratio": 1.01}, "ratio"),
        (RetryBudget, {"ratio": float("nan")}, "ratio"),
        (RetryBudget, {"min_per_second": -1}, "min_per_second"),
        (RetryBudget, {"ttl": 0}, "ttl"),
        (RetryBudget, {"ttl": -5}, "ttl"),
        (RetryBudget, {"slices": 0}, "slices"),
        (TokenBucketBudget, {"max_tokens": 0}, "max_tokens"),
        (TokenBucketBudget, {"max_tokens": 1001}, "max_tokens"),
        (TokenBucketBudget, {"token_ratio": 0}, "token_ratio"),
        (TokenBucketBudget, {"token_ratio": -1}, "token_ratio"),
    ],
)
def test_budget_bad_parameters_name_parameter_and_value(
    cls: type, kwargs: dict[str, float], parameter: str
) -> None:
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert parameter == info.value.parameter
    assert f"invalid {parameter}={kwargs[parameter]!r}" in str(info.value)
