"""The bulkhead's lock-free success path: permits in a list, the races between a caller queueing and
a permit going back, and the guarantees under threads switched as often as the interpreter allows:
never more than the limit, no lost wake-up, the queue served first in first out, no newcomer ahead
of a waiter, no permit lost or doubled."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import SupportsIndex

import pytest

from buttress.errors import BulkheadFull
from buttress.pipeline import Pipeline
from buttress.policies.bulkhead import _PREFILL, Bulkhead


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, to land inside enter and leave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def wait_until(predicate: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class Gauge:
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


def assert_idle(b: Bulkhead) -> None:
    """Every permit is back in the pool, once (none lost, none doubled)."""
    assert (0, 0, b.max_concurrent) == (b.active, b.queued, b.available)
    assert b.max_concurrent == len(b._pool) + b._spare


# -- the two sides of the race, played out by hand -------------------------------------------------


def test_a_permit_put_back_after_a_waiter_queued_is_handed_to_it() -> None:
    """The releaser looked at the queue (empty), a caller queued, then the releaser put its permit
    in the pool: its second look finds the waiter and hands the permit over."""
    b = Bulkhead(1, max_queue=2, max_wait=None)
    pipe = Pipeline([b])
    assert b.try_acquire()
    ran = threading.Event()
    waiter = threading.Thread(target=pipe.call, args=(ran.set,))
    waiter.start()
    wait_until(lambda: b.queued == 1)
    # release(), second half: the permit goes to the pool, then the queue is looked at again.
    b._pool.append(None)
    assert b._waiters
    b._drain()
    waiter.join(5)
    assert ran.is_set()
    assert_idle(b)


class Tripwire(list[None]):
    """A pool whose next append first lets a caller queue: the race, at its worst moment."""

    def __init__(self, items: list[None], before_append: object) -> None:
        super().__init__(items)
        self.before_append = before_append

    def append(self, item: None) -> None:
        hook, self.before_append = self.before_append, None
        if hook is not None:
            hook()  # type: ignore[operator]
        super().append(item)


@pytest.mark.parametrize("releaser", ["sync layer", "async layer", "release()"])
def test_every_release_looks_again_after_putting_its_permit_back(releaser: str) -> None:
    """A caller queues after the releaser found the queue empty but before its permit reached the
    pool: the releaser's second look must hand the permit over, or the caller would wait forever."""
    b = Bulkhead(1, max_queue=2, max_wait=None)
    ran = threading.Event()
    waiter: list[threading.Thread] = []

    def queue_a_caller() -> None:
        t = threading.Thread(target=Pipeline([b]).call, args=(ran.set,), daemon=True)
        t.start()
        waiter.append(t)
        wait_until(lambda: b.queued == 1)

    b._pool = Tripwire(b._pool, queue_a_caller)  # before any layer binds it
    pipe = Pipeline([b])
    if releaser == "sync layer":
        pipe.call(lambda: None)
    elif releaser == "async layer":

        async def nothing() -> None:
            return None

        asyncio.run(pipe.call_async(nothing))
    else:
        assert b.try_acquire()
        b.release()
    assert ran.wait(5), "the queued caller was never woken"
    waiter[0].join(5)
    assert_idle(b)


def test_a_caller_queueing_behind_a_permit_in_the_pool_drains_it_to_the_oldest() -> None:
    """A permit landed in the pool while a waiter was queued (its releaser not yet back to look);
    the next caller finds the queue non-empty, queues behind, and its own look at the pool hands
    the permit to the oldest waiter, not to itself."""
    b = Bulkhead(1, max_queue=3, max_wait=None)
    pipe = Pipeline([b])
    order: list[str] = []
    assert b.try_acquire()
    first = threading.Thread(target=pipe.call, args=(order.append, "first"))
    first.start()
    wait_until(lambda: b.queued == 1)
    b._pool.append(None)  # a releaser between its append and its second look
    second = threading.Thread(target=pipe.call, args=(order.append, "second"))
    second.start()
    first.join(5)
    second.join(5)
    assert ["first", "second"] == order
    assert_idle(b)


async def test_an_asyncio_waiter_is_handed_a_permit_put_back_behind_its_back() -> None:
    b = Bulkhead(1, max_queue=2, max_wait=None)
    pipe = Pipeline([b])
    assert b.try_acquire()

    async def note() -> str:
        return "ran"

    waiter = asyncio.create_task(pipe.call_async(note))
    await asyncio.sleep(0)
    assert 1 == b.queued
    b._pool.append(None)
    b._drain()
    assert "ran" == await asyncio.wait_for(waiter, 5)
    assert_idle(b)


class InterruptedPool(list[None]):
    """A pool whose next pop succeeds and then raises, as a signal landing at the end of the call
    would: the permit is taken, the caller sees an exception."""

    armed = True

    def pop(self, index: SupportsIndex = -1) -> None:
        item = super().pop(index)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return item


@pytest.mark.parametrize("through", ["sync layer", "async layer", "try_acquire"])
def test_an_interrupt_just_after_taking_a_permit_gives_it_back(through: str) -> None:
    b = Bulkhead(2)
    b._pool = InterruptedPool(b._pool)  # before any layer binds it
    pipe = Pipeline([b])
    ran: list[str] = []

    async def note() -> None:
        ran.append("ran")

    with pytest.raises(KeyboardInterrupt):
        if through == "sync layer":
            pipe.call(ran.append, "ran")
        elif through == "async layer":
            asyncio.run(pipe.call_async(note))
        else:
            b.try_acquire()
    assert [] == ran
    assert_idle(b)
    assert [True, True, False] == [b.try_acquire() for _ in range(3)]


