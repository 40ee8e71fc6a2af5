"""buttress.integrations.http transports (sync and async, on the same cases) against real uvicorn
servers."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import buttress
from buttress.errors import ConfigError, DeadlineExceeded
from buttress.events import Event
from buttress.failover import (
    EndpointEjected,
    EndpointPool,
    EndpointReturned,
    HealthCheck,
    HealthCheckDriver,
    OutlierDetection,
    PanicChanged,
)
from buttress.integrations.http import (
    DEADLINE_HEADER,
    AsyncResilientTransport,
    ResilientTransport,
    parse_retry_after,
)
from buttress.policies.backoff import Backoff
from buttress.testing import FakeClock

FAST = Backoff.constant(0.0)

Call = Callable[..., httpx.Response]


class Client:
    """One interface over ResilientTransport + httpx.Client and AsyncResilientTransport +
    httpx.AsyncClient (driven on a private event loop)."""

    def __init__(self, mode: str, endpoints: Any, **kw: Any) -> None:
        self.mode = mode
        kw.setdefault("backoff", FAST)
        if mode == "sync":
            self.transport: Any = ResilientTransport(endpoints, **kw)
            self.client: Any = httpx.Client(transport=self.transport, base_url="http://svc")
        else:
            self.loop = asyncio.new_event_loop()
            self.transport = AsyncResilientTransport(endpoints, **kw)
            self.client = httpx.AsyncClient(transport=self.transport, base_url="http://svc")

    @property
    def pool(self) -> EndpointPool:
        pool: EndpointPool = self.transport.pool
        return pool

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if self.mode == "sync":
            r: httpx.Response = self.client.request(method, path, **kw)
            return r
        return self.loop.run_until_complete(self.client.request(method, path, **kw))

    def close(self) -> None:
        if self.mode == "sync":
            self.client.close()
        else:
            self.loop.run_until_complete(self.client.aclose())
            self.loop.close()


@pytest.fixture(params=["sync", "async"])
def client_factory(request: pytest.FixtureRequest) -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(endpoints: Any, **kw: Any) -> Client:
        c = Client(request.param, endpoints, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_spreads_over_endpoints_and_rewrites_the_url(backends: Any, client_factory: Any) -> None:
    (b0, s0), (_b1, s1) = backends(2)
    c = client_factory([s0.url, s1.url + "/"])
    bodies = {c.request("GET", "/items/1?x=2").text for _ in range(40)}
    assert {"b0", "b1"} == bodies
    method, path, headers = b0.seen[0]
    assert ("GET", "/items/1") == (method, path)
    assert f"127.0.0.1:{s0.port}" == headers["host"]


def test_base_paths_and_preserve_host(backends: Any, client_factory: Any) -> None:
    ((b, s),) = backends(1)
    c = client_factory([s.url + "/api/"])
    assert 200 == c.request("GET", "/items", params={"q": "1"}).status_code
    assert ("GET", "/api/items") == b.seen[-1][:2]
    c2 = client_factory([s.url], preserve_host=True)
    c2.request("GET", "/h")
    assert "svc" == b.seen[-1][2]["host"]


def test_retries_idempotent_methods_only(backends: Any, client_factory: Any) -> None:
    ((b, s),) = backends(1)
    c = client_factory([s.url])
    b.fail_next = 1
    r = c.request("GET", "/a")
    assert (200, 2) == (r.status_code, b.requests("/a"))
    b.fail_next = 1
    r = c.request("PUT", "/p", content=b"x")
    assert (200, 2) == (r.status_code, b.requests("/p"))
    b.fail_next = 1
    r = c.request("POST", "/b", content=b"payload")
    assert (503, 1) == (r.status_code, b.requests("/b"))
    b.fail_next = 5
    r = c.request("GET", "/c")
    assert (503, 3) == (r.status_code, b.requests("/c"))  # 3 attempts, then the last response
    assert "b0" == r.text  # its body was kept


def test_429_is_a_failure_and_custom_statuses(backends: Any, client_factory: Any) -> None:
    ((b, s),) = backends(1)
    c = client_factory([s.url])
    b.fail_next, b.fail_status = 1, 429
    assert 200 == c.request("GET", "/x").status_code
    assert 2 == b.requests("/x")
    c2 = client_factory([s.url], failure_statuses={500}, retry_methods={"POST"})
    b.fail_next, b.fail_status = 1, 500
    assert 200 == c2.request("POST", "/y", content=b"1").status_code
    assert 2 == b.requests("/y")


def test_connection_failures_are_retried_for_any_method(
    backends: Any, client_factory: Any, dead_url: str
) -> None:
    ((b, s),) = backends(1)
    dead = dead_url
    c = client_factory([{"url": dead}, {"url": s.url, "priority": 1}])
    r = c.request("POST", "/order", content=b"{}")
    assert (200, "b0") == (r.status_code, r.text)
    assert 1 == b.requests("/order")


def test_honours_retry_after(backends: Any, client_factory: Any) -> None:
    ((b, s),) = backends(1)
    clock = FakeClock()
    c = client_factory([s.url], clock=clock)
    b.fail_next, b.retry_after = 1, "2"
    assert 200 == c.request("GET", "/r").status_code
    assert [2.0] == clock.sleeps
    # An HTTP date 3 s after the clock's wall time.
    b.fail_next = 1
    b.retry_after = email.utils.formatdate(clock.wall() + 3, usegmt=True)
    assert 200 == c.request("GET", "/r2").status_code
    assert 3.0 == pytest.approx(clock.sleeps[-1], abs=1.0)
    # Longer than max_retry_after: not waited for, the 503 comes back at once.
    b.fail_next, b.retry_after = 1, "3600"
    r = c.request("GET", "/r3")
    assert (503, 1) == (r.status_code, b.requests("/r3"))


def test_parse_retry_after() -> None:
    assert 7.0 == parse_retry_after("7", 0.0)
    assert parse_retry_after(None, 0.0) is None
    assert parse_retry_after("soon", 0.0) is None
    assert 10.0 == parse_retry_after(email.utils.formatdate(1_000_010, usegmt=True), 1_000_000)
    assert 0.0 == parse_retry_after(email.utils.formatdate(1_000_000, usegmt=True), 1_000_010)


def test_sends_the_remaining_deadline(backends: Any, client_factory: Any) -> None:
    ((b, s),) = backends(1)
    c = client_factory([s.url])
    c.request("GET", "/none")
    assert DEADLINE_HEADER.lower() not in b.seen[-1][2]
    with buttress.deadline(2.0):
        c.request("GET", "/with")
    sent = int(b.seen[-1][2][DEADLINE_HEADER.lower()])
    assert 1500 < sent <= 2000


def test_deadline_bounds_the_socket_timeouts(backends: Any, client_factory: Any) -> None:
    ((_b, s),) = backends(1)
    c = client_factory([s.url])
    t0 = time.monotonic()
    with pytest.raises((httpx.TimeoutException, DeadlineExceeded)), buttress.deadline(0.2):
        c.request("GET", "/slow", params={"ms": "700"})
    assert time.monotonic() - t0 < 0.6


def test_outlier_ejection_and_return_with_real_servers(backends: Any, client_factory: Any) -> None:
    (bad, s0), (_good, s1) = backends(2)
    od = OutlierDetection(consecutive_5xx=3, base_ejection_time=0.5, interval=60)
    pool = EndpointPool([s0.url, s1.url], outlier_detection=od)
    seen: list[Event] = []
    pool.emitter.add_listener(seen.append)
    c = client_factory(pool)
    bad.mode = 500
    statuses = [c.request("GET", "/w").status_code for _ in range(40)]
    assert [200] * 40 == statuses  # every 500 was retried on the good endpoint
    ejections = [e for e in seen if isinstance(e, EndpointEjected)]
    assert ejections
    assert {(s0.url, "consecutive_5xx")} == {(e.endpoint, e.reason) for e in ejections}
    # Three 500s per ejection, none while ejected (on a slow machine the 0.5 s may run out and
    # the endpoint be ejected again, for longer: 1 s, then 1.5 s).
    assert 3 * len(ejections) == bad.requests("/w")
    assert [0.5, 1.0, 1.5][: len(ejections)] == [e.duration for e in ejections]
    bad.mode = "ok"
    end = time.monotonic() + 5
    while time.monotonic() < end and bad.requests("/v") == 0:
        assert "200" == str(c.request("GET", "/v").status_code)
        time.sleep(0.01)
    assert bad.requests("/v") > 0  # it came back
    assert s0.url in [e.endpoint for e in seen if isinstance(e, EndpointReturned)]


def test_a_slow_endpoint_is_ejected_by_attempt_timeouts(backends: Any, client_factory: Any) -> None:
    """A slow-but-alive endpoint: every attempt to it hits the attempt timeout.  Timeouts count as
    gateway failures (as Envoy's 504), so it is ejected after ``consecutive_5xx`` of them; every
    request is answered by the fast endpoint (GET: the timed-out attempt is retried there)."""
    (slow, s0), (fast, s1) = backends(2)
    od = OutlierDetection(consecutive_5xx=3, base_ejection_time=30, interval=60)
    pool = EndpointPool([s0.url, s1.url], outlier_detection=od)
    seen: list[Event] = []
    pool.emitter.add_listener(seen.append)
    c = client_factory(pool, policies=[buttress.Timeout(0.15, scope="attempt")])
    assert {"b0", "b1"} == {c.request("GET", "/warm").text for _ in range(10)}
    slow.delay = 0.6
    t0 = time.monotonic()
    bodies = [c.request("GET", "/w").text for _ in range(30)]
    assert ["b1"] * 30 == bodies
    ejections = [e for e in seen if isinstance(e, EndpointEjected)]
    assert [(s0.url, "consecutive_5xx")] == [(e.endpoint, e.reason) for e in ejections]
    assert 3 == slow.requests("/w")  # three timed-out attempts, then nothing while ejected
    assert 30 == fast.requests("/w")
    assert not pool.is_healthy(pool.endpoints[0])
    # Three timeouts of 0.15 s, the rest fast: the requests never waited for the slow endpoint.
    assert time.monotonic() - t0 < 3 * 0.6


async def test_a_request_the_caller_cancels_is_not_held_against_the_endpoint(backends: Any) -> None:
    """Cancelled before any deadline (the caller gave up): nothing is learnt about the endpoint,
    so even ``consecutive_5xx=1`` ejects nothing; the same request cut by a Timeout is counted."""
    ((b, s),) = backends(1)
    b.delay = 0.5
    pool = EndpointPool([s.url], outlier_detection=OutlierDetection(consecutive_5xx=1))
    seen: list[Event] = []
    pool.emitter.add_listener(seen.append)
    transport = AsyncResilientTransport(pool, attempts=1)
    async with httpx.AsyncClient(transport=transport) as client:
        task = asyncio.ensure_future(client.get("http://svc/c"))
        while b.requests("/c") == 0:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [] == [e for e in seen if isinstance(e, EndpointEjected)]
        assert pool.is_healthy(pool.endpoints[0])
        outer = buttress.Pipeline([buttress.Timeout(0.05)], name="outer")
        with pytest.raises(DeadlineExceeded):
            await outer.call_async(client.get, "http://svc/t")
    assert [s.url] == [e.endpoint for e in seen if isinstance(e, EndpointEjected)]


async def test_an_attempt_timed_out_while_reading_a_failure_body_is_released(serve: Any) -> None:
    """A 503 whose body never finishes: the attempt timeout cancels the body read.  The endpoint is
    released (no request left counted in flight) and the timeout counts against it."""

    async def stalls(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"9")]}
        )
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.sleep(1.0)
        await send({"type": "http.response.body", "body": b"rest!"})

    server = serve(stalls)
    pool = EndpointPool([server.url], outlier_detection=OutlierDetection(consecutive_5xx=1))
    transport = AsyncResilientTransport(
        pool, attempts=1, policies=[buttress.Timeout(0.1, scope="attempt")]
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(buttress.AttemptTimeout):
            await client.get("http://svc/")
    (status,) = pool.snapshot().endpoints
    assert (0, True, 1) == (status.active, status.ejected, status.ejections)


def _stalled_body_app(name: bytes, stall: float, *, gzipped: bool = False) -> Any:
    """Answers 200 with headers and half the body at once, the rest after ``stall`` seconds
    (gzip-encoded with ``gzipped``)."""
    body = gzip.compress(name) if gzipped else name
    half = len(body) // 2
    headers = [(b"content-length", str(len(body)).encode())]
    if gzipped:
        headers.append((b"content-encoding", b"gzip"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[:half], "more_body": True})
        if stall:
            await asyncio.sleep(stall)
        await send({"type": "http.response.body", "body": body[half:]})

    return app


def test_read_body_puts_a_stalled_body_inside_the_attempt(serve: Any, client_factory: Any) -> None:
    """A body that stalls after its headers: with ``read_body`` the read timeout hits inside the
    attempt, which is retried on the other endpoint (and counted against the stalled one); without
    it the transport has returned at the headers and the caller meets the timeout itself."""
    stalled = serve(_stalled_body_app(b"stalled-answer", 2.0))
    good = serve(_stalled_body_app(b"good-answer", 0.0))
    timeout = httpx.Timeout(5.0, read=0.2)
    for read_body in (True, False):
        pool = EndpointPool(
            [{"url": stalled.url}, {"url": good.url, "priority": 1}],  # the stalled one first
            outlier_detection=OutlierDetection(consecutive_5xx=1),
        )
        c = client_factory(pool, read_body=read_body)
        if read_body:
            r = c.request("GET", "/", timeout=timeout)
            assert (200, "good-answer") == (r.status_code, r.text)
            assert r.elapsed.total_seconds() >= 0.2  # timed like a streamed answer
            first, second = pool.snapshot().endpoints
            assert (0, True) == (first.active, first.ejected)  # the stall counted against it
            assert (0, False) == (second.active, second.ejected)
        else:
            with pytest.raises(httpx.ReadTimeout):
                c.request("GET", "/", timeout=timeout)


def test_read_body_keeps_the_encoding_for_the_client(serve: Any, client_factory: Any) -> None:
    """The body read inside the attempt is kept as sent (gzip): the client decodes it once."""
    server = serve(_stalled_body_app(b"compressed answer " * 20, 0.0, gzipped=True))
    c = client_factory([server.url], read_body=True)
    r = c.request("GET", "/")
    assert "compressed answer " * 20 == r.text
    assert "gzip" == r.headers["content-encoding"]
    (status,) = c.pool.snapshot().endpoints
    assert 0 == status.active  # released when the body was in


def test_panic_when_most_endpoints_fail(backends: Any) -> None:
    servers = backends(4)
    for b, _ in servers[:3]:
        b.mode = 503
    pool = EndpointPool(
        [s.url for _, s in servers],
        health_check=HealthCheck(interval=1.0, timeout=0.5),
        outlier_detection=None,
    )
    seen: list[Event] = []
    pool.emitter.add_listener(seen.append)
    driver = HealthCheckDriver(pool)
    results = sorted(r for _, r in driver.check_once())
    assert ["fail", "fail", "fail", "pass"] == results
    assert (True,) == pool.load.panic
    assert [(True,)] == [e.panic for e in seen if isinstance(e, PanicChanged)]
    with httpx.Client(transport=ResilientTransport(pool, attempts=1)) as client:
        for _ in range(200):
            client.get("http://svc/p")
    # In panic every endpoint takes traffic, the unhealthy ones included.
    assert all(b.requests("/p") > 10 for b, _ in servers)
    for b, _ in servers:
        b.mode = "ok"
    driver.check_once()
    driver.check_once()  # healthy_threshold 2
    assert (False,) == pool.load.panic


async def test_async_health_driver_probes(backends: Any, dead_url: str) -> None:
    (_b0, s0), (b1, s1) = backends(2)
    b1.mode = 503
    dead = dead_url
    pool = EndpointPool([s0.url, s1.url, dead], health_check=HealthCheck(timeout=0.5))
    results = await HealthCheckDriver(pool).check_once_async()
    assert ["pass", "fail", "error"] == [r for _, r in results]
    tcp = HealthCheck(kind="tcp", timeout=0.5)
    results = await HealthCheckDriver(pool, tcp).check_once_async()
    assert ["pass", "pass", "error"] == [r for _, r in results]
    assert ["pass", "pass", "error"] == [r for _, r in HealthCheckDriver(pool, tcp).check_once()]


def test_a_primary_killed_mid_load_fails_over(processes: Any) -> None:
    primary = processes("primary")
    secondary = processes("secondary")
    interval = 0.3
    transport = ResilientTransport(
        [{"url": primary.url}, {"url": secondary.url, "priority": 1}],
        health_check=HealthCheck(interval=interval, timeout=0.2, unhealthy_threshold=1),
        backoff=FAST,
    )
    log: list[tuple[float, float, str]] = []
    with httpx.Client(transport=transport) as client:
        end = time.monotonic() + 10
        killed_at = 0.0
        while time.monotonic() < end:
            t = time.monotonic()
            try:
                body = client.get("http://svc/").text
            except httpx.HTTPError as e:
                body = f"error {type(e).__name__}"
            log.append((t, time.monotonic(), body))
            if not killed_at and len(log) == 50:
                primary.kill()
                killed_at = time.monotonic()
            if killed_at and time.monotonic() - killed_at > 3 * interval:
                break
    _assert_failed_over(log, killed_at, interval, transport.pool)


def _assert_failed_over(
    log: list[tuple[float, float, str]], killed_at: float, interval: float, pool: EndpointPool
) -> None:
    assert killed_at
    assert [] == [r for _, _, r in log if r.startswith("error")]  # no request failed at all
    started, answered = next((t0, t1) for t0, t1, r in log if r == "secondary")
    # Within one health-check interval plus one request: the request that switched began within
    # an interval of the kill (it is in fact the very next request, retried on the secondary).
    assert started - killed_at < interval
    assert answered - started < 1.0
    after = [r for t0, _, r in log if t0 >= started]
    assert {"secondary"} == set(after)  # nothing went back to the dead primary
    assert not pool.is_healthy(pool.endpoints[0])


async def test_async_transport_fails_over_when_the_primary_is_killed(processes: Any) -> None:
    """The asyncio twin of the test above: AsyncResilientTransport, its health checks in a task of
    the loop, the primary killed with SIGKILL mid-load."""
    primary = processes("primary")
    secondary = processes("secondary")
    interval = 0.3
    transport = AsyncResilientTransport(
        [{"url": primary.url}, {"url": secondary.url, "priority": 1}],
        health_check=HealthCheck(interval=interval, timeout=0.2, unhealthy_threshold=1),
        backoff=FAST,
    )
    log: list[tuple[float, float, str]] = []
    killed_at = 0.0
    async with httpx.AsyncClient(transport=transport) as client:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            t = time.monotonic()
            try:
                body = (await client.get("http://svc/")).text
            except httpx.HTTPError as e:
                body = f"error {type(e).__name__}"
            log.append((t, time.monotonic(), body))
            if not killed_at and len(log) == 50:
                primary.kill()
                killed_at = time.monotonic()
            if killed_at and time.monotonic() - killed_at > 3 * interval:
                break
    assert {"primary"} == {r for t0, _, r in log if t0 < killed_at}
    _assert_failed_over(log, killed_at, interval, transport.pool)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"endpoints": ["tcp://127.0.0.1:80"]}, "endpoints[0].url"),
        ({"endpoints": ["http//nohost"]}, "endpoints[0].url"),
        ({"endpoints": ["http://a"], "retry_methods": "GET"}, "retry_methods"),
        ({"endpoints": ["http://a"], "failure_statuses": [99]}, "failure_statuses"),
        ({"endpoints": ["http://a"], "max_retry_after": -1}, "max_retry_after"),
        ({"endpoints": ["http://a"], "deadline_header": ""}, "deadline_header"),
        ({"endpoints": ["http://a"], "attempts": 0}, "attempts"),
        ({"endpoints": ["http://a"], "policies": [object()]}, "policies[0]"),
        ({"endpoints": ["http://a"], "policies": [buttress.Retry()]}, "policies[0]"),
        ({"endpoints": ["http://a"], "transport": object()}, "transport"),
        ({"endpoints": ["http://a"], "read_body": "yes"}, "read_body"),
    ],
)
def test_bad_transport_settings(kwargs: dict[str, Any], parameter: str) -> None:
    endpoints = kwargs.pop("endpoints")
    for cls in (ResilientTransport, AsyncResilientTransport):
        with pytest.raises(ConfigError) as e:
            cls(endpoints, **kwargs)
        assert parameter == e.value.parameter


def test_health_checks_run_from_first_request_until_close(backends: Any) -> None:
    (b, s), (b1, s1) = backends(2)
    t = ResilientTransport([s.url, s1.url], health_check=HealthCheck(interval=0.1, timeout=0.1))
    assert t.driver is not None
    with httpx.Client(transport=t) as client:
        client.get("http://svc/")
        end = time.monotonic() + 5
        while b.requests("/healthz") < 2 and time.monotonic() < end:
            time.sleep(0.01)
        b1.mode = 503  # seen by the probes: unhealthy at once
        while t.pool.is_healthy(t.pool.endpoints[1]) and time.monotonic() < end:
            time.sleep(0.01)
        assert not t.pool.is_healthy(t.pool.endpoints[1])
    probes = b.requests("/healthz")
    time.sleep(0.3)
    assert probes == b.requests("/healthz")  # stopped by close()


async def test_async_health_checks_run_in_a_task_until_aclose(backends: Any) -> None:
    ((b, s),) = backends(1)
    t = AsyncResilientTransport([s.url], health_check=HealthCheck(interval=0.1, timeout=0.1))
    async with httpx.AsyncClient(transport=t) as client:
        await client.get("http://svc/")
        end = time.monotonic() + 5
        while b.requests("/healthz") < 2 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert b.requests("/healthz") >= 2
    probes = b.requests("/healthz")
    await asyncio.sleep(0.3)
    assert probes == b.requests("/healthz")
