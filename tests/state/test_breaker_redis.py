"""The Redis breaker script against the in-memory machine: same configuration, same calls, same
times (``server_time=False`` sends the fake clock's readings), so every decision, transition and
snapshot must be equal.  Then what happens when Redis is away or answers with errors."""

from __future__ import annotations

import random
import uuid
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    rule,
    run_state_machine_as_test,
)

from buttress import Pipeline
from buttress.errors import CircuitOpen
from buttress.events import Event, add_listener
from buttress.policies.breaker import (
    BreakerMachine,
    BreakerState,
    CircuitBreaker,
    IllegalTransition,
    Permit,
    Trigger,
)
from buttress.state import RedisState, StateRestored, StateUnavailable
from buttress.testing import FakeClock

from .conftest import LIVE_TIMEOUT, RedisServer, Target, free_port

CONFIGS = st.fixed_dictionaries(
    {
        "failure_rate_threshold": st.sampled_from([0.25, 0.5, 1.0]),
        "slow_call_rate_threshold": st.sampled_from([0.5, 1.0]),
        "minimum_calls": st.integers(1, 5),
        "window": st.sampled_from(
            [("count", 4, None), ("count", 7, None), ("time", 4, 4), ("time", 2, 8)]
        ),
        "permitted": st.integers(1, 3),
        "half_open_timeout": st.sampled_from([1.5, 3.0]),
        "break_duration": st.sampled_from([1.0, 2.5]),
    }
)


def _kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    wtype, size, buckets = cfg["window"]
    return {
        "failure_rate_threshold": cfg["failure_rate_threshold"],
        "slow_call_rate_threshold": cfg["slow_call_rate_threshold"],
        "slow_call_duration": 2.0,
        "minimum_calls": cfg["minimum_calls"],
        "window_type": wtype,
        "window_size": size,
        "window_buckets": buckets,
        "permitted_calls_in_half_open": cfg["permitted"],
        "half_open_timeout": cfg["half_open_timeout"],
        "break_duration": cfg["break_duration"],
    }


URL: list[str] = []
CLUSTER_URL: list[str] = []


