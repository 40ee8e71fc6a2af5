"""Bulkhead: the limit holds under contention (threads, tasks, both), the queue is FIFO and bounded,
waits respect max_wait and the deadline, and no slot is ever lost or doubled."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from buttress.context import deadline
from buttress.errors import BulkheadFull, ConfigError, Rejected
from buttress.events import Event
from buttress.pipeline import Pipeline
from buttress.policies.bulkhead import Bulkhead, BulkheadRejected, BulkheadWaited
from buttress.policies.retry import Retry


class Gauge:
    """Counts calls running at once, and the most ever seen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.done = 0

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1
            self.done += 1


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"max_concurrent": 0}, "max_concurrent"),
        ({"max_concurrent": -3}, "max_concurrent"),
        ({"max_concurrent": True}, "max_concurrent"),
        ({"max_concurrent": 2.5}, "max_concurrent"),
        ({"max_queue": -1}, "max_queue"),
        ({"max_queue": 1.0}, "max_queue"),
        ({"max_wait": -0.1}, "max_wait"),
        ({"max_wait": math.nan}, "max_wait"),
        ({"max_wait": "1s"}, "max_wait"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        Bulkhead(**kwargs)
    assert parameter == info.value.parameter
    assert parameter in str(info.value)


def test_defaults_and_state() -> None:
    b = Bulkhead()
    assert (10, 0, 1.0) == (b.max_concurrent, b.max_queue, b.max_wait)
    assert b.try_acquire()
    assert (1, 9, 0) == (b.active, b.available, b.queued)
    b.release()
    assert 0 == b.active
    assert Bulkhead(max_wait=math.inf).max_wait is None


def test_try_acquire_never_passes_the_limit() -> None:
    b = Bulkhead(3)
    assert [True, True, True, False] == [b.try_acquire() for _ in range(4)]
    b.release()
    assert b.try_acquire()


# -- the limit under contention --------------------------------------------------------------------


def test_threads_never_exceed_the_limit_with_a_queue() -> None:
    """16 threads, 1,000 calls, 4 slots, an unbounded wait: every call runs, never more than 4 at
    once."""
    b = Bulkhead(4, max_queue=1000, max_wait=None)
    pipe = Pipeline([b])
    g = Gauge()

    def work() -> None:
        g.enter()
        time.sleep(0.0001)
        g.leave()

    with ThreadPoolExecutor(16) as pool:
        for f in [pool.submit(pipe.call, work) for _ in range(1000)]:
            f.result()
    assert 1000 == g.done
    assert 4 == g.peak
    assert (0, 0) == (b.active, b.queued)


def test_threads_never_exceed_the_limit_without_a_queue() -> None:
    """16 threads, 1,000 calls, 3 slots, no queue: every call either runs or is refused."""
    b = Bulkhead(3)
    pipe = Pipeline([b])
    g = Gauge()
    refused = 0
    lock = threading.Lock()

    def work() -> None:
        g.enter()
        time.sleep(0.0001)
        g.leave()

    def attempt() -> None:
        nonlocal refused
        try:
            pipe.call(work)
        except BulkheadFull:
            with lock:
                refused += 1

    with ThreadPoolExecutor(16) as pool:
        for f in [pool.submit(attempt) for _ in range(1000)]:
            f.result()
    assert 1000 == g.done + refused
    assert g.peak <= 3
    assert refused > 0
    assert 0 == b.active


async def test_tasks_never_exceed_the_limit() -> None:
    """1,000 asyncio tasks through 5 slots with a queue: all run, never more than 5 at once, in
    order."""
    b = Bulkhead(5, max_queue=1000, max_wait=None)
    pipe = Pipeline([b])
    g = Gauge()
    order: list[int] = []

    async def work(i: int) -> int:
        g.enter()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        order.append(i)
        g.leave()
        return i

    results = await asyncio.gather(*(pipe.call_async(work, i) for i in range(1000)))
    assert list(range(1000)) == results
    assert 5 == g.peak
    assert 1000 == g.done
    assert (0, 0) == (b.active, b.queued)


def test_threads_and_tasks_share_one_limit() -> None:
    """Sync callers on 8 threads and 200 asyncio tasks on another thread draw on the same 4
    slots."""
    b = Bulkhead(4, max_queue=1000, max_wait=None)
    pipe = Pipeline([b])
    g = Gauge()

    def work() -> None:
        g.enter()
        time.sleep(0.0002)
        g.leave()

    async def awork() -> None:
        g.enter()
        await asyncio.sleep(0.0002)
        g.leave()

    async def tasks() -> None:
        await asyncio.gather(*(pipe.call_async(awork) for _ in range(200)))

    loop_thread = threading.Thread(target=asyncio.run, args=(tasks(),))
    loop_thread.start()
    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(pipe.call, work) for _ in range(200)]:
            f.result()
    loop_thread.join(10)
    assert not loop_thread.is_alive()
    assert 400 == g.done
    assert g.peak <= 4
    assert (0, 0) == (b.active, b.queued)


