"""Exact half-open admission under threads and tasks; no lock held across the protected call."""

from __future__ import annotations

import asyncio
import threading

from buttress import CircuitBreaker, CircuitOpen, Pipeline
from buttress.policies.breaker import BreakerState
from buttress.testing import FakeClock

PERMITTED = 3


def _open_breaker(clock: FakeClock) -> tuple[CircuitBreaker, Pipeline]:
    b = CircuitBreaker(
        minimum_calls=1,
        window_size=4,
        permitted_calls_in_half_open=PERMITTED,
        break_duration=5.0,
        half_open_timeout=1000.0,
        clock=clock,
    )
    p = Pipeline([b], clock=clock)

    def boom() -> None:
        raise ConnectionError("down")

    try:
        p.call(boom)
    except ConnectionError:
        pass
    assert BreakerState.OPEN == b.state
    return b, p


def test_half_open_admits_exactly_the_permitted_probes_under_16_threads() -> None:
    clock = FakeClock()
    b, p = _open_breaker(clock)
    for _ in range(15):  # several rounds: each one re-opens and half-opens the breaker
        _threads_round(clock, b, p)


def _threads_round(clock: FakeClock, b: CircuitBreaker, p: Pipeline) -> None:
    clock.advance(5.0)
    entered = 0
    rejected = 0
    count_lock = threading.Lock()
    release = threading.Event()
    start = threading.Barrier(16)

    def probe() -> str:
        nonlocal entered
        with count_lock:
            entered += 1
        release.wait(5)
        return "ok"

    def worker() -> None:
        nonlocal rejected
        start.wait()
        try:
            p.call(probe)
        except CircuitOpen:
            with count_lock:
                rejected += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    # wait until every thread has either entered the probe or been rejected
    for _ in range(5000):
        with count_lock:
            if entered + rejected == 16:
                break
        threading.Event().wait(0.001)
    assert (PERMITTED, 16 - PERMITTED) == (entered, rejected)
    release.set()
    for t in threads:
        t.join()
    assert BreakerState.CLOSED == b.state  # every probe succeeded
    # open it again for the next round
    b.force_open()
    b.reset()
    try:
        p.call(_fail)
    except ConnectionError:
        pass
    assert BreakerState.OPEN == b.state


async def test_half_open_admits_exactly_the_permitted_probes_under_1000_tasks() -> None:
    clock = FakeClock()
    b, p = _open_breaker(clock)
    for _ in range(3):
        await _tasks_round(clock, b, p)


async def _tasks_round(clock: FakeClock, b: CircuitBreaker, p: Pipeline) -> None:
    clock.advance(5.0)
    entered = 0
    release = asyncio.Event()

    async def probe() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    async def worker() -> str:
        try:
            return await p.call_async(probe)
        except CircuitOpen:
            return "rejected"

    tasks = [asyncio.create_task(worker()) for _ in range(1000)]
    for _ in range(20):
        await asyncio.sleep(0)
    assert PERMITTED == entered
    release.set()
    results = await asyncio.gather(*tasks)
    assert PERMITTED == results.count("ok")
    assert 1000 - PERMITTED == results.count("rejected")
    assert BreakerState.CLOSED == b.state

    async def boom() -> None:
        raise ConnectionError("down")

    try:
        await p.call_async(boom)
    except ConnectionError:
        pass
    assert BreakerState.OPEN == b.state


def test_no_lock_is_held_across_the_protected_call() -> None:
    """Two threads are inside the protected call at the same time (a barrier needs both)."""
    b = CircuitBreaker(minimum_calls=2, window_size=10)
    p = Pipeline([b])
    both_inside = threading.Barrier(2, timeout=5)

    def fn() -> str:
        both_inside.wait()  # raises BrokenBarrierError if the other thread cannot get in
        return "ok"

    results: list[str] = []
    for _ in range(10):  # closed state: first through the locked path, then the lock-free one
        threads = [threading.Thread(target=lambda: results.append(p.call(fn))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert ["ok"] * 20 == results
    assert 10 == b.snapshot().calls


def test_concurrent_successes_and_failures_are_all_counted() -> None:
    """Lock-free successes and locked failures from 8 threads: the window adds up exactly."""
    b = CircuitBreaker(
        minimum_calls=1, window_type="time", window_size=3600, failure_rate_threshold=1.0
    )
    p = Pipeline([b])
    per_thread = 2000

    def work(i: int) -> None:
        for n in range(per_thread):
            if n % 100 == 99:
                try:
                    p.call(_fail)
                except ConnectionError:
                    pass
            else:
                p.call(_ok)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = b.snapshot()
    assert (8 * per_thread, 8 * per_thread // 100) == (s.calls, s.failures)


def _ok() -> int:
    return 1


def _fail() -> None:
    raise ConnectionError("down")
