"""The rate-limit and retry-budget scripts against the in-memory rules, and their fallbacks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError, RateLimited
from buttress.events import Event, add_listener
from buttress.policies.budget import RetryBudget, TokenBucketBudget
from buttress.policies.ratelimit import MemoryBucketStore, RateLimiter
from buttress.spec import build_pipelines, load_spec_text
from buttress.state import MemoryState, RedisState, StateUnavailable
from buttress.testing import FakeClock

from .conftest import RedisServer, Target, free_port


@settings(max_examples=30, deadline=None)
@given(
    rate=st.sampled_from([3.0, 10.0, 250.0]),
    burst=st.integers(1, 4),
    ops=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.001, 0.05, 0.3, 1.0]),
            st.sampled_from([None, "a", 7]),
            st.sampled_from([0.0, 0.2]),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_bucket_script_matches_memory_store(
    shared: Target, rate: float, burst: int, ops: list[tuple[float, object, float]]
) -> None:
    state = shared.state(f"b{uuid.uuid4().hex[:10]}", server_time=False)
    red = state.bucket_store("rl")
    mem = MemoryBucketStore()
    now, t = 1000.0, 1.0 / rate
    for dt, key, max_wait in ops:
        now += dt
        a = mem.acquire(key, now, t, burst * t, max_wait)
        b = red.acquire(key, now, t, burst * t, max_wait)
        assert a == pytest.approx(b, abs=1e-9)
    assert state.available


def test_per_key_buckets_and_ttl(shared: Target, service: str) -> None:
    state = shared.state(service)
    store = state.bucket_store("api/rate_limit")
    rl = RateLimiter(2, burst=2, per=10, store=store)
    assert [True, True, False] == [rl.try_acquire("acme") for _ in range(3)]
    assert [True, True, False] == [rl.try_acquire("globex") for _ in range(3)]
    assert state.available  # on a cluster too: each call touched one slot
    r = shared.client()
    key = store.redis_key("acme")
    assert f"buttress:{service}/api/rate_limit:rl:acme" == key
    assert 9_000 < r.pttl(key) <= 10_001  # full again in 10 s: then the bucket is forgotten


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("local", [True, True, False]), ("fail_open", [True] * 3), ("fail_closed", [False] * 3)],
)
def test_rate_limit_fallbacks(mode: str, expected: list[bool]) -> None:
    clock = FakeClock()
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", on_unavailable=mode, clock=clock)  # type: ignore[arg-type]
    rl = RateLimiter(4, burst=2, store=state.bucket_store("rl", local_share=0.5), clock=clock)
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        assert expected == [rl.try_acquire() for _ in range(3)]
    finally:
        remove()
    assert [mode] == [e.fallback for e in seen if isinstance(e, StateUnavailable)]
    if mode == "local":
        # local_share 0.5: 2 per second locally, so the next token is 0.5 s away
        clock.advance(0.49)
        assert not rl.try_acquire()


def test_fail_closed_refusal_carries_retry_after() -> None:
    clock = FakeClock()
    state = RedisState(
        f"redis://127.0.0.1:{free_port()}/0",
        on_unavailable={"rate_limiter": "fail_closed"},
        retry_interval=3,
        clock=clock,
    )
    from buttress import Pipeline

    p = Pipeline([RateLimiter(10, store=state.bucket_store("rl"), clock=clock)], clock=clock)
    with pytest.raises(RateLimited) as info:
        p.call(lambda: 1)
    assert 3.0 == info.value.retry_after


def test_shared_ratio_budget_holds_the_bound_across_replicas(shared: Target, service: str) -> None:
    """Two replicas deposit 50 requests each; ratio 0.2 and no reserve: 20 retries fleet-wide."""
    budgets = [
        shared.state(service, server_time=False).retry_budget(
            "p/retry", ratio=0.2, min_per_second=0, ttl=10
        )
        for _ in range(2)
    ]
    for i in range(50):
        for b in budgets:
            b.on_request(1000.0 + i * 0.01)
    grants = [budgets[i % 2].try_withdraw(1001.0) for i in range(30)]
    assert 20 == sum(grants)
    assert 0.0 == budgets[0].balance(1001.0)
    # The window moves on: 10 s later those deposits no longer count.
    assert not budgets[1].try_withdraw(1011.5)
    assert not any(b.degraded for b in budgets)  # every decision was the shared one


def test_shared_budget_matches_local_rules_exactly(shared: Target, service: str) -> None:
    remote = shared.state(service, server_time=False).retry_budget(
        "p/retry", ratio=0.5, min_per_second=0.2, ttl=5, slices=5
    )
    local = RetryBudget(ratio=0.5, min_per_second=0.2, ttl=5, slices=5)
    now = 100.0
    for step in range(60):
        now += 0.37
        for b in (remote, local):
            b.on_request(now)
        if step % 3 == 0:
            assert local.try_withdraw(now) == remote.try_withdraw(now), step
    assert not remote.degraded


def test_shared_token_bucket(shared: Target, service: str) -> None:
    a, b = (
        shared.state(service).token_bucket_budget("p/retry", max_tokens=4, token_ratio=0.5)
        for _ in range(2)
    )
    ref = TokenBucketBudget(max_tokens=4, token_ratio=0.5)
    # A retry records its failure, then asks (which sends the batch): as gRPC does.
    a.on_failure()
    ref.on_failure()
    assert ref.try_withdraw(0) == a.try_withdraw(0)  # 3 > 2
    b.on_failure()
    ref.on_failure()
    assert ref.try_withdraw(0) == b.try_withdraw(0)  # 2 > 2 is False: b saw a's failure
    assert not a.try_withdraw(0)  # and a sees b's
    assert 2.0 == a.shared_tokens
    assert not (a.degraded or b.degraded)


def test_budget_fallback_keeps_deciding_locally() -> None:
    state = RedisState(f"redis://127.0.0.1:{free_port()}/0")
    b = state.retry_budget("p/retry", ratio=0.5, min_per_second=0, ttl=10)
    for i in range(4):
        b.on_request(float(i))
    assert [True, True, False] == [b.try_withdraw(4.0) for _ in range(3)]


# --- configuration and bad input ------------------------------------------------------------------


def test_bad_urls_are_refused_at_build_time() -> None:
    for url in ("http://localhost:6379", "localhost:6379", "redis://host:notaport/0"):
        with pytest.raises(ConfigError, match="url"):
            RedisState(url)
    with pytest.raises(ConfigError, match="on_unavailable"):
        RedisState("redis://127.0.0.1:1/0", on_unavailable="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown policy"):
        RedisState("redis://127.0.0.1:1/0", on_unavailable={"breaker": "local"})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="scope"):
        MemoryState().breaker_store("a{b}")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis://:hunter2@db.internal:notaport/0", "port"),
        ("redis://:hunter2@db.internal:0/0", "port"),
        ("redis://:hunter2@db.internal/notadb", "database"),
        ("redis://:hunter2@db.internal/0?db=two", "database"),
        ("rediss://:hunter2@[::1/0", "parse"),
        ("unix://", "path"),
        ("unix://:hunter2@", "path"),
        ("unix:///run/redis.sock?db=x&password=hunter2", "database"),
    ],
)
def test_bad_url_parts_are_refused_and_the_password_never_shown(url: str, reason: str) -> None:
    """redis-py reads some parts only when it connects and silently ignores others (``/notadb``
    means db 0 to it): every part is read at build time, and the error hides the password."""
    with pytest.raises(ConfigError) as e:
        RedisState(url)
    assert "url" == e.value.parameter
    assert reason in e.value.reason
    assert "hunter2" not in str(e.value)
    assert "hunter2" not in repr(e.value.value)


def test_repr_and_url_errors_hide_the_password(redis_server: RedisServer) -> None:
    url = redis_server.url.replace("redis://", "redis://default:hunter2@")
    state = RedisState(url, service="repr")
    try:
        assert "hunter2" not in repr(state)
        assert f"redis://***@127.0.0.1:{redis_server.port}/0" in repr(state)
    finally:
        state.close()
    with pytest.raises(ConfigError) as e:
        RedisState(url, client=redis_server.client())
    assert "hunter2" not in str(e.value)


def test_missing_extra_is_a_clear_message() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if redis-py were not installed
        from buttress.errors import MissingExtra
        from buttress.state import RedisState
        try:
            RedisState("redis://127.0.0.1:6379/0")
        except MissingExtra as e:
            print(e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'buttress[redis]'" in out.stdout


SPEC = """\
service: shop
state:
  store: redis
  url: {url}
  cluster: {cluster}
  on_unavailable: {{circuit_breaker: local, rate_limiter: fail_closed}}
