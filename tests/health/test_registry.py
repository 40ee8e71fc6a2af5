"""The registry and a check's run: aggregation, TTL cache, single flight, timeouts, bad input."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.events import Event
from buttress.health import Check, CheckStatusChanged, HealthApp, HealthRegistry, Result, Status
from buttress.testing import FakeClock

from .servers import UvicornThread


def const(name: str, status: Status, *, critical: bool = True, **kw: object) -> Check:
    def fn() -> Result:
        return Result(status)

    return Check(name, fn, critical=critical, in_thread=False, **kw)  # type: ignore[arg-type]


# --- aggregation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("checks", "expected", "code"),
    [
        ([], Status.PASS, 200),
        ([(Status.PASS, True), (Status.PASS, False)], Status.PASS, 200),
        ([(Status.WARN, True)], Status.WARN, 200),
        ([(Status.FAIL, False)], Status.WARN, 200),  # non-critical failure only warns
        ([(Status.FAIL, False), (Status.PASS, True)], Status.WARN, 200),
        ([(Status.FAIL, True), (Status.WARN, True)], Status.FAIL, 503),
        ([(Status.WARN, False), (Status.FAIL, True)], Status.FAIL, 503),
    ],
)
async def test_group_status_and_http_code(
    checks: list[tuple[Status, bool]], expected: Status, code: int
) -> None:
    reg = HealthRegistry()
    for i, (status, critical) in enumerate(checks):
        reg.add(const(f"c{i}", status, critical=critical))
    report = await reg.evaluate("readiness")
    assert expected == report.status
    assert code == report.http_status
    status, body = await reg.respond("readiness")
    assert code == status
    assert expected.value == json.loads(body)["status"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Status)), st.booleans()), max_size=6))
def test_group_status_is_worst_effective_status(checks: list[tuple[Status, bool]]) -> None:
    """fail iff a critical check fails; else warn iff any check is not pass; else pass."""
    reg = HealthRegistry()
    for i, (status, critical) in enumerate(checks):
        reg.add(const(f"c{i}", status, critical=critical))
    report = asyncio.run(reg.evaluate("readiness"))
    if any(s is Status.FAIL and c for s, c in checks):
        expected = Status.FAIL
    elif any(s is not Status.PASS for s, _ in checks):
        expected = Status.WARN
    else:
        expected = Status.PASS
    assert expected == report.status
    assert (503 if expected is Status.FAIL else 200) == report.http_status


async def test_groups_are_separate_and_star_has_everything() -> None:
    reg = HealthRegistry()
    reg.add(const("db", Status.FAIL, groups=["readiness"]))
    reg.add(const("loop", Status.PASS, groups=["liveness"]))
    reg.add_group("batch", probe_timeout=5)
    reg.add(const("queue", Status.WARN, groups=["batch", "readiness"]))
    assert Status.PASS == (await reg.evaluate("liveness")).status
    assert Status.FAIL == (await reg.evaluate("readiness")).status
    assert Status.WARN == (await reg.evaluate("batch")).status
    assert Status.PASS == (await reg.evaluate("startup")).status
    everything = await reg.evaluate("*")
    assert {"db", "loop", "queue"} == {e.check.key for e in everything.entries}
    assert Status.FAIL == everything.status


# --- cache, single flight, timeouts ---------------------------------------------------------------


async def test_ttl_cache_on_a_fake_clock() -> None:
    clock = FakeClock()
    calls = []

    def fn() -> Result:
        calls.append(clock.monotonic())
        return Result(observed_value=len(calls))

    reg = HealthRegistry(clock=clock)
    reg.add(Check("dep", fn, ttl=1.0, in_thread=False, clock=clock))
    first = await reg.evaluate()
    clock.advance(0.999)
    again = await reg.evaluate()
    assert 1 == len(calls)
    assert first.entries[0].report is again.entries[0].report
    clock.advance(0.001)  # now == recorded + ttl: expired
    third = await reg.evaluate()
    assert 2 == len(calls)
    assert 2 == third.entries[0].report.observed_value


async def test_failures_are_cached_too() -> None:
    clock = FakeClock()
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    reg = HealthRegistry(clock=clock)
    reg.add(Check("dep", fn, ttl=5.0, in_thread=False, clock=clock))
    for _ in range(10):
        assert Status.FAIL == (await reg.evaluate()).status
    assert 1 == calls


async def test_hundred_concurrent_probes_over_http_cause_one_call() -> None:
    """A slow dependency check is coalesced: one call for 100 concurrent probes (ttl=0, so the
    cache plays no part: only single flight)."""
    calls = 0
    gate = threading.Event()
    entered = 0

    async def slow_dependency() -> Result:
        nonlocal calls
        calls += 1
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return Result(observed_value=7, observed_unit="ms")

    reg = HealthRegistry(probe_timeouts={"readiness": 20.0})
    reg.add(Check("db", slow_dependency, measurement="responseTime", ttl=0.0, timeout=15.0))
    health = HealthApp(reg)

    async def counting(scope, receive, send):  # type: ignore[no-untyped-def]
        nonlocal entered
        if scope["type"] == "http":
            entered += 1
        await health(scope, receive, send)

    with UvicornThread(counting) as server:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            probes = [asyncio.create_task(client.get("/health/ready")) for _ in range(100)]
            end = time.monotonic() + 20
            while entered < 100 and time.monotonic() < end:
                await asyncio.sleep(0.01)
            assert 100 == entered
            gate.set()
            responses = await asyncio.gather(*probes)
    assert 1 == calls
    assert [200] * 100 == [r.status_code for r in responses]
    assert 1 == len({r.content for r in responses})


async def test_threads_share_one_run_via_evaluate_sync() -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.5)

    reg = HealthRegistry()
    reg.add(Check("dep", slow, ttl=0.0, timeout=0.8))
    results: list[Status] = []
    # All 20 threads probe at the same moment: on a loaded machine, threads started one by one
    # could otherwise arrive after the shared run ended and (rightly, ttl=0) start another.
    barrier = threading.Barrier(20)

    def probe() -> None:
        barrier.wait(10)
        results.append(reg.evaluate_sync().status)

    try:
        threads = [threading.Thread(target=probe) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
    finally:
        reg.close()
    assert [Status.PASS] * 20 == results
    assert 1 == calls


async def test_a_cancelled_probe_does_not_cancel_the_shared_run() -> None:
    calls = 0

    async def slow() -> Result:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return Result(observed_value="done")

    check = Check("dep", slow, ttl=0.0, timeout=1.0)
    first = asyncio.create_task(check.run())
    second = asyncio.create_task(check.run())
    await asyncio.sleep(0.01)
    first.cancel()
    report = await second
    assert "done" == report.observed_value
    assert Status.PASS == report.status
    assert 1 == calls
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_timeout_fails_the_check_in_time() -> None:
    async def hangs() -> None:
        await asyncio.sleep(30)

    reg = HealthRegistry()
    reg.add(Check("dep", hangs, timeout=0.05))
    t0 = time.perf_counter()
    report = await reg.evaluate()
    elapsed = time.perf_counter() - t0
    assert Status.FAIL == report.status
    assert "timed out after 0.05s" == report.entries[0].report.output
    assert elapsed < 0.5


async def test_a_hung_blocking_check_does_not_pile_up_threads() -> None:
    release = threading.Event()
    started = 0

    def blocking() -> None:
        nonlocal started
        started += 1
        release.wait(5)

    check = Check("dep", blocking, ttl=0.0, timeout=0.05)
    try:
        first = await check.run()
        second = await check.run()
        assert "timed out after 0.05s" == first.output
        assert "previous run still in progress" == second.output
        assert 1 == started
    finally:
        release.set()
    end = time.monotonic() + 5
    while check._busy_thread and time.monotonic() < end:
        await asyncio.sleep(0.01)
    third = await check.run()
    assert Status.PASS == third.status
    assert 2 == started


async def test_background_refresh_keeps_probes_off_the_dependency() -> None:
    calls = 0

    async def slow() -> Result:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return Result(observed_value=calls)

    reg = HealthRegistry()
    reg.add(Check("dep", slow, ttl=30.0, refresh=0.01, timeout=0.8))
    await reg.start()
    try:
        end = time.monotonic() + 5
        while calls < 2 and time.monotonic() < end:
            await asyncio.sleep(0.005)
        assert calls >= 2  # refreshed without any probe; the second run is in flight now
        t0 = time.perf_counter()
        report = await reg.evaluate()
        assert time.perf_counter() - t0 < 0.15  # the cache answered; no wait for the 0.3 s run
        assert (Status.PASS, 1) == (report.status, report.entries[0].report.observed_value)
    finally:
        await reg.stop()
    stopped_at = calls
    await asyncio.sleep(0.1)
    assert stopped_at == calls


# --- what is shown --------------------------------------------------------------------------------

SECRET = "postgresql://app:hunter2@db.internal:5432/payments"


async def test_exception_text_is_never_rendered_by_default() -> None:
    def broken() -> None:
        raise ConnectionError(f"could not connect to {SECRET}")

    reg = HealthRegistry()
    reg.add(Check("db", broken, measurement="connections", in_thread=False))
    status, body = await reg.respond()
    text = body.decode()
    assert 503 == status
    assert "hunter2" not in text
    assert "db.internal" not in text
    assert "postgresql" not in text
    doc = json.loads(text)
    assert "check raised ConnectionError" == doc["checks"]["db:connections"][0]["output"]
    assert "failing: db:connections" == doc["output"]
    report = await reg.evaluate()
    assert isinstance(report.entries[0].report.error, ConnectionError)  # kept for logs


async def test_exception_text_is_rendered_when_configured() -> None:
    def broken() -> None:
        raise ConnectionError("no route to db.internal")

    reg = HealthRegistry(expose_errors=True)
    reg.add(Check("db", broken, in_thread=False))
    _, body = await reg.respond()
    out = json.loads(body)["checks"]["db"][0]["output"]
    assert "check raised ConnectionError: ConnectionError: no route to db.internal" == out


async def test_a_check_returning_garbage_fails_clearly() -> None:
    reg = HealthRegistry()
    reg.add(Check("dep", lambda: 42, in_thread=False))  # type: ignore[arg-type, return-value]
    report = await reg.evaluate()
    assert Status.FAIL == report.status
    assert "check returned int, not a Result" == report.entries[0].report.output


@pytest.mark.parametrize("how", ["constructed", "forced"])
async def test_an_invalid_status_is_a_failure_cached_for_the_ttl(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``Result(status="ok")`` is not a status: the run fails like any broken check, its report is
    cached for the TTL (one call per TTL, not one per probe), and no task error is left for the
    event loop to log."""
    clock = FakeClock()
    calls = 0

    def fn() -> Result:
        nonlocal calls
        calls += 1
        if how == "constructed":
            return Result(status="ok")  # type: ignore[arg-type]
        out = Result()
        object.__setattr__(out, "status", "ok")  # past the validation: the run still copes
        return out

    check = Check("dep", fn, ttl=5.0, in_thread=False, clock=clock)
    reg = HealthRegistry(clock=clock)
    reg.add(check)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(10):
            assert Status.FAIL == (await reg.evaluate()).status
        assert 1 == calls
        clock.advance(5.0)
        assert Status.FAIL == (await reg.evaluate()).status
        assert 2 == calls
        await asyncio.sleep(0)
        gc.collect()
    assert [] == [r.getMessage() for r in caplog.records]
    report = check.last
    assert report is not None
    expected = {
        "constructed": "check raised ConfigError",
        "forced": "check returned a Result with an invalid status",
    }[how]
    assert expected == report.output


