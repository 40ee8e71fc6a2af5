"""buttress.testing: FakeClock and the set_testing switch."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from buttress import Backoff, Pipeline, Retry
from buttress.clock import SYSTEM_CLOCK, Clock, waits_enabled
from buttress.testing import FakeClock, set_testing


def test_is_a_clock_and_starts_where_told() -> None:
    c = FakeClock(5.0, wall_start=1_000_000.0)
    assert isinstance(c, Clock)
    assert 5.0 == c.monotonic()
    assert 1_000_000.0 == c.wall()
    assert 1000.0 == FakeClock().monotonic()


def test_sync_sleep_takes_no_real_time_and_advances() -> None:
    c = FakeClock()
    t0 = time.perf_counter()
    c.sleep(3600.0)
    c.sleep(0.0)
    c.sleep(-1.0)  # a negative sleep is a no-op, as with time.sleep's callers in the policies
    real = time.perf_counter() - t0
    assert 4600.0 == c.monotonic()
    assert [3600.0, 0.0, -1.0] == c.sleeps
    assert real < 1.0  # versus the hours requested


async def test_async_sleep_takes_no_real_time_and_yields_to_the_loop() -> None:
    c = FakeClock()
    order: list[str] = []

    async def other() -> None:
        order.append("other ran")

    task = asyncio.create_task(other())
    t0 = time.perf_counter()
    await c.sleep_async(86_400.0)
    order.append("sleeper resumed")
    real = time.perf_counter() - t0
    await task
    assert 1000.0 + 86_400.0 == c.monotonic()
    # The sleeper yielded once, so the task created before it ran first.
    assert ["other ran", "sleeper resumed"] == order
    assert real < 1.0  # versus the hours requested


def test_advance_and_set() -> None:
    c = FakeClock(10.0)
    w0 = c.wall()
    c.advance(2.5)
    assert 12.5 == c.monotonic()
    assert w0 + 2.5 == c.wall()  # wall time moves with monotonic time
    c.set(20.0)
    assert 20.0 == c.monotonic()
    c.set(20.0)  # setting the current reading is allowed
    assert 20.0 == c.monotonic()


@pytest.mark.parametrize("bad", [-0.001, math.nan])
def test_advance_refuses_going_back_or_nan(bad: float) -> None:
    c = FakeClock(10.0)
    with pytest.raises(ValueError, match="backwards"):
        c.advance(bad)
    assert 10.0 == c.monotonic()


@pytest.mark.parametrize("bad", [9.999, math.nan])
def test_set_refuses_going_back_or_nan(bad: float) -> None:
    c = FakeClock(10.0)
    with pytest.raises(ValueError, match="backwards"):
        c.set(bad)
    assert 10.0 == c.monotonic()


def test_advance_is_thread_safe() -> None:
    c = FakeClock(0.0)

    def worker() -> None:
        for _ in range(2000):
            c.advance(1.0)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 32_000.0 == c.monotonic()


def test_a_retry_on_the_fake_clock_waits_exactly_its_backoff() -> None:
    c = FakeClock()
    p = Pipeline(
        [Retry(attempts=4, backoff=Backoff.linear(1.0, 2.0), budget=None, clock=c)], clock=c
    )
    with pytest.raises(OSError):
        p.call(_fail)
    assert [1.0, 3.0, 5.0] == c.sleeps
    assert 1009.0 == c.monotonic()


def _fail() -> None:
    raise OSError("down")


def test_set_testing_switches_system_sleeps_off_and_restores() -> None:
    assert waits_enabled()
    with set_testing(True):
        assert not waits_enabled()
        t0 = time.perf_counter()
        SYSTEM_CLOCK.sleep(30.0)
        assert time.perf_counter() - t0 < 1.0
        with set_testing(False):
            assert waits_enabled()
        assert not waits_enabled()  # the inner block restored the outer setting, not the default
    assert waits_enabled()


def test_set_testing_restores_after_an_exception() -> None:
    with pytest.raises(RuntimeError), set_testing(True):
        raise RuntimeError("boom")
    assert waits_enabled()


async def test_set_testing_covers_async_sleeps_and_default_clock_pipelines() -> None:
    p = Pipeline([Retry(attempts=3, backoff=Backoff.constant(20.0), budget=None)])
    calls = [0]

    async def flaky() -> str:
        calls[0] += 1
        if calls[0] < 3:
            raise ConnectionError("down")
        return "ok"

    with set_testing(True):
        t0 = time.perf_counter()
        await SYSTEM_CLOCK.sleep_async(30.0)
        assert "ok" == await p.call_async(flaky)
        assert time.perf_counter() - t0 < 5.0  # two 20 s backoffs and a 30 s sleep, skipped
    assert 3 == calls[0]
    assert waits_enabled()