policies:
  payments:
    retry: {{attempts: 2, budget: {{ratio: 0.1}}}}
    circuit_breaker: {{minimum_calls: 2, window_size: 2}}
    rate_limit: {{rate: 5}}
  search:
    state: {{store: memory}}
    circuit_breaker: {{}}
"""


def test_state_in_reliability_yaml(shared: Target) -> None:
    from buttress.state.redis import RedisBreakerStore, RedisBucketStore, SharedRetryBudget

    cluster = "true" if shared.cluster else "false"
    spec = load_spec_text(SPEC.format(url=shared.url, cluster=cluster), "reliability.yaml")
    pipes = build_pipelines(spec)
    pay = {p.kind: p for p in pipes["payments"].policies}
    assert isinstance(pay["circuit_breaker"].machine.store, RedisBreakerStore)  # type: ignore[attr-defined]
    assert "local" == pay["circuit_breaker"].machine.store.mode  # type: ignore[attr-defined]
    assert isinstance(pay["rate_limiter"].store, RedisBucketStore)  # type: ignore[attr-defined]
    assert "fail_closed" == pay["rate_limiter"].store.mode  # type: ignore[attr-defined]
    assert isinstance(pay["retry"].budget, SharedRetryBudget)  # type: ignore[attr-defined]
    search = pipes["search"].policies[0]
    assert "MemoryBreakerStore" == type(search.machine.store).__name__  # type: ignore[attr-defined]
    pipes["payments"].call(lambda: 1)
    r = shared.client()
    assert r.exists("buttress:{shop/payments/circuit_breaker}:b")
    assert r.exists("buttress:shop/payments/rate_limit:rl")
    assert pay["circuit_breaker"].machine.store.link is pay["rate_limiter"].store.link  # type: ignore[attr-defined]
    assert not pay["rate_limiter"].store.degraded  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("state", "where", "message"),
    [
        ("{store: redis}", "reliability.yaml:2:1: state:", "needs a url"),
        ("{store: redis, url: 'http://x'}", "reliability.yaml:2:1: state:", "not a Redis URL"),
        (
            "{store: redis, url: 'redis://h:port/0'}",
            "reliability.yaml:2:",
            "invalid url='redis://h:port/0'",
        ),
        ("{store: redis, url: 'redis://h/0', on_unavailable: maybe}", "on_unavailable", "local"),
        (
            "{store: redis, url: 'http://:hunter2@h/0'}",
            "reliability.yaml:2:1: state:",
            "url is not a Redis URL",
        ),
        (
            "{store: redis, url: 'redis://:hunter2@h:port/0'}",
            "reliability.yaml:2:23: state.url:",
            "invalid url='redis://***@h:port/0': the port must be an integer",
        ),
        (
            "{store: redis, url: 'redis://:hunter2@h/notadb'}",
            "reliability.yaml:2:23: state.url:",
            "the database in the path must be a number",
        ),
        (
            "{store: redis, url: 'unix://'}",
            "reliability.yaml:2:23: state.url:",
            "needs the socket's path",
        ),
    ],
)
def test_bad_state_spec_names_the_line(state: str, where: str, message: str) -> None:
    from buttress.errors import SpecError

    text = f"service: shop\nstate: {state}\npolicies:\n  p:\n    circuit_breaker: {{}}\n"
    with pytest.raises(SpecError) as info:
        build_pipelines(load_spec_text(text, "reliability.yaml"))
    assert where in str(info.value)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)