def test_result_accepts_status_strings_and_refuses_others() -> None:
    assert Status.WARN is Result("warn").status  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as e:
        Result(status="ok")  # type: ignore[arg-type]
    assert "status" == e.value.parameter


async def test_draining_fails_readiness_only() -> None:
    reg = HealthRegistry()
    reg.add(const("db", Status.PASS))
    reg.add(const("loop", Status.PASS, groups=["liveness"]))
    reg.set_draining(True)
    ready = await reg.evaluate("readiness")
    live = await reg.evaluate("liveness")
    assert Status.FAIL == ready.status
    assert Status.PASS == live.status
    doc = reg.to_json(ready)
    assert "fail" == doc["checks"]["server:draining"][0]["status"]
    assert doc["checks"]["server:draining"][0]["observedValue"] is True
    reg.set_draining(False)
    assert Status.PASS == (await reg.evaluate("readiness")).status


async def test_status_changes_are_events(captured_events: list[Event]) -> None:
    state = {"status": Status.PASS}

    def fn() -> Result:
        return Result(state["status"])

    clock = FakeClock()
    reg = HealthRegistry(name="svc-health", clock=clock)
    reg.add(Check("dep", fn, ttl=1.0, in_thread=False, clock=clock))
    await reg.evaluate()
    clock.advance(2)
    await reg.evaluate()  # same status: no event
    state["status"] = Status.FAIL
    clock.advance(2)
    await reg.evaluate()
    changes = [e for e in captured_events if isinstance(e, CheckStatusChanged)]
    assert [(None, "pass"), ("pass", "fail")] == [(e.previous, e.status) for e in changes]
    assert "buttress_health_status_changed" == changes[0].name
    assert ("svc-health", "dep") == (changes[0].pipeline, changes[0].policy)


