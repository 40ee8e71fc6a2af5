"""Fallback, pipeline composition and order, the decorator, and the events policies emit."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from buttress import (
    Backoff,
    CircuitOpen,
    ConfigError,
    DeadlineExceeded,
    Fallback,
    Pipeline,
    PipelineBuilder,
    Retry,
    Timeout,
)
from buttress.context import Context
from buttress.events import Event, add_listener
from buttress.testing import FakeClock

# -- fallback --------------------------------------------------------------------------------------


def boom(error: BaseException) -> Any:
    def f(*args: Any, **kwargs: Any) -> Any:
        raise error

    return f


def test_fallback_value_on_matching_errors_only() -> None:
    p = Pipeline([Fallback("cached", on=ConnectionError)])
    assert "cached" == p.call(boom(ConnectionError()))
    with pytest.raises(ValueError):
        p.call(boom(ValueError()))
    assert "fresh" == p.call(lambda: "fresh")


def test_fallback_handler_gets_context_and_error() -> None:
    got: list[tuple[Any, Any]] = []

    def handler(ctx: Context, error: BaseException | None) -> str:
        got.append((ctx.operation_key, error))
        return "from handler"

    p = Pipeline([Fallback(handler=handler)], name="reads")
    err = ConnectionError("down")
    assert "from handler" == p.call_with_context(Context(), boom(err))
    assert [("reads", err)] == got


def test_fallback_on_results() -> None:
    p = Pipeline([Fallback(handler=lambda ctx, e: ("replaced", e), on_result=lambda r: r is None)])
    assert ("replaced", None) == p.call(lambda: None)
    assert 5 == p.call(lambda: 5)


def test_fallback_on_rejections() -> None:
    only_conn = Pipeline([Fallback("x", on=ConnectionError)])
    with pytest.raises(CircuitOpen):
        only_conn.call(boom(CircuitOpen(policy="breaker")))
    plus_rejections = Pipeline([Fallback("x", on=ConnectionError, on_rejected=True)])
    assert "x" == plus_rejections.call(boom(CircuitOpen(policy="breaker")))
    assert "x" == plus_rejections.call(boom(DeadlineExceeded()))
    no_rejections = Pipeline([Fallback("x", on_rejected=False)])
    with pytest.raises(CircuitOpen):
        no_rejections.call(boom(CircuitOpen()))
    assert "x" == no_rejections.call(boom(RuntimeError()))


async def test_fallback_async_handler_is_awaited() -> None:
    async def handler(ctx: Context, error: BaseException | None) -> str:
        await asyncio.sleep(0)
        return f"async {type(error).__name__}"

    async def fails() -> None:
        raise ConnectionError

    p = Pipeline([Fallback(handler=handler)])
    assert "async ConnectionError" == await p.call_async(fails)
    with pytest.raises(TypeError, match="is async"):
        p.call(boom(ConnectionError()))


async def test_fallback_never_swallows_cancellation() -> None:
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(3600)

    p = Pipeline([Fallback("x", on=BaseException)])
    task = asyncio.ensure_future(p.call_async(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({}, "handler"),
        ({"value": 1, "handler": lambda c, e: 2}, "value"),
        ({"handler": 3}, "handler"),
        ({"value": 1, "on": "Exception"}, "on"),
        ({"value": 1, "on": ()}, "on"),
        ({"value": 1, "on_rejected": "yes"}, "on_rejected"),
        ({"value": 1, "on_result": 4}, "on_result"),
    ],
)
def test_fallback_bad_parameters(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        Fallback(**kwargs)
    assert parameter == info.value.parameter


# -- pipeline order --------------------------------------------------------------------------------


def test_default_order_is_documented_order(fake_clock: FakeClock) -> None:
    attempt_t = Timeout(1.0, scope="attempt", clock=fake_clock)
    retry = Retry(clock=fake_clock, budget=None)
    total = Timeout(5.0, clock=fake_clock)
    fb = Fallback(None)
    p = Pipeline([attempt_t, retry, fb, total])
    assert [fb, total, retry, attempt_t] == list(p.policies)
    given = Pipeline([attempt_t, retry, fb, total], order="given")
    assert [attempt_t, retry, fb, total] == list(given.policies)


def test_order_changes_behaviour(fake_clock: FakeClock) -> None:
    """Default: the fallback sits outside the retry and answers after the retries ran out.
    Given (retry outside the fallback): the fallback answers at once and nothing is retried."""
    calls = 0

    def down() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    def policies() -> list[Any]:
        return [
            Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock),
            Fallback("fallback"),
        ]

    assert "fallback" == Pipeline(policies()).call(down)
    assert 3 == calls
    calls = 0
    assert "fallback" == Pipeline(policies(), order="given").call(down)
    assert 1 == calls


def test_builder_matches_the_constructor(fake_clock: FakeClock) -> None:
    p = (
        Pipeline.builder("payments", clock=fake_clock)
        .attempt_timeout(0.5)
        .retry(attempts=4, budget=None)
        .fallback("x")
        .timeout(2)
        .build()
    )
    assert ["fallback", "timeout", "retry", "timeout"] == [q.kind for q in p.policies]
    assert "payments" == p.name
    retry = p.policies[2]
    assert isinstance(retry, Retry)
    assert retry.budget is None
    assert 4 == retry.attempts
    with pytest.raises(ConfigError, match="invalid policy=42"):
        PipelineBuilder().add(42)  # type: ignore[arg-type]


def test_pipeline_rejects_non_policies_and_bad_order() -> None:
    with pytest.raises(ConfigError, match=r"invalid policies\[1\]='retry'"):
        Pipeline([Fallback(1), "retry"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="invalid order='random'"):
        Pipeline([], order="random")  # type: ignore[arg-type]


# -- decorator and calling -------------------------------------------------------------------------


async def test_one_pipeline_decorates_def_and_async_def(fake_clock: FakeClock) -> None:
    p = Pipeline(
        [Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock)],
        name="shared",
    )
    sync_calls = 0
    async_calls = 0

    @p
    def sync_op(x: int, *, y: int = 0) -> int:
        """Sync docs."""
        nonlocal sync_calls
        sync_calls += 1
        if sync_calls < 2:
            raise ConnectionError
        return x + y

    @p
    async def async_op(x: int, *, y: int = 0) -> int:
        """Async docs."""
        nonlocal async_calls
        async_calls += 1
        if async_calls < 3:
            raise ConnectionError
        return x * y

    assert 5 == sync_op(2, y=3)
    assert 6 == await async_op(2, y=3)
    assert (2, 3) == (sync_calls, async_calls)
    assert inspect.iscoroutinefunction(async_op)
    assert not inspect.iscoroutinefunction(sync_op)
    assert ("sync_op", "Sync docs.") == (sync_op.__name__, sync_op.__doc__)
    assert ("async_op", "Async docs.") == (async_op.__name__, async_op.__doc__)
    assert p is sync_op.__buttress_pipeline__  # type: ignore[attr-defined]
    assert p is async_op.__buttress_pipeline__  # type: ignore[attr-defined]


async def test_call_and_call_async_pass_arguments(fake_clock: FakeClock) -> None:
    p = Pipeline([Timeout(1.0, clock=fake_clock), Fallback(-1)])

    async def adiv(a: int, b: int) -> float:
        return a / b

    assert 2.0 == p.call(lambda a, b: a / b, 4, b=2)
    assert -1 == p.call(lambda a, b: a / b, 4, 0)
    assert 2.0 == await p.call_async(adiv, 4, b=2)
    assert -1 == await p.call_async(adiv, 4, 0)


def test_a_policy_alone_is_a_decorator(fake_clock: FakeClock) -> None:
    calls = 0

    @Retry(attempts=2, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock)
    def op() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError
        return "ok"

    assert "ok" == op()


# -- events ----------------------------------------------------------------------------------------


def test_events_of_a_retried_then_successful_call(fake_clock: FakeClock) -> None:
    seen: list[Event] = []
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError
        return "ok"

    p = Pipeline(
        [Retry(attempts=3, backoff=Backoff.constant(0.5), budget=None, clock=fake_clock)],
        name="evented",
        clock=fake_clock,
    )
    remove = add_listener(seen.append)
    try:
        assert "ok" == p.call(flaky)
    finally:
        remove()
    mine = [e for e in seen if e.pipeline == "evented"]
    assert [
        "buttress_retry_attempt_failed",
        "buttress_retry_scheduled",
        "buttress_retry_attempt_failed",
        "buttress_retry_scheduled",
        "buttress_retry_attempt_succeeded",
        "buttress_pipeline_call_succeeded",
    ] == [e.name for e in mine]
    scheduled = [e for e in mine if e.kind == "scheduled"]
    assert [(1, 0.5), (2, 0.5)] == [(e.attempt, e.delay) for e in scheduled]  # type: ignore[attr-defined]
    assert all(e.policy == "retry" for e in mine[:-1])


def test_events_of_a_call_that_gives_up_into_a_fallback(fake_clock: FakeClock) -> None:
    seen: list[Event] = []
    p = Pipeline(
        [
            Retry(attempts=2, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock),
            Fallback("fb", clock=fake_clock),
        ],
        name="gives-up",
        clock=fake_clock,
    )
    remove = add_listener(seen.append)
    try:
        assert "fb" == p.call(boom(ConnectionError()))
    finally:
        remove()
    mine = [e for e in seen if e.pipeline == "gives-up"]
    assert [
        "buttress_retry_attempt_failed",
        "buttress_retry_scheduled",
        "buttress_retry_attempt_failed",
        "buttress_retry_gave_up",
        "buttress_fallback_used",
        "buttress_pipeline_call_succeeded",
    ] == [e.name for e in mine]
    assert "attempts" == mine[3].reason  # type: ignore[attr-defined]
    assert fake_clock.monotonic() == mine[4].time


def test_no_listener_means_no_events_and_a_removed_listener_hears_nothing() -> None:
    seen: list[Event] = []
    p = Pipeline([Fallback(0)], name="quiet")
    assert not p.emitter.active
    remove = add_listener(seen.append)
    assert p.emitter.active
    remove()
    assert not p.emitter.active
    p.call(boom(ConnectionError()))
    assert [] == seen


def test_a_broken_listener_never_breaks_the_call(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    p = Pipeline([Fallback(0)], name="robust")
    remove_own = p.add_listener(broken)
    try:
        assert 0 == p.call(boom(ConnectionError()))
    finally:
        remove_own()
    assert "listener" in caplog.text
