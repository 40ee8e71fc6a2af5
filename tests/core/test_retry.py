"""Retry semantics, each on the fake clock."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import pytest

from buttress import (
    Backoff,
    CircuitOpen,
    ConfigError,
    DeadlineExceeded,
    Pipeline,
    RateLimited,
    Retry,
    RetryBudget,
    Timeout,
    deadline,
)
from buttress.context import Context
from buttress.events import Event, add_listener
from buttress.testing import FakeClock


class Flaky:
    """Fails ``failures`` times with ``error`` (a new one each time), then returns ``value``."""

    def __init__(
        self, failures: int, error: type[BaseException] = ConnectionError, value: Any = "ok"
    ):
        self.failures = failures
        self.error = error
        self.value = value
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            e = self.error(f"failure {self.calls}")
            self.raised.append(e)
            raise e
        return self.value

    async def async_call(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


def make(clock: FakeClock, **kw: Any) -> Retry:
    kw.setdefault("backoff", Backoff.constant(1.0))
    kw.setdefault("budget", None)
    return Retry(clock=clock, **kw)


# -- attempts and delays ---------------------------------------------------------------------------


def test_retries_until_success_sleeping_the_backoff(fake_clock: FakeClock) -> None:
    op = Flaky(2)
    f = make(fake_clock, attempts=3)(op)
    assert "ok" == f()
    assert 3 == op.calls
    assert [1.0, 1.0] == fake_clock.sleeps


def test_attempts_count_the_first_call_and_the_last_error_is_raised(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    f = make(fake_clock, attempts=4)(op)
    with pytest.raises(ConnectionError) as info:
        f()
    assert 4 == op.calls
    assert op.raised[-1] is info.value
    assert 3 == len(fake_clock.sleeps)


def test_attempts_one_never_retries(fake_clock: FakeClock) -> None:
    op = Flaky(1)
    with pytest.raises(ConnectionError):
        make(fake_clock, attempts=1)(op)()
    assert 1 == op.calls
    assert [] == fake_clock.sleeps


def test_exponential_backoff_sleeps_follow_the_curve(fake_clock: FakeClock) -> None:
    op = Flaky(4)
    b = Backoff.exponential(0.5, multiplier=3, cap=10, jitter="none")
    make(fake_clock, attempts=5, backoff=b)(op)()
    assert [0.5, 1.5, 4.5, 10.0] == fake_clock.sleeps


def test_max_elapsed_gives_up_before_starting_a_late_retry(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    f = make(fake_clock, attempts=10, max_elapsed=2.5)(op)
    with pytest.raises(ConnectionError) as info:
        f()
    # retries at +1 and +2; the one at +3 would start past 2.5 s.
    assert 3 == op.calls
    assert [1.0, 1.0] == fake_clock.sleeps
    assert op.raised[-1] is info.value


# -- what is retried -------------------------------------------------------------------------------


def test_only_listed_exception_types_are_retried(fake_clock: FakeClock) -> None:
    op = Flaky(1, error=ValueError)
    with pytest.raises(ValueError):
        make(fake_clock, on=(ConnectionError, TimeoutError))(op)()
    assert 1 == op.calls
    op2 = Flaky(1, error=TimeoutError)
    assert "ok" == make(fake_clock, on=(ConnectionError, TimeoutError))(op2)()
    assert 2 == op2.calls


def test_exception_predicate_refines_on(fake_clock: FakeClock) -> None:
    def transient(e: BaseException) -> bool:
        return "failure 1" in str(e)

    op = Flaky(3)
    with pytest.raises(ConnectionError, match="failure 2"):
        make(fake_clock, attempts=5, retry_if=transient)(op)()
    assert 2 == op.calls


def test_predicate_delay_replaces_the_backoff(fake_clock: FakeClock) -> None:
    """A predicate may return the delay itself, e.g. parsed from Retry-After."""

    class Throttled(Exception):
        retry_after = 7.5

    def retry_after(e: BaseException) -> float | bool:
        return getattr(e, "retry_after", True)

    op = Flaky(1, error=Throttled)
    assert "ok" == make(fake_clock, retry_if=retry_after)(op)()
    assert [7.5] == fake_clock.sleeps


def test_infinite_predicate_delay_means_do_not_retry(fake_clock: FakeClock) -> None:
    op = Flaky(1)
    with pytest.raises(ConnectionError):
        make(fake_clock, retry_if=lambda e: math.inf)(op)()
    assert 1 == op.calls


def test_result_predicate_retries_and_returns_the_last_result(fake_clock: FakeClock) -> None:
    results = iter([503, 503, 503, 503])
    f = make(fake_clock, attempts=3, retry_if_result=lambda r: r == 503)(lambda: next(results))
    assert 503 == f()
    assert 2 == len(fake_clock.sleeps)

    results2 = iter([503, 429, 200])

    def delay_for(status: int) -> float | bool:
        return {503: True, 429: 2.0}.get(status, False)

    clock = FakeClock()
    f2 = make(clock, attempts=5, retry_if_result=delay_for)(lambda: next(results2))
    assert 200 == f2()
    assert [1.0, 2.0] == clock.sleeps


@pytest.mark.parametrize("error", [CircuitOpen, RateLimited, DeadlineExceeded])
def test_rejections_are_never_retried_by_default(fake_clock: FakeClock, error: type) -> None:
    op = Flaky(1, error=error)
    with pytest.raises(error):
        make(fake_clock)(op)()
    assert 1 == op.calls
    op2 = Flaky(1, error=error)
    assert "ok" == make(fake_clock, retry_rejected=True)(op2)()


def test_interrupts_are_never_retried_even_when_listed(fake_clock: FakeClock) -> None:
    op = Flaky(1, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        make(fake_clock, on=BaseException)(op)()
    assert 1 == op.calls


# -- deadlines -------------------------------------------------------------------------------------


def test_deadline_stops_retries_early_with_the_last_error(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    f = make(fake_clock, attempts=10, backoff=Backoff.constant(2.0))(op)
    start = fake_clock.monotonic()
    with deadline(5.0, clock=fake_clock), pytest.raises(ConnectionError) as info:
        f()
    # attempts at +0, +2, +4; sleeping to +6 would pass the deadline: give up at once.
    assert 3 == op.calls
    assert op.raised[-1] is info.value
    assert start + 4.0 == fake_clock.monotonic()


def test_total_timeout_bounds_the_retries(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    p = Pipeline(
        [
            Timeout(3.5, clock=fake_clock),
            make(fake_clock, attempts=10, backoff=Backoff.constant(1.0)),
        ]
    )
    with pytest.raises(ConnectionError):
        p.call(op)
    assert 4 == op.calls  # +0, +1, +2, +3
    assert 3.0 == sum(fake_clock.sleeps)


def test_context_deadline_flows_into_retries(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    p = Pipeline([make(fake_clock, attempts=10)])
    ctx = Context(deadline=fake_clock.monotonic() + 2.5)
    with pytest.raises(ConnectionError):
        p.call_with_context(ctx, op)
    assert 3 == op.calls
    assert 3 == ctx.attempt


# -- budget ----------------------------------------------------------------------------------------


def test_budget_exhaustion_reraises_the_last_error_and_emits(fake_clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.2, ttl=10, clock=fake_clock)  # 2 retries
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        op = Flaky(100)
        p = Pipeline([make(fake_clock, attempts=10, budget=budget)], name="budgeted")
        with pytest.raises(ConnectionError) as info:
            p.call(op)
    finally:
        remove()
    assert 3 == op.calls
    assert op.raised[-1] is info.value  # the last error, not RetryBudgetExhausted
    names = [e.name for e in seen if e.pipeline == "budgeted"]
    assert 1 == names.count("buttress_retry_budget_exhausted")
    gave_up = [e for e in seen if e.name == "buttress_retry_gave_up" and e.pipeline == "budgeted"]
    assert ["budget"] == [e.reason for e in gave_up]  # type: ignore[attr-defined]


def test_default_budget_is_per_policy_and_finagle_shaped(fake_clock: FakeClock) -> None:
    r = Retry(clock=fake_clock)
    assert isinstance(r.budget, RetryBudget)
    assert 0.2 == r.budget.ratio


def test_shared_budget_bounds_retries_across_policies(fake_clock: FakeClock) -> None:
    budget = RetryBudget(ratio=0.5, min_per_second=0, ttl=60, clock=fake_clock)
    a = make(fake_clock, attempts=3, budget=budget, backoff=Backoff.constant(0.0))
    b = make(fake_clock, attempts=3, budget=budget, backoff=Backoff.constant(0.0))
    op = Flaky(10**9)
    for policy in (a, b) * 10:
        with pytest.raises(ConnectionError):
            policy(op)()
    retries = op.calls - 20
    assert retries <= 0.5 * 20
    assert retries >= 9


# -- async -----------------------------------------------------------------------------------------


async def test_async_retry_on_the_fake_clock(fake_clock: FakeClock) -> None:
    op = Flaky(2)
    f = make(fake_clock, attempts=3)(op.async_call)
    assert "ok" == await f()
    assert 3 == op.calls
    assert [1.0, 1.0] == fake_clock.sleeps


async def test_async_deadline_stops_early_with_the_last_error(fake_clock: FakeClock) -> None:
    op = Flaky(10)
    f = make(fake_clock, attempts=10, backoff=Backoff.constant(2.0))(op.async_call)
    with deadline(3.0, clock=fake_clock), pytest.raises(ConnectionError) as info:
        await f()
    assert 2 == op.calls
    assert op.raised[-1] is info.value


async def test_async_cancellation_propagates_and_is_never_retried() -> None:
    started = asyncio.Event()
    calls = 0

    async def hang() -> None:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(3600)

    f = Retry(on=BaseException, attempts=5, budget=None)(hang)
    task = asyncio.ensure_future(f())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 == calls


async def test_async_cancellation_during_backoff_sleep_propagates() -> None:
    calls = 0

    async def fail() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    f = Retry(attempts=5, backoff=Backoff.constant(3600.0), budget=None)(fail)
    task = asyncio.ensure_future(f())
    while calls == 0:
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 == calls


def test_retry_updates_the_call_context_attempt(fake_clock: FakeClock) -> None:
    seen: list[int] = []
    from buttress.context import current_context

    def op() -> str:
        seen.append(current_context().attempt)
        if len(seen) < 3:
            raise ConnectionError
        return "ok"

    p = Pipeline([make(fake_clock, attempts=3)])
    assert "ok" == p.call_with_context(Context(), op)
    assert [1, 2, 3] == seen


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"attempts": 0}, "attempts"),
        ({"attempts": 2.5}, "attempts"),
        ({"attempts": True}, "attempts"),
        ({"max_elapsed": -1.0}, "max_elapsed"),
        ({"on": "ConnectionError"}, "on"),
        ({"retry_if": 3}, "retry_if"),
        ({"retry_if_result": "x"}, "retry_if_result"),
        ({"nested": "sometimes"}, "nested"),
        ({"budget": 0.2}, "budget"),
        ({"backoff": 1.0}, "backoff"),
        ({"clock": object()}, "clock"),
    ],
)
def test_bad_parameters_fail_at_build(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        Retry(**kwargs)
    assert parameter == info.value.parameter
    assert f"invalid {parameter}={kwargs[parameter]!r}" in str(info.value)


def test_decision_is_sans_io() -> None:
    r = Retry(attempts=3, backoff=Backoff.constant(1.0), budget=None)
    decide: Callable[..., float | str] = r.decide
    assert 1.0 == decide(attempt=1, started=0.0, now=0.0, verdict=True)
    assert "attempts" == decide(attempt=3, started=0.0, now=0.0, verdict=True)
    assert "not_retryable" == decide(attempt=1, started=0.0, now=0.0, verdict=False)
    assert "deadline" == decide(attempt=1, started=0.0, now=0.0, verdict=True, deadline=1.0)
    assert "nested" == decide(attempt=1, started=0.0, now=0.0, verdict=True, nested=True)
    assert 0.0 == decide(attempt=1, started=0.0, now=0.0, verdict=-3.0)