# --- bad input ------------------------------------------------------------------------------------


def test_unknown_group_is_refused_with_a_suggestion() -> None:
    reg = HealthRegistry()
    with pytest.raises(ConfigError) as e:
        reg.add(const("db", Status.PASS, groups=["redyness"]))
    assert "groups" == e.value.parameter
    assert "did you mean 'readiness'?" in str(e.value)
    assert "add_group" in str(e.value)


def test_check_timeout_over_the_probe_timeout_is_refused() -> None:
    reg = HealthRegistry(probe_timeouts={"readiness": 1.0})
    with pytest.raises(ConfigError) as e:
        reg.add(const("db", Status.PASS, timeout=2.5))
    assert "timeout" == e.value.parameter
    assert 2.5 == e.value.value
    assert "'readiness' probe timeout of 1s" in str(e.value)


def test_check_without_timeout_gets_a_share_of_the_smallest_probe_timeout() -> None:
    reg = HealthRegistry(probe_timeouts={"readiness": 2.0, "liveness": 0.5})
    check = reg.add(const("db", Status.PASS, groups=["readiness", "liveness"]))
    assert 0.4 == pytest.approx(check.timeout)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"name": "db:x"}, "name"),
        ({"name": ""}, "name"),
        ({"measurement": "a:b"}, "measurement"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"timeout": 0}, "timeout"),
        ({"refresh": 0}, "refresh"),
        ({"groups": "readiness"}, "groups"),
        ({"groups": []}, "groups"),
        ({"component_type": ""}, "component_type"),
        ({"fn": 3}, "fn"),
    ],
)
def test_bad_check_parameters_name_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    args: dict[str, object] = {"name": "db", "fn": lambda: None, **kwargs}
    with pytest.raises(ConfigError) as e:
        Check(**args)  # type: ignore[arg-type]
    assert parameter == e.value.parameter


