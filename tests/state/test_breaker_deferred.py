"""The Redis breaker's success path: one round trip per call.  A fast success that is not a probe
travels with the process's next script call, applied before that call's own step; what it changes
(a window filled to ``minimum_calls``) shows at that decision, for every process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from buttress import Pipeline
from buttress.errors import CircuitOpen
from buttress.events import Event, add_listener
from buttress.policies.breaker import BreakerState, CircuitBreaker
from buttress.policies.breaker_events import BreakerTransition
from buttress.state import RedisState
from buttress.state.redis.breaker import DEFERRED_MAX

from .conftest import LIVE_TIMEOUT, RedisServer


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisServer]:
    """A server for this module alone: its request counter must see no other test's traffic
    (the session's server is shared with every test of the xdist worker)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def _reads(client: redis.Redis) -> int:
    """Reads the server has made from its clients so far: one per round trip (commands inside a
    script are not requests), now and then two when a request arrives in two pieces on a busy
    machine, hence the few reads of slack below (two round trips a call would be 200 more)."""
    return int(client.info("stats")["total_reads_processed"])


def _breaker(server: RedisServer, service: str, **kw: object) -> CircuitBreaker:
    state = RedisState(server.url, service=service, timeout=LIVE_TIMEOUT)
    return CircuitBreaker(store=state.breaker_store("cb"), **kw)  # type: ignore[arg-type]


def test_a_call_on_the_success_path_costs_one_round_trip(
    own_server: RedisServer, service: str
) -> None:
    pipe = Pipeline([_breaker(own_server, service)], name="p")
    pipe.call(int)  # loads the script
    client = own_server.client()
    before = _reads(client)
    for _ in range(200):
        pipe.call(int)
    assert 200 <= _reads(client) - before - 1 <= 205  # the first INFO is one read too


def test_failures_are_sent_at_once(own_server: RedisServer, service: str) -> None:
    pipe = Pipeline([_breaker(own_server, service, minimum_calls=10**6)], name="p")
    pipe.call(int)
    client = own_server.client()
    before = _reads(client)
    for _ in range(20):
        with pytest.raises(ZeroDivisionError):
            pipe.call(lambda: 1 / 0)
    assert 40 <= _reads(client) - before - 1 <= 45  # a decision and a record each


@pytest.mark.parametrize(
    "window",
    [{"window_size": 4}, {"window_type": "time", "window_size": 60}],
    ids=["count", "time"],
)
def test_deferred_successes_fill_the_window_and_open_the_breaker_at_the_next_decision(
    redis_server: RedisServer, service: str, window: dict[str, object]
) -> None:
    kw = {"minimum_calls": 4, "failure_rate_threshold": 0.5, **window}
    mine = _breaker(redis_server, service, **kw)
    other = _breaker(redis_server, service, **kw)  # another process's breaker, same scope
    pipe = Pipeline([mine], name="p")
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        for fn in (lambda: 1 / 0, lambda: 1 / 0, int, int):  # 2 failures of 4: at the threshold
            try:
                pipe.call(fn)
            except ZeroDivisionError:
                pass
        # The last success is still waiting: the shared window holds 3 calls.
        assert BreakerState.CLOSED == other.state
        assert 3 == other.snapshot().calls
        with pytest.raises(CircuitOpen):  # it goes with this decision, and opens the breaker
            pipe.call(int)
    finally:
        remove()
    assert BreakerState.OPEN == other.state
    (opened,) = [e for e in seen if isinstance(e, BreakerTransition)]
    assert ("closed", "open", 4, 2) == (
        opened.from_state,
        opened.to_state,
        opened.calls,
        opened.failures,
    )


def test_many_waiting_successes_are_sent_without_waiting_for_a_decision(
    redis_server: RedisServer, service: str
) -> None:
    """Threads whose calls all end before any decides again cannot pile up outcomes forever."""
    br = _breaker(redis_server, service, minimum_calls=10**6, window_size=1000)
    other = _breaker(redis_server, service, minimum_calls=10**6, window_size=1000)
    machine = br.machine
    permits = [machine.before_call(0.0) for _ in range(DEFERRED_MAX + 1)]
    for p in permits:
        machine.on_result(0.0, p, "success", 0.0)  # type: ignore[arg-type]
    assert DEFERRED_MAX + 1 == other.snapshot().calls
