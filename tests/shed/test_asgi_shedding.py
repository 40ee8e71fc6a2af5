"""The ASGI middleware behind a real uvicorn server on 127.0.0.1, driven by a real httpx client."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from _servers import UvicornThread
from buttress.errors import ConfigError
from buttress.events import Emitter, Event
from buttress.integrations import DEFAULT_HEADER, LoadSheddingMiddleware
from buttress.policies.shed import LoadShedder, Shed, current_criticality

HEADER = DEFAULT_HEADER

Server = UvicornThread


@pytest.fixture
def service() -> Iterator[tuple[Server, LoadShedder, threading.Event, list[Event], list[str]]]:
    gate = threading.Event()
    seen_classes: list[str] = []

    async def slow(request: Request) -> PlainTextResponse:
        while not gate.is_set():
            await asyncio.sleep(0.005)
        return PlainTextResponse("slow done")

    async def fast(request: Request) -> PlainTextResponse:
        c = current_criticality()
        seen_classes.append("none" if c is None else c.label)
        return PlainTextResponse("fast done")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow), Route("/fast", fast), Route("/health", health)])
    shedder = LoadShedder(4, retry_after=2.0, default="low")
    events: list[Event] = []
    emitter = Emitter("asgi-test")
    emitter.add_listener(events.append)
    wrapped = LoadSheddingMiddleware(app, shedder, exempt_paths=["/health"], emitter=emitter)
    with Server(wrapped) as server:
        try:
            yield server, shedder, gate, events, seen_classes
        finally:
            gate.set()


async def test_sheddable_gets_503_with_retry_after_while_critical_is_served(
    service: tuple[Server, LoadShedder, threading.Event, list[Event], list[str]],
) -> None:
    server, shedder, gate, events, seen_classes = service
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        # Load: two slow critical requests hold 2 of 4 places (utilisation 50%).
        slow = [
            asyncio.create_task(client.get("/slow", headers={HEADER: "critical"})) for _ in range(2)
        ]
        end = time.monotonic() + 5
        while shedder.inflight < 2:
            assert time.monotonic() < end, "the slow requests never arrived"
            await asyncio.sleep(0.005)

        shed = await client.get("/fast", headers={HEADER: "sheddable"})
        assert 503 == shed.status_code
        assert "2" == shed.headers["retry-after"]
        assert "shed: sheddable request at utilisation 2/4\n" == shed.text

        for cls in ("critical", "high", "low"):
            ok = await client.get("/fast", headers={HEADER: cls})
            assert 200 == ok.status_code, cls
            assert "fast done" == ok.text

        # A third slow request (critical) takes utilisation to 75%: low is shed now, high is not.
        slow.append(asyncio.create_task(client.get("/slow", headers={HEADER: "CRITICAL"})))
        while shedder.inflight < 3:
            assert time.monotonic() < end
            await asyncio.sleep(0.005)
        assert 503 == (await client.get("/fast", headers={HEADER: "low"})).status_code
        assert 503 == (await client.get("/fast")).status_code  # no header: the default, low
        assert 503 == (await client.get("/fast", headers={HEADER: "bogus"})).status_code
        assert 200 == (await client.get("/fast", headers={HEADER: "high"})).status_code
        assert 200 == (await client.get("/health")).status_code  # exempt, never shed

        gate.set()
        done = await asyncio.gather(*slow)
        assert [200, 200, 200] == [r.status_code for r in done]
        assert 0 == shedder.inflight
        assert 200 == (await client.get("/fast", headers={HEADER: "sheddable"})).status_code

    # The app ran with each served request's class in force (shed ones never reached it).
    assert ["critical", "high", "low", "high", "sheddable"] == seen_classes
    shed_events = [e for e in events if isinstance(e, Shed)]
    assert ["sheddable", "low", "low", "low"] == [e.criticality for e in shed_events]
    assert ("asgi-test", 2, 4) == (
        shed_events[0].pipeline,
        shed_events[0].inflight,
        shed_events[0].limit,
    )


async def test_non_http_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope["type"])

    mw = LoadSheddingMiddleware(app, LoadShedder(1))
    assert mw.shedder.try_acquire()  # full
    await mw({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert ["lifespan"] == calls


def test_bad_middleware_input_names_the_parameter() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    for kwargs, parameter in [
        ({"shedder": 5}, "shedder"),
        ({"header": " "}, "header"),
        ({"status": 200}, "status"),
        ({"default": "urgent"}, "default"),
    ]:
        with pytest.raises(ConfigError) as info:
            LoadSheddingMiddleware(app, **kwargs)
        assert parameter == info.value.parameter
    with pytest.raises(ConfigError):
        LoadSheddingMiddleware("app")  # type: ignore[arg-type]