def test_bad_registry_input() -> None:
    with pytest.raises(ConfigError) as e:
        HealthRegistry(probe_timeouts={"readyness": 1.0})
    assert "probe_timeouts" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        HealthRegistry(probe_timeouts={"readiness": 0})
    assert "probe_timeouts" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        HealthRegistry(drain_groups=["ready"])
    assert "drain_groups" == e.value.parameter
    reg = HealthRegistry()
    with pytest.raises(ConfigError) as e:
        reg.add_group("readiness")
    assert "name" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        reg.add_group("*")
    assert "name" == e.value.parameter
    reg.add(const("db", Status.PASS))
    with pytest.raises(ConfigError) as e:
        reg.add(const("db", Status.PASS))
    assert "a check with this name:measurement exists" in str(e.value)
    with pytest.raises(ConfigError) as e:
        HealthApp(reg, paths={"/ready": "redy"})
    assert "paths" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        HealthApp(reg, paths={"ready": "readiness"})
    assert "each path must start with '/'" in str(e.value)


def test_decorator_registers_a_check() -> None:
    reg = HealthRegistry()

    @reg.check("cache", measurement="hits", critical=False, groups=["readiness"])
    async def cache() -> Result:
        return Result(observed_value=3)

    (check,) = reg.checks("readiness")
    assert "cache:hits" == check.key
    assert check.critical is False
    assert 0.8 == pytest.approx(check.timeout)
    report = asyncio.run(reg.evaluate())
    assert 3 == report.entries[0].report.observed_value


async def test_rendered_body_is_reused_until_something_changes() -> None:
    clock = FakeClock()
    state = {"status": Status.PASS}

    def fn() -> Result:
        return Result(state["status"])

    reg = HealthRegistry(clock=clock)
    reg.add(Check("dep", fn, ttl=1.0, in_thread=False, clock=clock))
    s1, b1 = await reg.respond()
    s2, b2 = await reg.respond()
    assert (200, 200) == (s1, s2)
    assert b1 is b2  # cached checks: the body is not rendered again
    reg.set_draining(True)
    s3, b3 = await reg.respond()
    assert 503 == s3
    assert "server:draining" in json.loads(b3)["checks"]
    reg.set_draining(False)
    s4, b4 = await reg.respond()
    assert (200, b1) == (s4, b4)
    state["status"] = Status.FAIL
    s5, _ = await reg.respond()
    assert 200 == s5  # still the cached pass
    clock.advance(1.0)
    s6, b6 = await reg.respond()
    assert 503 == s6
    assert "fail" == json.loads(b6)["status"]


def test_a_run_abandoned_by_a_closed_loop_does_not_block_later_runs() -> None:
    calls = 0

    async def dep() -> Result:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05 if calls > 1 else 30)
        return Result(observed_value=calls)

    check = Check("dep", dep, ttl=0.0, timeout=60.0)
    loop = asyncio.new_event_loop()
    waiter = loop.create_task(check.run())
    loop.run_until_complete(asyncio.sleep(0.01))  # the first run is in flight...
    stranded = [waiter, check._task]
    loop.stop()
    loop.close()  # ...and its loop goes away without cancelling it
    for task in stranded:  # expected to be stranded: no "destroyed but pending" log at GC
        task._log_destroy_pending = False  # type: ignore[union-attr]
    del waiter, stranded
    report = asyncio.run(asyncio.wait_for(check.run(), 5))
    assert (Status.PASS, 2) == (report.status, report.observed_value)
