"""The AdaptiveLimit policy: admission against the learned limit, samples from real calls,
events."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from buttress.errors import AttemptTimeout, ConfigError, LoadShed, RateLimited, Rejected
from buttress.events import Event
from buttress.pipeline import Pipeline
from buttress.policies.limits import (
    AIMD,
    AdaptiveLimit,
    ConcurrencyLimitExceeded,
    Gradient2,
    LimitChanged,
    LimitRejected,
    Vegas,
)
from buttress.testing import FakeClock


def aimd(initial: int = 4, **kw: Any) -> AIMD:
    opts: dict[str, Any] = {"min_limit": 1, "max_limit": 10, "backoff_ratio": 0.5, "timeout": 1.0}
    opts.update(kw)
    return AIMD(initial_limit=initial, **opts)


def test_default_algorithm_is_vegas_and_bad_input_is_named() -> None:
    assert isinstance(AdaptiveLimit().algorithm, Vegas)
    assert 20 == AdaptiveLimit().limit
    with pytest.raises(ConfigError) as info:
        AdaptiveLimit("vegas")  # type: ignore[arg-type]
    assert "algorithm" == info.value.parameter
    with pytest.raises(ConfigError) as info:
        AdaptiveLimit(drop_on=5)  # type: ignore[arg-type]
    assert "drop_on" == info.value.parameter


async def test_limit_grows_with_concurrency_and_every_change_is_an_event(
    captured_events: list[Event],
) -> None:
    """Four calls in flight against a limit of 4: samples with inflight 1..4 grow it to 7."""
    clock = FakeClock()
    al = AdaptiveLimit(aimd(4), clock=clock, name="db")
    pipe = Pipeline([al], name="svc", clock=clock)
    gate = asyncio.Event()
    changes: list[tuple[int, int]] = []
    al.on_change(lambda old, new: changes.append((old, new)))

    tasks = [asyncio.create_task(pipe.call_async(gate.wait)) for _ in range(4)]
    await asyncio.sleep(0)
    assert 4 == al.inflight
    with pytest.raises(ConcurrencyLimitExceeded) as info:
        await pipe.call_async(asyncio.sleep, 0)
    assert isinstance(info.value, LoadShed)
    assert isinstance(info.value, Rejected)
    assert (4, 4) == (info.value.limit, info.value.inflight)
    assert "db" == info.value.policy
    gate.set()
    await asyncio.gather(*tasks)
    # samples in completion order carry inflight 1, 2, 3, 4: 1*2 < 4 holds; 4 >= 4, 6 >= 5, 8 >= 6
    # grow
    assert 7 == al.limit
    assert 0 == al.inflight
    assert [(4, 5), (5, 6), (6, 7)] == changes
    ev = [(e.old, e.new) for e in captured_events if isinstance(e, LimitChanged)]
    assert changes == ev
    rej = [e for e in captured_events if isinstance(e, LimitRejected)]
    assert [("svc", "db", 4, 4)] == [(e.pipeline, e.policy, e.limit, e.inflight) for e in rej]
    first = next(e for e in captured_events if isinstance(e, LimitChanged))
    assert "buttress_adaptive_limit_changed" == first.name


def test_drops_shrink_and_other_outcomes_are_not_samples() -> None:
    clock = FakeClock()
    al = AdaptiveLimit(aimd(8), clock=clock)
    pipe = Pipeline([al], clock=clock)

    def raise_(exc: BaseException) -> None:
        raise exc

    with pytest.raises(ValueError, match="bad"):
        pipe.call(raise_, ValueError("bad"))
    assert 8 == al.limit  # an ordinary error: not a sample
    with pytest.raises(RateLimited):
        pipe.call(raise_, RateLimited(policy="inner"))
    assert 8 == al.limit  # an inner refusal: not a sample
    with pytest.raises(TimeoutError):
        pipe.call(raise_, TimeoutError())
    assert 4 == al.limit  # a drop: floor(8 * 0.5)
    with pytest.raises(AttemptTimeout):
        pipe.call(raise_, AttemptTimeout(0.5))
    assert 2 == al.limit  # an attempt timeout is a TimeoutError: a drop
    assert 0 == al.inflight


def test_latency_is_measured_on_the_clock() -> None:
    """A call that takes 2 s on the clock (AIMD timeout 1 s) is a drop although it succeeded."""
    clock = FakeClock()
    al = AdaptiveLimit(aimd(8), clock=clock)
    pipe = Pipeline([al], clock=clock)
    assert "ok" == pipe.call(lambda: clock.advance(2.0) or "ok")
    assert 4 == al.limit


def test_custom_drop_types() -> None:
    al = AdaptiveLimit(aimd(8), drop_on=(ConnectionError,), clock=FakeClock())
    pipe = Pipeline([al])

    def refuse() -> None:
        raise ConnectionRefusedError

    with pytest.raises(ConnectionRefusedError):
        pipe.call(refuse)
    assert 4 == al.limit


async def test_async_drop_and_cancellation() -> None:
    clock = FakeClock()
    al = AdaptiveLimit(aimd(8), clock=clock)
    pipe = Pipeline([al], clock=clock)

    async def slow_fail() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await pipe.call_async(slow_fail)
    assert 4 == al.limit
    task = asyncio.create_task(pipe.call_async(asyncio.sleep, 10))
    await asyncio.sleep(0)
    assert 1 == al.inflight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (4, 0) == (al.limit, al.inflight)  # cancelled: released, not sampled


def test_threads_never_exceed_the_limit() -> None:
    """16 threads, 1,000 calls against a limit pinned at 4: never more than 4 in flight."""
    al = AdaptiveLimit(AIMD(initial_limit=4, min_limit=4, max_limit=4))
    pipe = Pipeline([al])
    lock = threading.Lock()
    now = peak = done = refused = 0

    def work() -> None:
        nonlocal now, peak, done
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.0001)
        with lock:
            now -= 1
            done += 1

    def attempt() -> None:
        nonlocal refused
        try:
            pipe.call(work)
        except ConcurrencyLimitExceeded:
            with lock:
                refused += 1

    with ThreadPoolExecutor(16) as pool:
        for f in [pool.submit(attempt) for _ in range(1000)]:
            f.result()
    assert 1000 == done + refused
    assert peak <= 4
    assert 0 == al.inflight


def test_gradient2_policy_backs_off_when_latency_rises() -> None:
    """Through the policy, with real in-flight counts: a latency jump lowers the limit."""
    clock = FakeClock()
    al = AdaptiveLimit(Gradient2(initial_limit=8, min_limit=2, max_limit=50), clock=clock)
    pipe = Pipeline([al], clock=clock)
    latency = [0.01]

    async def call() -> None:
        await asyncio.sleep(0)
        clock.advance(latency[0] / 8)  # eight calls overlap; each advances the shared clock a bit

    async def wave() -> None:
        await asyncio.gather(*(pipe.call_async(call) for _ in range(al.limit)))

    async def run() -> tuple[int, int]:
        for _ in range(15):
            await wave()
        before = al.limit
        latency[0] = 1.0
        for _ in range(5):
            await wave()
        return before, al.limit

    before, after = asyncio.run(run())
    assert before > 8
    assert after < before
