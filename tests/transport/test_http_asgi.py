"""ResilienceMiddleware behind a real uvicorn server: deadline header, per-route bulkheads and
shedding, SLI recording, and the transport's deadline arriving on the server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import buttress
from buttress import Bulkhead, LoadShedder
from buttress.errors import ConfigError
from buttress.events import Emitter, Event
from buttress.integrations.asgi import ResilienceMiddleware, RoutePolicy, slo_recorder
from buttress.integrations.http import DEADLINE_HEADER, ResilientTransport
from buttress.policies.bulkhead import BulkheadRejected
from buttress.policies.shed import Shed
from buttress.slo import SLIRecorder, SLIStore
from conftest import ThreadServer


class App:
    """Routes: /remaining (the deadline seen inside), /hold (waits for the gate), /sleep?s=,
    /boom (500), anything else 200."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = 0
        self.finished: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        status, body = 200, b"ok"
        if path == "/remaining":
            left = buttress.remaining()
            body = b"none" if left is None else f"{left:.3f}".encode()
        elif path.startswith(("/hold", "/orders/hold")):
            self.entered += 1
            while not self.gate.is_set():
                await asyncio.sleep(0.005)
        elif path == "/sleep":
            await asyncio.sleep(float(scope["query_string"].decode().split("=")[1]))
            self.finished.append(path)
        elif path == "/boom":
            status = 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})


def wait_for(cond: Any, timeout: float = 5.0) -> None:
    """The middleware records after the response is sent, so the client can see the response a
    moment before the record exists: poll."""
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.005)
    assert cond()


@pytest.fixture
def served() -> Iterator[Any]:
    servers: list[ThreadServer] = []

    def serve(**kw: Any) -> tuple[App, ThreadServer, list[tuple[str, bool, float]], list[Event]]:
        app = App()
        records: list[tuple[str, bool, float]] = []
        events: list[Event] = []
        em = Emitter("asgi-test")
        em.add_listener(events.append)
        kw.setdefault("recorder", lambda r, g, lat: records.append((r, g, lat)))
        mw = ResilienceMiddleware(app, emitter=em, **kw)
        s = ThreadServer(mw).start()
        servers.append(s)
        return app, s, records, events

    yield serve
    for s in servers:
        s.stop()


def test_reads_the_deadline_header(served: Any) -> None:
    _, s, _, _ = served()
    assert "none" == httpx.get(s.url + "/remaining").text
    left = float(httpx.get(s.url + "/remaining", headers={DEADLINE_HEADER: "1500"}).text)
    assert 1.3 < left <= 1.5
    # garbage and negative values are ignored
    assert "none" == httpx.get(s.url + "/remaining", headers={DEADLINE_HEADER: "soon"}).text
    assert "none" == httpx.get(s.url + "/remaining", headers={DEADLINE_HEADER: "-5"}).text


def test_max_deadline_caps_the_callers_wish(served: Any) -> None:
    _, s, _, _ = served(max_deadline=0.5)
    left = float(httpx.get(s.url + "/remaining", headers={DEADLINE_HEADER: "60000"}).text)
    assert 0.3 < left <= 0.5


def test_deadline_cancels_the_work_and_answers_504(served: Any) -> None:
    app, s, records, _ = served()
    t0 = time.monotonic()
    r = httpx.get(s.url + "/sleep?s=3", headers={DEADLINE_HEADER: "200"})
    assert 504 == r.status_code
    assert time.monotonic() - t0 < 1.0
    assert [] == app.finished  # the work was cancelled, not finished in the background
    r = httpx.get(s.url + "/sleep?s=3", headers={DEADLINE_HEADER: "0"})
    assert 504 == r.status_code
    wait_for(lambda: len(records) == 2)
    assert [("*", False), ("*", False)] == [(route, good) for route, good, _ in records]


def test_transport_deadline_reaches_the_server(served: Any) -> None:
    _, s, _, _ = served()
    with httpx.Client(transport=ResilientTransport([s.url])) as client, buttress.deadline(2.0):
        left = float(client.get("http://svc/remaining").text)
    assert 1.5 < left <= 2.0


