"""A *stalled* Redis (the process stopped with SIGSTOP: connections stay open, nothing answers)
costs a decision one ``timeout``, not two, once per ``retry_interval``; nothing raises; the shared
state rules again after SIGCONT."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from buttress import CircuitBreaker, Pipeline, RateLimiter
from buttress.events import Event, add_listener
from buttress.state import RedisState, StateRestored, StateUnavailable
from buttress.testing import FakeClock

from .conftest import RedisServer

TIMEOUT = 0.2
"""Long enough that one timeout (0.2 s) and two (0.4 s, what a retry on timeout costs) stay apart
on a loaded machine; the bound checked is 1.5 x the timeout."""


@contextmanager
def stopped(server: RedisServer) -> Iterator[None]:
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_a_stalled_redis_costs_one_timeout_per_retry_interval(
    own_redis: RedisServer, service: str
) -> None:
    clock = FakeClock()  # the outage timers: retry_interval passes when the test says so
    state = RedisState(
        own_redis.url, service=service, timeout=TIMEOUT, retry_interval=1.0, clock=clock
    )
    breaker = CircuitBreaker(store=state.breaker_store("cb"), minimum_calls=100)
    pipe = Pipeline([breaker], name="stall")
    async_pipe = Pipeline(
        [CircuitBreaker(store=state.breaker_store("acb"), minimum_calls=100)], name="astall"
    )
    limiter = RateLimiter(1000, burst=1000, store=state.bucket_store("rl"))
    # Scripts loaded, a pooled connection open: what a stall finds in production.
    assert (1, True) == (pipe.call(lambda: 1), limiter.try_acquire())
    assert 1 == asyncio.run(async_pipe.call_async(_one))
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        with stopped(own_redis):
            # The first decision waits for the timeout, once, and decides locally.
            value, first = timed(lambda: pipe.call(lambda: 2))
            assert 2 == value
            assert TIMEOUT * 0.9 <= first < TIMEOUT * 1.5
            assert not state.available
            # Until retry_interval has passed no decision touches the network.
            _, rest = timed(lambda: [(pipe.call(int), limiter.try_acquire()) for _ in range(50)])
            assert rest < TIMEOUT / 2
            # retry_interval later: one more bounded attempt, by whichever policy decides first;
            # here an async pipeline, whose event loop is blocked for at most that bound.
            clock.advance(1.0)
            value, again = timed(lambda: asyncio.run(async_pipe.call_async(_one)))
            assert 1 == value
            assert TIMEOUT * 0.9 <= again < TIMEOUT * 1.5
            assert limiter.try_acquire()  # local bucket, no wait
        clock.advance(1.0)
        # SIGCONT: the next decisions are shared again.
        assert 3 == pipe.call(lambda: 3)
        assert limiter.try_acquire()
        assert state.available
    finally:
        remove()
    unavailable = [e for e in seen if isinstance(e, StateUnavailable)]
    assert {"circuit_breaker", "rate_limiter"} <= {e.policy for e in unavailable}
    assert all("TimeoutError" in e.error for e in unavailable)
    restored = {e.policy for e in seen if isinstance(e, StateRestored)}
    assert {"circuit_breaker", "rate_limiter"} <= restored
    state.close()


async def _one() -> int:
    return 1