# -- the queue -------------------------------------------------------------------------------------


def test_queue_is_served_first_in_first_out() -> None:
    b = Bulkhead(1, max_queue=5, max_wait=None)
    pipe = Pipeline([b])
    gate = threading.Event()
    order: list[int] = []

    def hold() -> None:
        gate.wait(5)

    holder = threading.Thread(target=pipe.call, args=(hold,))
    holder.start()
    wait_until(lambda: b.active == 1)
    threads = []
    for i in range(5):
        t = threading.Thread(target=pipe.call, args=(order.append, i))
        t.start()
        threads.append(t)
        wait_until(lambda i=i: b.queued == i + 1)
    gate.set()
    for t in [holder, *threads]:
        t.join(5)
    assert [0, 1, 2, 3, 4] == order
    assert (0, 0) == (b.active, b.queued)


def test_full_queue_refuses_at_once_and_says_why(captured_events: list[Event]) -> None:
    b = Bulkhead(1, max_queue=1, max_wait=None, name="db")
    pipe = Pipeline([b], name="orders")
    gate = threading.Event()
    holder = threading.Thread(target=pipe.call, args=(gate.wait, 5))
    holder.start()
    wait_until(lambda: b.active == 1)
    queued = threading.Thread(target=pipe.call, args=(lambda: None,))
    queued.start()
    wait_until(lambda: b.queued == 1)
    with pytest.raises(BulkheadFull) as info:
        pipe.call(lambda: None)
    assert isinstance(info.value, Rejected)
    assert "db" == info.value.policy
    assert "all 1 slots taken and the queue of 1 is full" in str(info.value)
    gate.set()
    holder.join(5)
    queued.join(5)
    rejected = [e for e in captured_events if isinstance(e, BulkheadRejected)]
    assert [("orders", "db", "full", 1, 1)] == [
        (e.pipeline, e.policy, e.reason, e.active, e.queued) for e in rejected
    ]
    assert "buttress_bulkhead_rejected" == rejected[0].name
    waited = [e for e in captured_events if isinstance(e, BulkheadWaited)]
    assert 1 == len(waited)
    assert waited[0].waited >= 0


def test_wait_runs_out_after_max_wait() -> None:
    b = Bulkhead(1, max_queue=2, max_wait=0.05)
    pipe = Pipeline([b])
    gate = threading.Event()
    holder = threading.Thread(target=pipe.call, args=(gate.wait, 5))
    holder.start()
    wait_until(lambda: b.active == 1)
    t0 = time.monotonic()
    with pytest.raises(BulkheadFull, match=r"no slot freed within 0.05s"):
        pipe.call(lambda: None)
    waited = time.monotonic() - t0
    gate.set()
    holder.join(5)
    assert 0.04 <= waited < 5.0
    assert (0, 0) == (b.active, b.queued)