def _model_settings(examples: int = 40, steps: int = 30) -> settings:
    """Settings of the machine-against-machine models: every step talks to a real Redis."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def _same_outcome(
    mem: BreakerMachine,
    red: BreakerMachine,
    store: Any,
    now: float,
    p: Any,
    outcome: str,
    duration: float,
) -> None:
    """Record one outcome on both machines; a success on the Redis side waits for its next script
    call unless it moved the breaker in memory (a waiting one moves it at that later call, when
    test_breaker_deferred checks it), so both report the same transitions here."""
    a = mem.on_result(now, p[0], outcome, duration)  # type: ignore[arg-type]
    b = red.on_result(now, p[1], outcome, duration)  # type: ignore[arg-type]
    if a:
        b += store.flush(now)
    assert a == b


class RedisVsMemory(RuleBasedStateMachine):
    """Both machines see the same operations; their answers must match exactly."""

    permits = Bundle("permits")
    target: ClassVar[list[str]] = URL
    cluster: ClassVar[bool] = False

    @initialize(cfg=CONFIGS)
    def build(self, cfg: dict[str, Any]) -> None:
        self.now = 1000.0
        self.state = RedisState(
            self.target[0],
            cluster=self.cluster,
            service=f"m{uuid.uuid4().hex[:10]}",
            server_time=False,
            timeout=LIVE_TIMEOUT,
        )
        self.mem = BreakerMachine(now=self.now, **_kwargs(cfg))
        self.store = self.state.breaker_store("p/cb")
        self.red = BreakerMachine(now=self.now, store=self.store, **_kwargs(cfg))

    def teardown(self) -> None:
        if hasattr(self, "state"):
            assert self.state.available  # every step went to Redis, none fell back
            self.state.close()

    @rule(dt=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.75, 3.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(target=permits)
    def before_call(self) -> Any:
        a = self.mem.before_call(self.now)
        b = self.red.before_call(self.now)
        assert a == b
        return (a, b) if isinstance(a, Permit) else None

    @rule(
        p=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "ignored"]),
        duration=st.sampled_from([0.1, 3.0]),
    )
    def on_result(self, p: Any, outcome: str, duration: float) -> None:
        if p is None:
            return
        a = self.mem.on_result(self.now, p[0], outcome, duration)  # type: ignore[arg-type]
        b = self.red.on_result(self.now, p[1], outcome, duration)  # type: ignore[arg-type]
        # A fast success waits for this process's next script call (test_breaker_deferred checks
        # when it counts); sent now, it must do what the memory machine did with it.
        b += self.store.flush(self.now)
        assert a == b

    @rule(trigger=st.sampled_from(list(Trigger)))
    def apply(self, trigger: Trigger) -> None:
        try:
            a: Any = self.mem.apply(self.now, trigger)
        except IllegalTransition as e:
            a = ("illegal", e.state, e.trigger)
        try:
            b: Any = self.red.apply(self.now, trigger)
        except IllegalTransition as e:
            b = ("illegal", e.state, e.trigger)
        assert a == b

    @rule()
    def snapshot(self) -> None:
        assert self.mem.snapshot(self.now) == self.red.snapshot(self.now)


TestRedisVsMemory = RedisVsMemory.TestCase
TestRedisVsMemory.settings = _model_settings(steps=30)


COUNT_CONFIGS = CONFIGS.filter(lambda cfg: cfg["window"][0] == "count")


class DeferredVsMemory(RedisVsMemory):
    """The same model with successes left waiting, as on the success path: each travels with the
    process's next script call (usually an acquire, which has a fast path for exactly this case)
    instead of being flushed at once.  A success whose counting opens the breaker is flushed at
    once, since a waiting one opens it at that later call (test_breaker_deferred checks when);
    count windows only, since a waiting success falls in a later time bucket."""

    @initialize(cfg=COUNT_CONFIGS)
    def build(self, cfg: dict[str, Any]) -> None:
        super().build(cfg)

    @rule(
        p=consumes(RedisVsMemory.permits),
        outcome=st.sampled_from(["success", "success", "failure", "ignored"]),
        duration=st.sampled_from([0.1, 0.1, 3.0]),
    )
    def on_result(self, p: Any, outcome: str, duration: float) -> None:
        if p is not None:
            _same_outcome(self.mem, self.red, self.store, self.now, p, outcome, duration)

    @rule(trigger=st.sampled_from(list(Trigger)), roll=st.integers(0, 4))
    def apply(self, trigger: Trigger, roll: int) -> None:  # type: ignore[override]
        # Manual transitions one time in five: long closed stretches are the success path's.
        if roll == 0:
            super().apply(trigger)


TestDeferredVsMemory = DeferredVsMemory.TestCase
TestDeferredVsMemory.settings = _model_settings(steps=40)


TIME_CONFIGS = CONFIGS.filter(lambda cfg: cfg["window"][0] == "time")


class DeferredTimeVsMemory(DeferredVsMemory):
    """The waiting successes with time windows: they are flushed before the clock moves, so each
    lands in the bucket of the moment memory counted it (the script's fast path for time windows
    runs while no bucket has to be retired)."""

    @initialize(cfg=TIME_CONFIGS)
    def build(self, cfg: dict[str, Any]) -> None:
        super().build(cfg)

    @rule(dt=st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.75, 3.0]))
    def advance(self, dt: float) -> None:
        assert () == self.store.flush(self.now)  # transitions were flushed when they happened
        self.now += dt


TestDeferredTimeVsMemory = DeferredTimeVsMemory.TestCase
TestDeferredTimeVsMemory.settings = _model_settings(steps=40)


@pytest.fixture(autouse=True)
def _url(redis_server: RedisServer) -> None:
    URL[:] = [redis_server.url]


class ClusterVsMemory(RedisVsMemory):
    """The same model on a Redis Cluster: the breaker's two keys share a hash tag, so each script
    call touches one slot (``teardown`` checks no step fell back)."""

    target = CLUSTER_URL
    cluster = True


def test_breaker_script_matches_memory_on_a_cluster(redis_cluster: Any) -> None:
    CLUSTER_URL[:] = [redis_cluster.url]
    run_state_machine_as_test(ClusterVsMemory, settings=_model_settings(examples=15))


@pytest.mark.parametrize(
    ("window", "minimum_calls", "size", "seed"),
    [
        ("count", 5, 7, 1),
        ("count", 3, 4, 2),
        ("count", 50, 7, 3),
        ("count", 7, 7, 4),
        ("time", 5, 2, 5),
        ("time", 40, 4, 6),
    ],
)
def test_waiting_successes_fold_into_a_full_window_as_in_memory(
    redis_server: RedisServer, window: str, minimum_calls: int, size: int, seed: int
) -> None:
    """Long closed stretches, mostly successes that wait for the next acquire (the script's fast
    path: a count window full and under its thresholds, or short of minimum_calls; a time window's
    current bucket), some failures and slow calls among them: every decision and every snapshot
    as in memory."""
    rng = random.Random(seed)
    kwargs = {
        "failure_rate_threshold": 0.5,
        "slow_call_rate_threshold": 0.6,
        "slow_call_duration": 2.0,
        "minimum_calls": minimum_calls,
        "window_type": window,
        "window_size": size,
        **({"window_buckets": 4} if window == "time" else {}),
        "permitted_calls_in_half_open": 2,
        "break_duration": 1.0,
    }
    state = RedisState(
        redis_server.url, service=f"f{uuid.uuid4().hex[:10]}", server_time=False,
        timeout=LIVE_TIMEOUT,
    )  # fmt: skip
    now = 1000.0
    mem = BreakerMachine(now=now, **kwargs)  # type: ignore[arg-type]
    store = state.breaker_store("cb")
    red = BreakerMachine(now=now, store=store, **kwargs)  # type: ignore[arg-type]
    try:
        for _ in range(300):
            dt = rng.choice([0.0, 0.0, 0.5])
            if dt and window == "time":  # waiting successes land in the bucket memory used
                assert () == store.flush(now)
            now += dt
            # Up to three calls in flight: their successes then travel together with the next
            # acquire.
            permits = []
            for _ in range(rng.choice([1, 1, 2, 3])):
                a, b = mem.before_call(now), red.before_call(now)
                assert a == b
                if isinstance(a, Permit):
                    permits.append((a, b))
            for pair in permits:
                outcome = rng.choices(["success", "failure"], weights=[5, 1])[0]
                duration = rng.choices([0.1, 3.0], weights=[6, 1])[0]
                _same_outcome(mem, red, store, now, pair, outcome, duration)
            if rng.random() < 0.1:
                assert mem.snapshot(now) == red.snapshot(now)
        assert state.available
    finally:
        state.close()


# --- one fleet-wide state ---------------------------------------------------------------------


def test_two_breakers_on_one_scope_share_state(shared: Target, service: str) -> None:
    """What one replica learns (the dependency fails) the other acts on at once."""
    a = shared.state(service)
    b = shared.state(service)
    kw: dict[str, Any] = {"minimum_calls": 4, "window_size": 4, "break_duration": 30}
    ba = CircuitBreaker(store=a.breaker_store("pay/cb"), **kw)
    bb = CircuitBreaker(store=b.breaker_store("pay/cb"), **kw)

    def boom() -> None:
        raise ConnectionError("down")

    pa = Pipeline([ba], name="pay")
    for _ in range(4):
        with pytest.raises(ConnectionError):
            pa.call(boom)
    assert BreakerState.OPEN == bb.state
    calls = []
    with pytest.raises(CircuitOpen) as info:
        Pipeline([bb], name="pay").call(lambda: calls.append(1))
    assert [] == calls
    assert info.value.retry_after is not None and 29 < info.value.retry_after <= 30
    bb.reset()
    assert BreakerState.CLOSED == ba.state
    assert a.available and b.available


def test_a_store_serves_one_breaker(redis_server: RedisServer, service: str) -> None:
    store = RedisState(redis_server.url, service=service, timeout=LIVE_TIMEOUT).breaker_store("x")
    CircuitBreaker(store=store)
    with pytest.raises(Exception, match="already serves another breaker"):
        CircuitBreaker(store=store)


def test_keys_are_namespaced_and_expire(shared: Target, service: str) -> None:
    state = shared.state(service, ttl=120)
    br = CircuitBreaker(store=state.breaker_store("orders/circuit_breaker"))
    # Two calls: the first's success travels with the second's decision, which writes the ring.
    Pipeline([br], name="orders").call(lambda: 1)
    Pipeline([br], name="orders").call(lambda: 1)
    assert state.available
    r = shared.client()
    keys = shared.keys(f"buttress:{{{service}/*")
    assert [
        f"buttress:{{{service}/orders/circuit_breaker}}:b",
        f"buttress:{{{service}/orders/circuit_breaker}}:r",
    ] == keys
    for k in keys:
        # at least ttl after the last call; set again only when an eighth of it has passed
        assert 120 <= r.ttl(k) <= 135


def test_script_flush_reloads_without_falling_back(shared: Target, service: str) -> None:
    state = shared.state(service)
    br = CircuitBreaker(store=state.breaker_store("cb"), minimum_calls=2, window_size=2)
    p = Pipeline([br], name="p")
    p.call(lambda: 1)
    shared.client().script_flush()  # on a cluster: on every master
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        p.call(lambda: 1)
    finally:
        remove()
    assert state.available
    assert [] == [e for e in seen if isinstance(e, StateUnavailable)]
    assert 2 == br.snapshot().calls


# --- Redis unavailable --------------------------------------------------------------------------


def _failing() -> None:
    raise ConnectionError("dependency down")


@pytest.mark.parametrize("mode", ["local", "fail_open", "fail_closed"])
def test_unreachable_redis_never_raises_into_the_caller(mode: str) -> None:
    clock = FakeClock()
    state = RedisState(
        f"redis://127.0.0.1:{free_port()}/0", on_unavailable=mode, clock=clock, timeout=0.2
    )  # type: ignore[arg-type]
    br = CircuitBreaker(
        store=state.breaker_store("p/cb"), minimum_calls=3, window_size=3, clock=clock
    )
    p = Pipeline([br], name="p", clock=clock)
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        outcomes = []
        for _ in range(5):
            try:
                p.call(_failing)
                outcomes.append("ok")
            except CircuitOpen:
                outcomes.append("rejected")
            except ConnectionError:
                outcomes.append("called")
    finally:
        remove()
    expected = {
        "local": ["called"] * 3 + ["rejected"] * 2,  # the local breaker opened after 3 failures
        "fail_open": ["called"] * 5,
        "fail_closed": ["rejected"] * 5,
    }[mode]
    assert expected == outcomes
    unavailable = [e for e in seen if isinstance(e, StateUnavailable)]
    assert 1 == len(unavailable)  # one event per outage, not per call
    assert mode == unavailable[0].fallback
    assert "ConnectionError" in unavailable[0].error
    assert "buttress_state_unavailable" == unavailable[0].name


def test_fail_closed_retry_after_is_the_time_to_the_next_attempt() -> None:
    clock = FakeClock()
    state = RedisState(
        f"redis://127.0.0.1:{free_port()}/0",
        on_unavailable="fail_closed",
        retry_interval=2.0,
        clock=clock,
    )
    br = CircuitBreaker(store=state.breaker_store("cb"), clock=clock)
    p = Pipeline([br], name="p", clock=clock)
    with pytest.raises(CircuitOpen) as info:
        p.call(lambda: 1)
    assert 2.0 == info.value.retry_after
    clock.advance(0.5)
    with pytest.raises(CircuitOpen) as info:
        p.call(lambda: 1)
    assert 1.5 == info.value.retry_after


def _restore_events(seen: list[Event]) -> list[str]:
    return [e.kind for e in seen if isinstance(e, StateUnavailable | StateRestored)]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [("wrongtype", "WRONGTYPE"), ("readonly", "ReadOnlyError"), ("oom", "OutOfMemoryError")],
)
def test_redis_errors_count_as_unavailable(
    own_redis: RedisServer, service: str, breakage: str, message: str
) -> None:
    """A Redis that answers with errors is unavailable, not a crash; fixing it restores sharing."""
    clock = FakeClock()
    state = RedisState(
        own_redis.url, service=service, clock=clock, retry_interval=1.0, timeout=LIVE_TIMEOUT
    )
    br = CircuitBreaker(
        store=state.breaker_store("cb"), minimum_calls=2, window_size=2, clock=clock
    )
    p = Pipeline([br], name="p", clock=clock)
    assert 1 == p.call(lambda: 1)
    admin = own_redis.client()
    key = f"buttress:{{{service}/cb}}:b"
    if breakage == "wrongtype":
        admin.delete(key)
        admin.set(key, "not a hash")
    elif breakage == "readonly":
        admin.config_set("replica-read-only", "yes")
        admin.replicaof("127.0.0.1", free_port())
    else:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        assert 2 == p.call(lambda: 2)  # decided locally
        assert message in state._link.error
        assert not state.available
        if breakage == "wrongtype":
            admin.delete(key)
        elif breakage == "readonly":
            admin.replicaof("NO", "ONE")
        else:
            admin.config_set("maxmemory", "0")
        clock.advance(1.0)
        assert 3 == p.call(lambda: 3)  # back on Redis
    finally:
        remove()
    assert ["unavailable", "restored"] == _restore_events(seen)
    assert state.available
    assert 1.0 == next(e for e in seen if isinstance(e, StateRestored)).down_for


def test_local_permits_report_to_the_local_state_after_redis_returns(
    own_redis: RedisServer, service: str
) -> None:
    """A call admitted locally during an outage that ends while it runs is recorded locally (not
    counted against the shared window with a generation that means something else there)."""
    clock = FakeClock()
    state = RedisState(
        own_redis.url, service=service, clock=clock, retry_interval=0.5, timeout=LIVE_TIMEOUT
    )
    m = BreakerMachine(minimum_calls=1, window_size=1, store=state.breaker_store("cb"))
    own_redis.kill()
    local = m.before_call(clock.monotonic())
    assert isinstance(local, Permit) and local.generation < 0
    own_redis.start()
    clock.advance(0.5)
    shared = m.before_call(clock.monotonic())
    assert isinstance(shared, Permit) and shared.generation >= 0
    assert () == m.on_result(clock.monotonic(), local, "failure", 0.1)
    assert BreakerState.CLOSED == m.snapshot(clock.monotonic()).state  # shared: untouched
    notes = m.on_result(clock.monotonic(), shared, "failure", 0.1)
    assert [BreakerState.OPEN] == [n.to_state for n in notes]  # type: ignore[union-attr]
