"""Four real processes share one breaker and one rate limiter through a real redis-server."""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

from buttress import Pipeline
from buttress.errors import CircuitOpen, RateLimited
from buttress.events import Event, add_listener
from buttress.policies.breaker import BreakerState, CircuitBreaker, Permit
from buttress.policies.ratelimit import RateLimiter
from buttress.state import RedisState, StateRestored, StateUnavailable

from .conftest import LIVE_TIMEOUT, RedisServer, Target

PROCS = 4
CTX = mp.get_context("fork")


def _breaker_kw() -> dict[str, Any]:
    return {
        "minimum_calls": 4,
        "window_size": 4,
        "break_duration": 0.3,
        "permitted_calls_in_half_open": 3,
        "half_open_timeout": 60.0,
    }


def _probe_worker(target: Target, service: str, start: Any, out: Any) -> None:
    state = target.state(service)
    br = CircuitBreaker(store=state.breaker_store("dep/cb"), **_breaker_kw())
    m = br.machine
    assert state.ping()
    start.wait()
    probes = rejected = 0
    end = time.monotonic() + 0.4
    while time.monotonic() < end:
        d = m.before_call(time.monotonic())
        if isinstance(d, Permit):
            probes += d.probe
        else:
            rejected += 1
    out.put((probes, rejected, state.available))


def test_exactly_n_half_open_probes_fleet_wide(shared: Target, service: str) -> None:
    state = shared.state(service)
    br = CircuitBreaker(store=state.breaker_store("dep/cb"), **_breaker_kw())
    p = Pipeline([br], name="dep")
    for _ in range(4):
        try:
            p.call(_boom)
        except ConnectionError:
            pass
    assert BreakerState.OPEN == br.state
    start = CTX.Barrier(PROCS + 1)
    out = CTX.Queue()
    procs = [
        CTX.Process(target=_probe_worker, args=(shared, service, start, out)) for _ in range(PROCS)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.3)  # the break ends while the workers wait at the barrier
    start.wait()
    results = [out.get(timeout=20) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert 3 == sum(r[0] for r in results)  # exactly permitted_calls_in_half_open, fleet-wide
    assert all(r[1] > 0 for r in results)  # everyone else was refused
    assert all(r[2] for r in results)  # and nobody fell back to local decisions
    snap = br.snapshot()
    assert (BreakerState.HALF_OPEN, 0) == (snap.state, snap.probes_available)


def _boom() -> None:
    raise ConnectionError("dependency down")


RATE = 200.0
BURST = 5


def _limit_worker(target: Target, service: str, start: Any, out: Any) -> None:
    state = target.state(service)
    rl = RateLimiter(RATE, burst=BURST, store=state.bucket_store("api/rate_limit"))
    assert state.ping()  # connected before the clock starts (a cluster client reads its maps)
    start.wait()
    admitted: list[tuple[float, float]] = []
    refused = 0
    end = time.time() + 1.5
    while time.time() < end:
        t0 = time.time()
        if rl.try_acquire():
            admitted.append((t0, time.time()))
        else:
            refused += 1
    out.put((admitted, refused, state.available))


def test_global_rate_is_never_exceeded_over_any_window(shared: Target, service: str) -> None:
    """Every admission happens (on the server) between the two wall-clock readings around it; in
    any window of length W, the admissions certainly inside it number at most burst + W * rate."""
    start = CTX.Barrier(PROCS)
    out = CTX.Queue()
    procs = [
        CTX.Process(target=_limit_worker, args=(shared, service, start, out)) for _ in range(PROCS)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert all(r[2] for r in results)
    assert all(r[1] > 0 for r in results)  # every process was refused at times: saturated
    admitted = sorted(a for r in results for a in r[0])
    starts = [a[0] for a in admitted]
    for w in (0.05, 0.25, 1.0):
        worst = 0
        for i, (a, _) in enumerate(admitted):
            inside = sum(1 for s, e in admitted[i:] if e <= a + w and s >= a)
            worst = max(worst, inside)
            if i > 400:
                break
        assert worst <= BURST + w * RATE + 1e-9, (w, worst)
    span = 1.5
    # ...and the fleet really got its share: close to burst + rate * span in all.
    assert 0.9 * RATE * span <= len(starts) <= BURST + RATE * (span + 0.1)


def _outage_worker(url: str, service: str, start: Any, out: Any) -> None:
    state = RedisState(url, service=service, retry_interval=0.1, timeout=LIVE_TIMEOUT)
    br = CircuitBreaker(store=state.breaker_store("dep/cb"), minimum_calls=1000, window_size=1000)
    rl = RateLimiter(1000, store=state.bucket_store("dep/rl"))
    pipe = Pipeline([br, rl], name="dep")
    kinds: list[str] = []

    def listen(e: Event) -> None:
        if isinstance(e, StateUnavailable | StateRestored):
            kinds.append(f"{e.policy}:{e.kind}")

    add_listener(listen)
    start.wait()
    ok = rejected = 0
    unexpected: list[str] = []
    t0 = time.monotonic()
    end, cap = t0 + 2.0, t0 + 10.0
    # At least 2 s; longer (up to 10 s) while the restart has not been seen yet, since a loaded
    # machine may take a while to bring redis-server back.
    while time.monotonic() < end or (
        time.monotonic() < cap and sum(k.endswith(":restored") for k in kinds) < 2
    ):
        try:
            pipe.call(lambda: None)
            ok += 1
        except (CircuitOpen, RateLimited):
            rejected += 1
        except BaseException as exc:
            unexpected.append(repr(exc))
        time.sleep(0.002)
    out.put((ok, rejected, unexpected, kinds, state.available, br.snapshot().calls))


def test_redis_killed_and_restarted_mid_run(own_redis: RedisServer, service: str) -> None:
    start = CTX.Barrier(PROCS + 1)
    out = CTX.Queue()
    procs = [
        CTX.Process(target=_outage_worker, args=(own_redis.url, service, start, out))
        for _ in range(PROCS)
    ]
    for proc in procs:
        proc.start()
    start.wait()
    time.sleep(0.5)
    own_redis.kill()
    time.sleep(0.6)
    own_redis.start()  # same port, empty: no keys, no scripts
    results = [out.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
    for ok, _rejected, unexpected, kinds, available, calls in results:
        assert [] == unexpected  # nothing ever reached the caller
        assert ok > 200  # every process carried on through the outage
        expected = {
            "circuit_breaker:unavailable",
            "circuit_breaker:restored",
            "rate_limiter:unavailable",
            "rate_limiter:restored",
        }
        assert expected == set(kinds)
        assert available
        assert calls > 0  # the window counted on Redis again after the restart
    # The new server holds the fleet's state again (re-created by the reloaded scripts).
    r = own_redis.client()
    assert r.exists(f"buttress:{{{service}/dep/cb}}:b")
    # (the rate-limit bucket's key expires ~1 ms after its last call, when it is full again)