def test_wait_is_cut_short_by_the_deadline(captured_events: list[Event]) -> None:
    b = Bulkhead(1, max_queue=2, max_wait=None)
    pipe = Pipeline([b])
    gate = threading.Event()
    holder = threading.Thread(target=pipe.call, args=(gate.wait, 5))
    holder.start()
    wait_until(lambda: b.active == 1)
    t0 = time.monotonic()
    with deadline(0.05), pytest.raises(BulkheadFull, match="deadline"):
        pipe.call(lambda: None)
    waited = time.monotonic() - t0
    # A deadline already spent refuses without queueing at all.
    with deadline(0.0), pytest.raises(BulkheadFull, match="deadline"):
        pipe.call(lambda: None)
    gate.set()
    holder.join(5)
    assert 0.04 <= waited < 5.0
    reasons = [e.reason for e in captured_events if isinstance(e, BulkheadRejected)]
    assert ["deadline", "deadline"] == reasons


def test_rejection_is_not_retried() -> None:
    b = Bulkhead(1)
    calls = 0

    def work() -> None:
        nonlocal calls
        calls += 1

    assert b.try_acquire()  # the only slot is taken
    pipe = Pipeline([Retry(attempts=5, budget=None), b])
    with pytest.raises(BulkheadFull):
        pipe.call(work)
    assert 0 == calls
    b.release()


# -- asyncio: timeouts, cancellation, grants -------------------------------------------------------


async def test_async_wait_times_out_and_leaves_the_queue() -> None:
    b = Bulkhead(1, max_queue=3, max_wait=0.02)
    pipe = Pipeline([b])
    gate = asyncio.Event()
    holder = asyncio.create_task(pipe.call_async(gate.wait))
    await asyncio.sleep(0)
    assert 1 == b.active
    with pytest.raises(BulkheadFull, match="no slot freed"):
        await pipe.call_async(asyncio.sleep, 0)
    assert 0 == b.queued
    gate.set()
    await holder
    assert 0 == b.active


async def test_async_cancelled_waiter_leaves_the_queue() -> None:
    b = Bulkhead(1, max_queue=3, max_wait=None)
    pipe = Pipeline([b])
    gate = asyncio.Event()
    holder = asyncio.create_task(pipe.call_async(gate.wait))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(pipe.call_async(asyncio.sleep, 0))
    await asyncio.sleep(0)
    assert 1 == b.queued
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert (1, 0) == (b.active, b.queued)
    gate.set()
    await holder
    assert (0, 0) == (b.active, b.queued)


async def test_async_waiter_cancelled_after_its_grant_passes_the_slot_on() -> None:
    b = Bulkhead(1, max_queue=3, max_wait=None)
    pipe = Pipeline([b])
    ran: list[str] = []

    async def note(tag: str) -> None:
        ran.append(tag)

    assert b.try_acquire()  # the slot, held by the test itself
    first = asyncio.create_task(pipe.call_async(note, "first"))
    second = asyncio.create_task(pipe.call_async(note, "second"))
    await asyncio.sleep(0)
    assert 2 == b.queued
    b.release()  # hands the slot to `first` ...
    first.cancel()  # ... which is cancelled before it can run
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert ["second"] == ran
    assert (0, 0) == (b.active, b.queued)


async def test_async_deadline_limits_the_wait() -> None:
    b = Bulkhead(1, max_queue=3, max_wait=10.0)
    pipe = Pipeline([b])
    gate = asyncio.Event()
    holder = asyncio.create_task(pipe.call_async(gate.wait))
    await asyncio.sleep(0)
    t0 = time.monotonic()
    with pytest.raises(BulkheadFull, match="deadline"):
        async with deadline(5.0):
            with deadline(0.03):
                await pipe.call_async(asyncio.sleep, 0)
    assert time.monotonic() - t0 < 5.0
    gate.set()
    await holder
    assert (0, 0) == (b.active, b.queued)


def test_slot_is_released_when_the_call_fails() -> None:
    b = Bulkhead(2)
    pipe = Pipeline([b])

    def boom() -> None:
        raise ValueError("boom")

    for _ in range(5):
        with pytest.raises(ValueError, match="boom"):
            pipe.call(boom)
    assert 0 == b.active