def test_permits_beyond_the_prefill_are_issued_on_first_need() -> None:
    n = _PREFILL + 5
    b = Bulkhead(n)
    assert (_PREFILL, 5) == (len(b._pool), b._spare)
    assert [True] * n == [b.try_acquire() for _ in range(n)]
    assert not b.try_acquire()
    assert (n, 0) == (b.active, b.available)
    for _ in range(n):
        b.release()
    assert_idle(b)
    assert (n, 0) == (len(b._pool), b._spare)


def test_a_waiter_blocks_newcomers_even_with_a_permit_in_the_pool() -> None:
    """In the moment a permit sits in the pool while someone waits, neither try_acquire nor the
    layer takes it: the layer's newcomer queues behind and hands it to the waiter."""
    b = Bulkhead(1, max_queue=3, max_wait=None)
    pipe = Pipeline([b])
    ran: list[str] = []
    assert b.try_acquire()
    gate = threading.Event()

    def hold() -> None:
        ran.append("waiter")
        gate.wait(5)

    waiter = threading.Thread(target=pipe.call, args=(hold,))
    waiter.start()
    wait_until(lambda: b.queued == 1)
    b._pool.append(None)  # our release, first half: the permit is in the pool, the waiter queued
    assert not b.try_acquire()
    newcomer = threading.Thread(target=pipe.call, args=(ran.append, "newcomer"))
    newcomer.start()
    wait_until(lambda: ran == ["waiter"] and b.queued == 1)
    assert 1 == b.active
    gate.set()
    waiter.join(5)
    newcomer.join(5)
    assert ["waiter", "newcomer"] == ran
    assert_idle(b)


# -- under threads switched every microsecond ------------------------------------------------------


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize(("limit", "queue"), [(1, 64), (3, 64), (4, 0)])
def test_threads_never_pass_the_limit_and_no_wakeup_is_lost(limit: int, queue: int) -> None:
    """16 threads, 2,000 short calls: never more than ``limit`` at once; with a queue and no wait
    bound every call runs (a lost wake-up would hang one); without one every call runs or is
    refused; afterwards every permit is back, once."""
    b = Bulkhead(limit, max_queue=queue, max_wait=None)
    pipe = Pipeline([b])
    g = Gauge()
    refused = 0
    lock = threading.Lock()

    def work() -> None:
        g.enter()
        g.leave()

    def attempt() -> None:
        nonlocal refused
        try:
            pipe.call(work)
        except BulkheadFull:
            with lock:
                refused += 1

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(attempt) for _ in range(2000)]
        for f in futures:
            f.result(timeout=30)
    assert g.peak <= limit
    assert 2000 == g.done + refused
    if queue:
        assert 0 == refused
    assert_idle(b)


@pytest.mark.usefixtures("switch_often")
def test_newcomers_never_overtake_queued_waiters() -> None:
    """Five waiters queue in order behind a held slot while newcomers hammer try_acquire: the
    waiters run in order, and no newcomer gets a slot before the last waiter has started."""
    b = Bulkhead(1, max_queue=5, max_wait=None)
    pipe = Pipeline([b])
    log: list[str] = []
    log_lock = threading.Lock()
    stop = threading.Event()

    def note(tag: str) -> None:
        with log_lock:
            log.append(tag)

    def newcomer() -> None:
        while not stop.is_set():
            if b.try_acquire():
                note("newcomer")
                b.release()

    assert b.try_acquire()
    waiters = []
    for i in range(5):
        t = threading.Thread(target=pipe.call, args=(note, f"waiter {i}"))
        t.start()
        waiters.append(t)
        wait_until(lambda i=i: b.queued == i + 1)
    hammers = [threading.Thread(target=newcomer) for _ in range(3)]
    for t in hammers:
        t.start()
    time.sleep(0.01)
    b.release()
    for t in waiters:
        t.join(5)
    time.sleep(0.01)
    stop.set()
    for t in hammers:
        t.join(5)
    first_newcomer = log.index("newcomer") if "newcomer" in log else len(log)
    assert [f"waiter {i}" for i in range(5)] == log[:first_newcomer]
    assert {"newcomer"} >= set(log[first_newcomer:])
    assert_idle(b)


def test_threads_and_tasks_hammering_one_bulkhead_leave_it_whole(switch_often: None) -> None:
    """Sync calls on 8 threads and 300 tasks on two event loops share 2 slots and a queue."""
    b = Bulkhead(2, max_queue=400, max_wait=None)
    pipe = Pipeline([b])
    g = Gauge()

    def work() -> None:
        g.enter()
        g.leave()

    async def awork() -> None:
        g.enter()
        await asyncio.sleep(0)
        g.leave()

    async def tasks() -> None:
        await asyncio.gather(*(pipe.call_async(awork) for _ in range(150)))

    loops = [threading.Thread(target=asyncio.run, args=(tasks(),)) for _ in range(2)]
    for t in loops:
        t.start()
    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(pipe.call, work) for _ in range(500)]:
            f.result(timeout=30)
    for t in loops:
        t.join(30)
        assert not t.is_alive()
    assert 800 == g.done
    assert g.peak <= 2
    assert_idle(b)
