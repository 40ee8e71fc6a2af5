"""The shared bucket (key ``None``) of the in-memory store, decided without a lock.

Its TAT is held by one decision at a time (``list.pop`` / ``list.append``); the pipeline layers
inline the decision.  These tests hold the inlined twins to the store's own arithmetic and to an
exact token bucket, and hold the bound under threads switched as often as the interpreter allows.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import SupportsIndex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import RateLimited
from buttress.pipeline import Pipeline
from buttress.policies.ratelimit import MemoryBucketStore, RateLimiter
from buttress.testing import FakeClock


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Make the interpreter switch threads as often as it can, to land inside decisions."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def layer_admits(pipe: Pipeline) -> bool:
    try:
        pipe.call(lambda: None)
    except RateLimited:
        return False
    return True


async def layer_admits_async(pipe: Pipeline) -> bool:
    try:
        await pipe.call_async(asyncio.sleep, 0)
    except RateLimited:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(
    rate=st.sampled_from([1, 2, 4, 8, 16]),
    burst=st.integers(min_value=1, max_value=6),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=64), st.integers(min_value=1, max_value=5)),
        min_size=1,
        max_size=40,
    ),
)
def test_the_inlined_layers_equal_the_store_and_an_exact_token_bucket(
    rate: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    """On times floats hold exactly, the sync layer, the async layer, the store's shared bucket and
    a keyed bucket of the same store decide alike, and as a token bucket in fractions does."""
    clock = FakeClock(start=0.0)
    sync_policy = RateLimiter(rate, burst=burst, clock=clock)
    async_policy = RateLimiter(rate, burst=burst, clock=clock)
    sync_pipe = Pipeline([sync_policy])
    async_pipe = Pipeline([async_policy])
    store = MemoryBucketStore()
    interval = 1 / rate
    tokens = Fraction(burst)
    loop = asyncio.new_event_loop()
    try:
        for ticks, tries in steps:
            dt = Fraction(ticks, 64)
            clock.advance(float(dt))
            tokens = min(Fraction(burst), tokens + dt * rate)
            now = clock.monotonic()
            for _ in range(tries):
                expected = tokens >= 1
                if expected:
                    tokens -= 1
                shared = store.acquire(None, now, interval, burst * interval, 0.0)
                keyed = store.acquire("k", now, interval, burst * interval, 0.0)
                assert [expected] * 4 == [
                    layer_admits(sync_pipe),
                    loop.run_until_complete(layer_admits_async(async_pipe)),
                    shared >= 0,
                    keyed >= 0,
                ]
    finally:
        loop.close()
    tats = {sync_policy.store.tat(None), async_policy.store.tat(None), store.tat(None)}  # type: ignore[attr-defined]
    assert 1 == len(tats)
    assert store.tat("k") in tats


def test_a_refusal_from_the_layer_says_when_to_retry() -> None:
    clock = FakeClock(start=0.0)
    pipe = Pipeline([RateLimiter(8, burst=2, clock=clock, name="api")])
    assert layer_admits(pipe)
    assert layer_admits(pipe)
    with pytest.raises(RateLimited, match="rate limiter 'api'") as info:
        pipe.call(lambda: None)
    assert 0.125 == info.value.retry_after
    clock.advance(0.125)
    assert layer_admits(pipe)
    assert not layer_admits(pipe)


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize("through", ["layer", "try_acquire", "wait mode"])
def test_threads_switched_mid_decision_take_exactly_the_bucket(through: str) -> None:
    """16 threads on a frozen clock, switched every microsecond: exactly ``burst`` calls get in;
    then exactly one per interval the clock moves on.  (Wait mode with no wait allowed takes the
    store's path rather than the inlined one.)"""
    clock = FakeClock(start=0.0)
    if through == "wait mode":
        policy = RateLimiter(1, burst=300, clock=clock, mode="wait", max_wait=0.0)
    else:
        policy = RateLimiter(1, burst=300, clock=clock)
    pipe = Pipeline([policy])
    counts: list[int] = []
    lock = threading.Lock()

    def one() -> bool:
        if through == "try_acquire":
            return policy.try_acquire()
        return layer_admits(pipe)

    def hammer(start: threading.Barrier) -> None:
        start.wait()
        n = sum(one() for _ in range(100))
        with lock:
            counts.append(n)

    for expected in (300, 7):
        start = threading.Barrier(16)
        threads = [threading.Thread(target=hammer, args=(start,)) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert expected == sum(counts)
        counts.clear()
        clock.advance(7.0)  # seven more tokens
    assert [None] == policy.store.gate  # type: ignore[attr-defined]


@pytest.mark.parametrize("through", ["sync layer", "async layer", "store"])
def test_a_decision_waits_while_another_holds_the_bucket(through: str) -> None:
    """A holder switched out between its pop and its append: the next decision yields until the
    gate is back, then decides; admitted first, refused (with the right retry-after) next."""
    clock = FakeClock(start=0.0)
    policy = RateLimiter(8, burst=1, clock=clock)
    store = policy.store
    assert isinstance(store, MemoryBucketStore)
    pipe = Pipeline([policy])

    def decide() -> float:
        """The wait as the store reports it: 0 admitted, -retry_after refused."""
        if through == "store":
            return policy.reserve()
        try:
            if through == "sync layer":
                pipe.call(lambda: None)
            else:
                asyncio.run(pipe.call_async(asyncio.sleep, 0))
        except RateLimited as e:
            assert e.retry_after is not None
            return -e.retry_after
        return 0.0

    for expected in (0.0, -0.125):
        store.gate.pop()  # what a decision does first
        outcome: list[float] = []
        t = threading.Thread(target=lambda out=outcome: out.append(decide()))
        t.start()
        time.sleep(0.05)
        assert t.is_alive()
        assert [] == outcome
        store.gate.append(None)
        t.join(5)
        assert [expected] == outcome
        assert 0.125 == store.tat(None)
        assert [None] == store.gate


class InterruptedGate(list[None]):
    """A gate whose next pop succeeds and then raises, as a signal landing at the end of the call
    would: the gate item is taken, the caller sees an exception."""

    armed = True

    def pop(self, index: SupportsIndex = -1) -> None:
        item = super().pop(index)
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt
        return item


@pytest.mark.parametrize("through", ["sync layer", "async layer", "store"])
def test_an_interrupt_just_after_taking_the_gate_gives_it_back(through: str) -> None:
    clock = FakeClock(start=0.0)
    policy = RateLimiter(8, burst=2, clock=clock)
    store = policy.store
    assert isinstance(store, MemoryBucketStore)
    store.gate = InterruptedGate([None])  # before any layer binds it
    pipe = Pipeline([policy])
    with pytest.raises(KeyboardInterrupt):
        if through == "sync layer":
            layer_admits(pipe)
        elif through == "async layer":
            asyncio.run(layer_admits_async(pipe))
        else:
            policy.try_acquire()
    assert [None] == store.gate
    assert None is store.tat(None)  # nothing was counted
    assert [True, True, False] == [layer_admits(pipe) for _ in range(3)]


def test_a_failed_decision_gives_the_gate_back() -> None:
    """Bad arguments raise and leave the bucket usable and unchanged."""
    store = MemoryBucketStore()
    assert 0.0 == store.acquire(None, 1.0, 0.5, 1.0, 0.0)
    with pytest.raises(TypeError):
        store.acquire(None, 1.0, "0.5", 1.0, 0.0)  # type: ignore[arg-type]
    assert [None] == store.gate
    assert 1.5 == store.tat(None)
    assert 0.0 == store.acquire(None, 1.0, 0.5, 1.0, 0.0)
    assert 2.0 == store.tat(None)
    assert None is MemoryBucketStore().tat(None)