def test_bulkhead_per_route(served: Any) -> None:
    orders = Bulkhead(1, max_queue=0)
    app, s, records, events = served(routes={"/orders": RoutePolicy(bulkhead=orders)})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = pool.submit(httpx.get, s.url + "/orders/hold", timeout=10)
        end = time.monotonic() + 5
        while app.entered < 1 and time.monotonic() < end:
            time.sleep(0.005)
        refused = httpx.get(s.url + "/orders/1")
        elsewhere = httpx.get(s.url + "/ordersx")  # not the /orders route
        app.gate.set()
        assert 200 == held.result().status_code
    assert 503 == refused.status_code
    assert "1" == refused.headers["retry-after"]
    assert 200 == elsewhere.status_code
    assert ["full"] == [e.reason for e in events if isinstance(e, BulkheadRejected)]
    wait_for(lambda: len(records) == 3)
    routes = sorted((r, g) for r, g, _ in records)
    assert [("*", True), ("/orders", False), ("/orders", True)] == routes


def test_priority_shedding_per_route(served: Any) -> None:
    orders = Bulkhead(2, max_queue=0)
    shedder = LoadShedder(orders)  # sheddable admitted below 50% of the bulkhead: 1 of 2
    app, s, records, events = served(
        routes={"/orders": RoutePolicy(bulkhead=orders, shedder=shedder)}
    )
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = pool.submit(httpx.get, s.url + "/orders/hold", timeout=10)
        end = time.monotonic() + 5
        while app.entered < 1 and time.monotonic() < end:
            time.sleep(0.005)
        low = httpx.get(s.url + "/orders/2", headers={"X-Buttress-Criticality": "sheddable"})
        critical = httpx.get(s.url + "/orders/3", headers={"X-Buttress-Criticality": "critical"})
        app.gate.set()
        held.result()
    assert (503, 200) == (low.status_code, critical.status_code)
    assert ["sheddable"] == [e.criticality for e in events if isinstance(e, Shed)]
    wait_for(lambda: len(records) == 3)
    assert 2 == sum(1 for r, g, _ in records if r == "/orders" and g)


def test_sli_records_latency_and_errors(served: Any) -> None:
    _, s, records, _ = served(routes={"/boom": RoutePolicy()})
    httpx.get(s.url + "/sleep?s=0.05")
    httpx.get(s.url + "/boom")
    wait_for(lambda: len(records) == 2)
    (r1, g1, l1), (r2, g2, _) = records
    assert ("*", True, "/boom", False) == (r1, g1, r2, g2)
    assert 0.05 <= l1 < 1.0


def test_slo_recorder_integration(served: Any, tmp_path: Path) -> None:
    store = SLIStore(tmp_path / "sli.db")
    recorder = SLIRecorder(store, flush_every=3600)
    _, s, _, _ = served(
        routes={"/boom": RoutePolicy()},
        recorder=slo_recorder(recorder, {"/boom": "boom-availability", "*": "rest"}),
    )
    for _ in range(3):
        httpx.get(s.url + "/boom")
    httpx.get(s.url + "/fine")

    def flushed(names: set[str]) -> bool:
        recorder.flush()
        return names <= set(store.slis())

    wait_for(lambda: flushed({"boom-availability", "rest"}))
    assert ["boom-availability", "rest"] == sorted(store.slis())
    # an SLIRecorder given directly records each route as its own SLI
    _, s2, _, _ = served(recorder=recorder)
    httpx.get(s2.url + "/x")
    wait_for(lambda: flushed({"*"}))
    store.close()


def test_a_failing_recorder_never_breaks_requests(served: Any) -> None:
    def broken(route: str, good: bool, latency: float) -> None:
        raise RuntimeError("recorder down")

    _, s, _, _ = served(recorder=broken)
    assert 200 == httpx.get(s.url + "/x").status_code


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"routes": {"orders": RoutePolicy()}}, "routes['orders']"),
        ({"routes": {"/orders": Bulkhead(1)}}, "routes['/orders']"),
        ({"max_deadline": 0}, "max_deadline"),
        ({"deadline_header": ""}, "deadline_header"),
        ({"retry_after": -1}, "retry_after"),
        ({"recorder": 42}, "recorder"),
        ({"default": "yes"}, "default"),
    ],
)
def test_bad_middleware_settings(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as e:
        ResilienceMiddleware(App(), **kwargs)
    assert parameter == e.value.parameter


def test_bad_route_policy() -> None:
    with pytest.raises(ConfigError) as e:
        RoutePolicy(bulkhead=LoadShedder(3))  # type: ignore[arg-type]
    assert "bulkhead" == e.value.parameter
