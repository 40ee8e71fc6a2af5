"""Rate limiter: GCRA steps by hand, the rate bound over every window (hypothesis on FakeClock),
exact agreement with a token bucket in rational arithmetic, wait mode, per-key buckets with bounded
memory."""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.context import Context, deadline
from buttress.errors import ConfigError, RateLimited, Rejected
from buttress.events import Event
from buttress.pipeline import Pipeline
from buttress.policies.ratelimit import (
    BucketStore,
    MemoryBucketStore,
    RateLimiter,
    RateLimitRejected,
    RateLimitWaited,
    context_key,
)
from buttress.testing import FakeClock

# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": math.inf}, "rate"),
        ({"rate": math.nan}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": 10, "per": 0}, "per"),
        ({"rate": 10, "per": -1.0}, "per"),
        ({"rate": 10, "burst": 0}, "burst"),
        ({"rate": 10, "burst": 2.5}, "burst"),
        ({"rate": 10, "mode": "block"}, "mode"),
        ({"rate": 10, "max_wait": -0.5}, "max_wait"),
        ({"rate": 10, "max_wait": math.inf}, "max_wait"),
        ({"rate": 10, "max_keys": 0}, "max_keys"),
        ({"rate": 10, "key": "tenant"}, "key"),
        ({"rate": 10, "store": object()}, "store"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter(**kwargs)
    assert parameter == info.value.parameter


def test_defaults() -> None:
    r = RateLimiter(100)
    assert (100.0, 1.0, 100, "reject", 1.0) == (r.rate, r.per, r.burst, r.mode, r.max_wait)
    assert 1 == RateLimiter(0.5).burst
    assert 60 == RateLimiter(60, per=60).burst
    assert isinstance(r.store, BucketStore)


def test_cost_outside_the_bucket_is_refused_loudly() -> None:
    r = RateLimiter(10, burst=3, clock=FakeClock())
    with pytest.raises(ValueError, match="cost"):
        r.reserve(cost=4)
    with pytest.raises(ValueError, match="cost"):
        r.reserve(cost=0)


# -- GCRA, step by step ----------------------------------------------------------------------------


def test_gcra_steps_by_hand() -> None:
    """10/s, burst 3: three at once, then one every 0.1 s; the refusal says exactly when."""
    clock = FakeClock(start=0.0)
    r = RateLimiter(10, burst=3, clock=clock)
    assert [True, True, True] == [r.try_acquire() for _ in range(3)]
    w = r.reserve()
    assert -0.1 == pytest.approx(w)  # refused, retry after 0.1 s
    clock.advance(0.05)
    assert -0.05 == pytest.approx(r.reserve())
    clock.advance(0.05)
    assert r.try_acquire()
    assert not r.try_acquire()
    clock.advance(0.3)  # three tokens back
    assert [True, True, True, False] == [r.try_acquire() for _ in range(4)]
    clock.advance(10.0)  # never more than burst, however long the quiet
    assert [True, True, True, False] == [r.try_acquire() for _ in range(4)]


def test_rate_per_period() -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(2, per=60, burst=1, clock=clock)  # 2 a minute: one each 30 s
    assert r.try_acquire()
    assert -30.0 == pytest.approx(r.reserve())
    clock.advance(30.0)
    assert r.try_acquire()


def test_pipeline_refusal_carries_retry_after(captured_events: list[Event]) -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(4, burst=1, clock=clock, name="api")
    pipe = Pipeline([r], name="p", clock=clock)
    assert 1 == pipe.call(lambda: 1)
    with pytest.raises(RateLimited) as info:
        pipe.call(lambda: 2)
    assert isinstance(info.value, Rejected)
    assert 0.25 == pytest.approx(info.value.retry_after)
    assert "api" == info.value.policy
    assert "retry after 0.25s" in str(info.value)
    ev = [e for e in captured_events if isinstance(e, RateLimitRejected)]
    assert 1 == len(ev)
    assert ("p", "api", None) == (ev[0].pipeline, ev[0].policy, ev[0].key)
    assert 0.25 == pytest.approx(ev[0].retry_after)
    assert "buttress_rate_limiter_rejected" == ev[0].name


# -- the bound over any window ---------------------------------------------------------------------


def _assert_window_bound(times: list[float], rate: float, burst: int) -> None:
    """Every window [times[i], times[j]] holds at most burst + rate * (length) admitted calls."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i, len(times)):
            count = j - i + 1
            allowed = burst + rate * (times[j] - times[i])
            assert count <= allowed + 1e-9, (count, allowed, times[i], times[j])


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.integers(min_value=1, max_value=8),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=6)),
        min_size=1,
        max_size=40,
    ),
)
def test_never_exceeds_the_rate_over_any_window_reject_mode(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(rate, burst=burst, clock=clock)
    admitted: list[float] = []
    for dt, tries in steps:
        clock.advance(dt)
        for _ in range(tries):
            if r.try_acquire():
                admitted.append(clock.monotonic())
    _assert_window_bound(admitted, rate, burst)


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=50),
    burst=st.integers(min_value=1, max_value=8),
    max_wait=st.floats(min_value=0, max_value=2),
    steps=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.5), st.integers(min_value=1, max_value=6)),
        min_size=1,
        max_size=40,
    ),
)
def test_never_exceeds_the_rate_over_any_window_wait_mode(
    rate: float, burst: int, max_wait: float, steps: list[tuple[float, int]]
) -> None:
    """In wait mode a call proceeds ``wait`` seconds later; counted at *that* time, the bound
    holds."""
    clock = FakeClock(start=0.0)
    r = RateLimiter(rate, burst=burst, clock=clock)
    proceeded: list[float] = []
    for dt, tries in steps:
        clock.advance(dt)
        for _ in range(tries):
            w = r.reserve(max_wait=max_wait)
            if w >= 0:
                assert w <= max_wait
                proceeded.append(clock.monotonic() + w)
    _assert_window_bound(proceeded, rate, burst)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([1, 2, 4, 8, 16]),
    burst=st.integers(min_value=1, max_value=6),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=64), st.integers(min_value=1, max_value=5)),
        min_size=1,
        max_size=50,
    ),
)
def test_decisions_equal_a_token_bucket_in_exact_arithmetic(
    rate: int, burst: int, steps: list[tuple[int, int]]
) -> None:
    """Not too strict either: on times that floats hold exactly (multiples of 1/64 s), every
    decision equals a token bucket of capacity ``burst`` refilled at ``rate``/s, computed in
    fractions."""
    clock = FakeClock(start=0.0)
    r = RateLimiter(rate, burst=burst, clock=clock)
    tokens = Fraction(burst)
    for ticks, tries in steps:
        dt = Fraction(ticks, 64)
        clock.advance(float(dt))
        tokens = min(Fraction(burst), tokens + dt * rate)
        for _ in range(tries):
            expected = tokens >= 1
            if expected:
                tokens -= 1
            assert expected == r.try_acquire()


def test_threads_never_take_more_than_the_bucket() -> None:
    """16 threads hammer a frozen clock: exactly ``burst`` calls get through, never one more."""
    clock = FakeClock(start=0.0)
    r = RateLimiter(1, burst=50, clock=clock)
    got = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def hammer() -> None:
        start.wait()
        n = sum(r.try_acquire() for _ in range(200))
        with lock:
            got.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert 50 == sum(got)


# -- wait mode -------------------------------------------------------------------------------------


def test_wait_mode_sleeps_until_the_reserved_slot(captured_events: list[Event]) -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(10, burst=1, mode="wait", max_wait=0.25, clock=clock)
    pipe = Pipeline([r], clock=clock)
    stamps = [pipe.call(clock.monotonic) for _ in range(3)]
    assert [0.0, 0.1, 0.2] == pytest.approx(stamps)
    assert [0.1, 0.1] == pytest.approx(clock.sleeps)
    # Two reservations taken directly (they wait 0.1 and 0.2): the next call would wait 0.3 > 0.25.
    assert [0.1, 0.2] == pytest.approx([r.reserve(max_wait=1.0), r.reserve(max_wait=1.0)])
    with pytest.raises(RateLimited) as info:
        pipe.call(clock.monotonic)
    assert 0.3 == pytest.approx(info.value.retry_after)
    assert "more than the wait allowed" in str(info.value)
    waited = [e for e in captured_events if isinstance(e, RateLimitWaited)]
    assert [0.1, 0.1] == pytest.approx([e.delay for e in waited])


def test_wait_mode_respects_the_deadline() -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(10, burst=1, mode="wait", max_wait=5.0, clock=clock)
    pipe = Pipeline([r], clock=clock)
    pipe.call(lambda: None)
    with deadline(0.05, clock=clock), pytest.raises(RateLimited) as info:
        pipe.call(lambda: None)
    assert 0.1 == pytest.approx(info.value.retry_after)
    assert [] == clock.sleeps
    # Nothing was reserved by the refused call: the next one waits only the first interval.
    with deadline(0.2, clock=clock):
        pipe.call(lambda: None)
    assert [0.1] == pytest.approx(clock.sleeps)


async def test_async_reject_and_wait_modes() -> None:
    clock = FakeClock(start=0.0)
    rej = Pipeline([RateLimiter(5, burst=2, clock=clock)], clock=clock)

    async def now() -> float:
        return clock.monotonic()

    assert [0.0, 0.0] == [await rej.call_async(now), await rej.call_async(now)]
    with pytest.raises(RateLimited) as info:
        await rej.call_async(now)
    assert 0.2 == pytest.approx(info.value.retry_after)
    wait = Pipeline([RateLimiter(5, burst=1, mode="wait", clock=clock)], clock=clock)
    stamps = [await wait.call_async(now) for _ in range(3)]
    assert [0.0, 0.2, 0.4] == pytest.approx(stamps)


# -- per-key buckets and bounded memory ------------------------------------------------------------


def test_per_key_buckets_are_independent() -> None:
    clock = FakeClock(start=0.0)
    r = RateLimiter(1, burst=2, key=context_key("tenant"), clock=clock)
    pipe = Pipeline([r], clock=clock)

    def as_tenant(tenant: str | None) -> bool:
        ctx = Context(properties={} if tenant is None else {"tenant": tenant})
        try:
            pipe.call_with_context(ctx, lambda: None)
        except RateLimited as e:
            assert ("acme" if tenant == "acme" else tenant or "") in str(e)
            return False
        return True

    assert [True, True, False] == [as_tenant("acme") for _ in range(3)]
    assert [True, True, False] == [as_tenant("globex") for _ in range(3)]
    assert [True, True, False] == [as_tenant(None) for _ in range(3)]
    assert [True, True] == [r.try_acquire("initech"), r.try_acquire("initech")]
    assert not r.try_acquire("initech")


def test_memory_is_bounded_and_full_buckets_go_first() -> None:
    clock = FakeClock(start=0.0)
    store = MemoryBucketStore(max_keys=4)
    r = RateLimiter(1, burst=1, store=store, clock=clock)
    for k in range(4):
        assert r.try_acquire(k)
    assert 4 == len(store)
    clock.advance(5.0)  # every bucket has refilled: dropping them changes nothing
    for k in range(4, 8):
        assert r.try_acquire(k)
        assert len(store) <= 4
    assert 0 == store.evicted
    assert {4, 5, 6, 7} == {k for k in range(8) if store.tat(k) is not None}
    # Now every bucket is busy: the least recently used one must go (and it is counted).
    assert r.try_acquire(8)
    assert 4 == len(store)
    assert 1 == store.evicted
    assert store.tat(4) is None


@settings(max_examples=60, deadline=None)
@given(
    max_keys=st.integers(min_value=1, max_value=20),
    ops=st.lists(
        st.tuples(st.integers(min_value=0, max_value=60), st.floats(min_value=0, max_value=1)),
        max_size=200,
    ),
)
def test_memory_never_passes_max_keys(max_keys: int, ops: list[tuple[int, float]]) -> None:
    clock = FakeClock(start=0.0)
    store = MemoryBucketStore(max_keys)
    r = RateLimiter(2, burst=1, store=store, clock=clock)
    for key, dt in ops:
        clock.advance(dt)
        r.try_acquire(key)
        assert len(store) <= max_keys


def test_a_custom_store_sees_one_call_per_decision() -> None:
    class Recording:
        def __init__(self) -> None:
            self.inner = MemoryBucketStore()
            self.calls: list[tuple[Any, ...]] = []

        def acquire(
            self, key: Any, now: float, increment: float, tolerance: float, max_wait: float
        ) -> float:
            self.calls.append((key, now, increment, tolerance, max_wait))
            return self.inner.acquire(key, now, increment, tolerance, max_wait)

    clock = FakeClock(start=3.0)
    store = Recording()
    pipe = Pipeline([RateLimiter(4, burst=2, store=store, clock=clock)], clock=clock)
    pipe.call(lambda: None)
    assert [(None, 3.0, 0.25, 0.5, 0.0)] == store.calls
