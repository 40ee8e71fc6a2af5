"""Budgets and nested retries under 16 threads and under 1,000 asyncio tasks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from buttress import Backoff, Pipeline, Retry, RetryBudget, Timeout
from buttress.policies.budget import TokenBucketBudget
from buttress.testing import FakeClock

THREADS = 16
TASKS = 1000


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Make the interpreter switch threads very often, so races have room to happen."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def run_threads(n: int, work: Callable[[], None]) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def body() -> None:
        barrier.wait()
        try:
            work()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=body) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [] == errors


class Counter:
    def __init__(self) -> None:
        self._c = itertools.count()
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> None:
        with self._lock:
            self.value += 1


# -- budgets ---------------------------------------------------------------------------------------


def test_ratio_budget_under_16_threads(busy_switching: None) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_second=0.05, ttl=1000, clock=clock)  # reserve 50
    retry = Retry(attempts=5, backoff=Backoff.constant(0.0), budget=budget, clock=clock)
    calls = Counter()

    @retry
    def down() -> None:
        calls.bump()
        raise ConnectionError

    per_thread = 250

    def work() -> None:
        for _ in range(per_thread):
            try:
                down()
            except ConnectionError:
                pass

    run_threads(THREADS, work)
    requests = THREADS * per_thread
    retries = calls.value - requests
    assert retries <= 0.1 * requests + 50  # the promise
    assert retries >= 0.9 * (0.1 * requests + 50)  # and the budget is really spent


def test_token_bucket_under_16_threads(busy_switching: None) -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(max_tokens=10, token_ratio=0.1)
    retry = Retry(attempts=5, backoff=Backoff.constant(0.0), budget=budget, clock=clock)
    calls = Counter()

    @retry
    def down() -> None:
        calls.bump()
        raise ConnectionError

    def work() -> None:
        for _ in range(100):
            try:
                down()
            except ConnectionError:
                pass

    run_threads(THREADS, work)
    retries = calls.value - THREADS * 100
    # Every grant needs tokens > 5 after its own failure was taken: at most 4 grants ever.
    assert 1 <= retries <= 4
    assert 0.0 == budget.tokens


async def test_ratio_budget_under_1000_tasks() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_per_second=0.01, ttl=10_000, clock=clock)  # reserve 100
    retry = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=budget, clock=clock)
    calls = 0

    @retry
    async def down() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError

    results = await asyncio.gather(*(down() for _ in range(TASKS)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    retries = calls - TASKS
    assert retries <= 0.2 * TASKS + 100
    assert retries >= 0.9 * (0.2 * TASKS + 100)


async def test_token_bucket_under_1000_tasks() -> None:
    clock = FakeClock()
    budget = TokenBucketBudget(max_tokens=20, token_ratio=0.5)
    retry = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=budget, clock=clock)
    calls = 0

    @retry
    async def down() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError

    await asyncio.gather(*(down() for _ in range(TASKS)), return_exceptions=True)
    assert 1 <= calls - TASKS <= 9  # tokens > 10 after each granted failure: at most 9 grants


# -- nested retries --------------------------------------------------------------------------------


def nested_pair(
    clock: FakeClock, nested: str = "single", outer_attempts: int = 3
) -> tuple[Callable[[], None], Counter]:
    leaf_calls = Counter()
    inner = Retry(
        attempts=4,
        backoff=Backoff.constant(0.0),
        budget=None,
        clock=clock,
        nested=nested,  # type: ignore[arg-type]
    )
    outer = Retry(attempts=outer_attempts, backoff=Backoff.constant(0.0), budget=None, clock=clock)

    @inner
    def leaf() -> None:
        leaf_calls.bump()
        raise ConnectionError

    @outer
    def service() -> None:
        leaf()

    return service, leaf_calls


def test_nested_inner_makes_one_attempt_per_outer_attempt(fake_clock: FakeClock) -> None:
    service, leaf = nested_pair(fake_clock)
    with pytest.raises(ConnectionError):
        service()
    assert 3 == leaf.value


def test_nested_multiply_is_opt_in(fake_clock: FakeClock) -> None:
    service, leaf = nested_pair(fake_clock, nested="multiply")
    with pytest.raises(ConnectionError):
        service()
    assert 12 == leaf.value


def test_an_outer_retry_that_cannot_retry_does_not_silence_the_inner(fake_clock: FakeClock) -> None:
    service, leaf = nested_pair(fake_clock, outer_attempts=1)
    with pytest.raises(ConnectionError):
        service()
    assert 4 == leaf.value


def test_nested_retries_under_16_threads(busy_switching: None) -> None:
    clock = FakeClock()
    service, leaf = nested_pair(clock)

    def work() -> None:
        for _ in range(50):
            try:
                service()
            except ConnectionError:
                pass

    run_threads(THREADS, work)
    assert THREADS * 50 * 3 == leaf.value


def test_nesting_is_seen_through_a_hard_timeout_worker_thread(fake_clock: FakeClock) -> None:
    leaf_calls = Counter()
    inner = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock)

    @inner
    def leaf() -> None:
        leaf_calls.bump()
        raise ConnectionError

    outer = Pipeline(
        [
            Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=fake_clock),
            Timeout(5.0, scope="attempt", hard=True),
        ]
    )
    with pytest.raises(ConnectionError):
        outer.call(leaf)
    assert 3 == leaf_calls.value


async def test_nested_retries_under_1000_tasks() -> None:
    clock = FakeClock()
    leaf_calls = 0
    inner = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    outer = Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=clock)

    @inner
    async def leaf() -> None:
        nonlocal leaf_calls
        leaf_calls += 1
        await asyncio.sleep(0)
        raise ConnectionError

    @outer
    async def service() -> None:
        await leaf()

    results = await asyncio.gather(*(service() for _ in range(TASKS)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert TASKS * 3 == leaf_calls


async def test_nesting_follows_work_into_child_tasks() -> None:
    clock = FakeClock()
    leaf_calls = 0
    inner = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    outer = Retry(attempts=2, backoff=Backoff.constant(0.0), budget=None, clock=clock)

    @inner
    async def leaf() -> None:
        nonlocal leaf_calls
        leaf_calls += 1
        raise ConnectionError

    @outer
    async def fan_out() -> None:
        results = await asyncio.gather(leaf(), leaf(), return_exceptions=True)
        raise results[0]  # type: ignore[misc]

    with pytest.raises(ConnectionError):
        await fan_out()
    assert 2 * 2 == leaf_calls


async def test_sync_retry_inside_async_retry_is_nested() -> None:
    clock = FakeClock()
    calls = 0
    inner = Retry(attempts=4, backoff=Backoff.constant(0.0), budget=None, clock=clock)

    @inner
    def blocking_leaf() -> Any:
        nonlocal calls
        calls += 1
        raise ConnectionError

    @Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    async def service() -> Any:
        return await asyncio.to_thread(blocking_leaf)

    with pytest.raises(ConnectionError):
        await service()
    assert 3 == calls


@pytest.mark.parametrize("ending", ["returns", "raises an error not retried"])
async def test_a_task_that_outlives_the_attempt_is_not_nested(ending: str) -> None:
    """Fire and forget: a task spawned during an attempt retries on its own after the attempt,
    however the attempt ended (the mark is withdrawn on every way out, an error the retry does
    not handle included)."""
    from buttress.policies.retry_nesting import RETRY_MARK

    clock = FakeClock()
    leaf_calls = 0
    spawned: list[asyncio.Task[None]] = []

    @Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    async def leaf() -> None:
        nonlocal leaf_calls
        leaf_calls += 1
        raise ConnectionError

    async def background() -> None:
        await asyncio.sleep(0.01)  # until the request below has ended
        with contextlib.suppress(ConnectionError):
            await leaf()

    @Retry(attempts=2, on=ConnectionError, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    async def request() -> str:
        spawned.append(asyncio.create_task(background()))
        if ending == "returns":
            return "ok"
        raise KeyError("not retried")

    if ending == "returns":
        assert "ok" == await request()
    else:
        with pytest.raises(KeyError):
            await request()
    assert RETRY_MARK.get() is None
    await spawned[0]
    assert 3 == leaf_calls
