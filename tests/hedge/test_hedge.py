"""Hedging with real asyncio tasks and real threads: winners, cancelled losers, the budget."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

import pytest

from buttress import CircuitBreaker, CircuitOpen, ConfigError, Hedge, Pipeline, RetryBudget
from buttress.events import Event
from buttress.policies.hedge import (
    AdaptiveDelay,
    HedgeBudgetExhausted,
    HedgeLaunched,
    HedgeLosersCancelled,
    HedgeWon,
)
from buttress.testing import FakeClock


class Attempts:
    """A dependency whose n-th attempt behaves as scripted: a delay then a value or an error."""

    def __init__(self, *script: tuple[float, Any]) -> None:
        self.script = script
        self.started = 0
        self.cancelled: list[int] = []
        self.finished: list[int] = []

    async def __call__(self) -> Any:
        n = self.started
        self.started += 1
        delay, what = self.script[min(n, len(self.script) - 1)]
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.cancelled.append(n + 1)
            raise
        self.finished.append(n + 1)
        if isinstance(what, BaseException):
            raise what
        return what


def _pipeline(**kw: Any) -> tuple[Hedge, Pipeline, list[Event]]:
    kw.setdefault("budget", None)
    h = Hedge(**kw)
    p = Pipeline([h], name="search")
    seen: list[Event] = []
    p.add_listener(seen.append)
    return h, p, seen


async def test_a_slow_primary_is_hedged_and_the_loser_cancelled() -> None:
    dep = Attempts((10.0, "primary"), (0.0, "hedge"))
    _, p, seen = _pipeline(delay=0.02)
    t0 = time.perf_counter()
    assert "hedge" == await p.call_async(dep)
    assert time.perf_counter() - t0 < 2.0
    assert 2 == dep.started
    assert [1] == dep.cancelled  # the primary was cancelled, not left running
    launched = [e for e in seen if isinstance(e, HedgeLaunched)]
    assert [(2, "delay")] == [(e.attempt, e.reason) for e in launched]
    assert [(2, 2)] == [(e.attempt, e.launched) for e in seen if isinstance(e, HedgeWon)]
    assert [1] == [e.count for e in seen if isinstance(e, HedgeLosersCancelled)]
    assert "buttress_hedge_launched" == launched[0].name


async def test_a_fast_primary_is_not_hedged() -> None:
    dep = Attempts((0.0, "primary"))
    _, p, seen = _pipeline(delay=0.5)
    assert "primary" == await p.call_async(dep)
    assert 1 == dep.started
    assert [] == [e for e in seen if e.policy_type == "hedge"]


async def test_up_to_max_hedges_and_every_loser_cancelled() -> None:
    dep = Attempts((10.0, "a"), (10.0, "b"), (0.01, "c"), (0.0, "d"))
    _, p, seen = _pipeline(delay=0.02, max_hedges=2)
    assert "c" == await p.call_async(dep)
    assert 3 == dep.started  # never a 4th
    assert [1, 2] == sorted(dep.cancelled)
    assert [(3, 3)] == [(e.attempt, e.launched) for e in seen if isinstance(e, HedgeWon)]


async def test_a_failure_starts_the_next_attempt_at_once() -> None:
    dep = Attempts((0.0, ConnectionError("reset")), (0.0, "second"))
    _, p, seen = _pipeline(delay=30.0)
    t0 = time.perf_counter()
    assert "second" == await p.call_async(dep)
    assert time.perf_counter() - t0 < 5.0  # did not wait for the 30 s delay
    assert ["failure"] == [e.reason for e in seen if isinstance(e, HedgeLaunched)]


async def test_all_attempts_failing_raise_the_last_error() -> None:
    dep = Attempts((0.0, ConnectionError("one")), (0.0, ConnectionError("two")))
    _, p, _ = _pipeline(delay=0.01, max_hedges=1)
    with pytest.raises(ConnectionError, match="two"):
        await p.call_async(dep)
    assert 2 == dep.started


async def test_a_rejection_starts_no_hedge() -> None:
    dep = Attempts((0.0, CircuitOpen("open", policy="cb", retry_after=3.0)))
    _, p, seen = _pipeline(delay=0.01, max_hedges=3)
    with pytest.raises(CircuitOpen):
        await p.call_async(dep)
    assert 1 == dep.started
    assert [] == [e for e in seen if isinstance(e, HedgeLaunched)]


async def test_an_error_outside_on_is_final_and_cancels_the_others() -> None:
    dep = Attempts((10.0, "slow"), (0.0, ValueError("bug")))
    _, p, _ = _pipeline(delay=0.01, on=(ConnectionError,))
    with pytest.raises(ValueError, match="bug"):
        await p.call_async(dep)
    assert [1] == dep.cancelled


async def test_cancelling_the_caller_cancels_every_attempt() -> None:
    dep = Attempts((10.0, "a"), (10.0, "b"))
    _, p, _ = _pipeline(delay=0.01)
    task = asyncio.create_task(p.call_async(dep))
    while dep.started < 2:
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [1, 2] == sorted(dep.cancelled)


async def test_hedges_draw_on_the_retry_budget() -> None:
    clock = FakeClock()
    # no ratio, a reserve of exactly one retry per 10 s window
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, ttl=10.0, clock=clock)
    _, p, seen = _pipeline(delay=0.01, budget=budget, clock=clock)
    first = Attempts((10.0, "primary"), (0.0, "hedge"))
    assert "hedge" == await p.call_async(first)
    second = Attempts((0.05, "primary"), (0.0, "hedge"))
    assert "primary" == await p.call_async(second)  # no token left: waited for the primary
    assert 1 == second.started
    assert [2] == [e.attempt for e in seen if isinstance(e, HedgeBudgetExhausted)]
    exhausted = next(e for e in seen if isinstance(e, HedgeBudgetExhausted))
    assert "buttress_hedge_budget_exhausted" == exhausted.name
    clock.advance(11.0)  # the window has moved past the first hedge: one more
    third = Attempts((10.0, "primary"), (0.0, "hedge"))
    assert "hedge" == await p.call_async(third)


async def test_no_budget_means_no_hedges_when_the_budget_is_empty() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)
    _, p, _ = _pipeline(delay=0.0, max_hedges=5, budget=budget, clock=clock)
    dep = Attempts((0.02, "primary"), (0.0, "hedge"))
    assert "primary" == await p.call_async(dep)
    assert 1 == dep.started


async def test_every_hedge_passes_the_breaker() -> None:
    breaker = CircuitBreaker(minimum_calls=1, window_size=1)
    p = Pipeline([breaker, Hedge(delay=0.01, budget=None)])
    assert ("hedge", "circuit_breaker") == tuple(x.kind for x in p.policies)
    breaker.force_open()
    dep = Attempts((0.0, "x"))
    with pytest.raises(CircuitOpen):
        await p.call_async(dep)
    assert 0 == dep.started


# --- adaptive delay -------------------------------------------------------------------------------


def test_adaptive_delay_is_the_nearest_rank_percentile() -> None:
    d = AdaptiveDelay(percentile=0.95, initial=0.5, samples=100, min_samples=10, refresh_every=1)
    for i in range(9):
        d.observe(i / 1000)
    assert 0.5 == d.current()  # not enough samples yet
    for i in range(9, 100):
        d.observe(i / 1000)
    assert 0.094 == d.current()  # sorted 0.000..0.099: rank ceil(95) = 95 -> 0.094
    for _ in range(100):
        d.observe(1.0)  # the ring forgets the old samples
    assert 1.0 == d.current()
    assert 3 == AdaptiveDelay.quantile([5, 1, 3, 2, 4], 0.5)
    assert 5 == AdaptiveDelay.quantile([5, 1, 3, 2, 4], 1.0)


def test_adaptive_delay_is_clamped() -> None:
    d = AdaptiveDelay(
        percentile=0.5, initial=0.1, min_samples=1, refresh_every=1, min_delay=0.01, max_delay=0.2
    )
    d.observe(0.0001)
    assert 0.01 == d.current()
    d.observe(5.0)
    d.observe(5.0)
    assert 0.2 == d.current()


async def test_adaptive_hedge_learns_its_delay_from_winning_latencies() -> None:
    h, p, _ = _pipeline(delay=5.0, percentile=0.9, min_samples=5)
    assert 5.0 == h.current_delay()
    for _ in range(5):
        await p.call_async(Attempts((0.01, "ok")))
    assert 0.005 < h.current_delay() < 1.0


# --- threads --------------------------------------------------------------------------------------


def test_sync_hedging_in_threads_returns_the_first_success() -> None:
    h = Hedge(delay=0.02, threads=True, budget=None, max_workers=4)
    p = Pipeline([h])
    started: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()
    done = threading.Event()

    def dep() -> str:
        with lock:
            n = len(started) + 1
            started.append(n)
        if n == 1:
            done.wait(5)  # the primary is stuck until we let it go
        with lock:
            finished.append(n)
        return f"attempt {n}"

    t0 = time.perf_counter()
    assert "attempt 2" == p.call(dep)
    assert time.perf_counter() - t0 < 3.0
    assert [2] == finished  # the loser is still running: threads cannot be killed
    done.set()
    h.shutdown(wait=True)
    assert [2, 1] == finished  # it ran to the end in the background; its result was discarded


def test_sync_hedging_respects_the_budget_and_max_hedges() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock)
    h = Hedge(delay=0.0, max_hedges=3, threads=True, budget=budget, clock=clock)
    p = Pipeline([h])
    calls: list[int] = []

    def dep() -> str:
        calls.append(1)
        time.sleep(0.02)
        return "ok"

    assert "ok" == p.call(dep)
    h.shutdown()
    assert 1 == len(calls)


def test_sync_without_threads_does_not_hedge() -> None:
    p = Pipeline([Hedge(delay=0.0, budget=None)])
    calls: list[int] = []
    assert 1 == p.call(lambda: calls.append(1) or 1)
    assert 1 == len(calls)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"delay": -0.1}, "delay"),
        ({"delay": math.inf}, "delay"),
        ({"max_hedges": 0}, "max_hedges"),
        ({"percentile": 0}, "percentile"),
        ({"percentile": 1.5}, "percentile"),
        ({"percentile": 0.9, "samples": 0}, "samples"),
        ({"percentile": 0.9, "min_delay": -1}, "min_delay"),
        ({"percentile": 0.9, "min_delay": 1.0, "max_delay": 0.5}, "max_delay"),
        ({"max_delay": -2}, "max_delay"),
        ({"on": "ConnectionError"}, "on"),
        ({"budget": 3}, "budget"),
        ({"max_workers": 0}, "max_workers"),
    ],
)
def test_bad_input_fails_at_build_naming_the_parameter(kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(ConfigError) as e:
        Hedge(**kwargs)
    assert param == e.value.parameter
