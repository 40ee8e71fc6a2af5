"""The ASGI app (mounted in Starlette), the WSGI app and the gRPC servicer, on real servers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import wsgiref.simple_server
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from buttress.health import (
    Check,
    HealthApp,
    HealthRegistry,
    HealthWSGIApp,
    Result,
    Status,
    breaker_check,
)
from buttress.health.grpc import HealthServicer, SyncHealthServicer, add_to_server
from buttress.policies.breaker import CircuitBreaker
from buttress.ports import free_port

from .servers import UvicornThread, assert_health_json


class Switch:
    """A check whose status the test sets."""

    def __init__(self, status: Status = Status.PASS) -> None:
        self.status = status
        self.calls = 0

    def __call__(self) -> Result:
        self.calls += 1
        return Result(self.status, 12.5, "ms", None if self.status is Status.PASS else "degraded")


def registry_with(db: Switch, breaker: CircuitBreaker) -> HealthRegistry:
    reg = HealthRegistry(service_id="payments", version="1", release_id="1.2.3")
    reg.add(
        Check(
            "db",
            db,
            measurement="responseTime",
            component_type="datastore",
            component_id="primary",
            ttl=0.0,
            in_thread=False,
        )
    )
    reg.add(breaker_check(breaker, ttl=0.0))
    reg.add(Check("loop", lambda: None, groups=["liveness"], in_thread=False))
    return reg


async def test_mounted_in_starlette_on_uvicorn_follows_the_draft() -> None:
    db = Switch()
    breaker = CircuitBreaker(name="payments-api")
    reg = registry_with(db, breaker)

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(
        routes=[
            Route("/", home),
            Mount(
                "/health",
                app=HealthApp(reg, paths={"/live": "liveness", "/ready": "readiness", "/": "*"}),
            ),
        ]
    )
    with UvicornThread(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert "home" == (await client.get("/")).text

            r = await client.get("/health/ready")
            doc = assert_health_json(r.status_code, r.headers, r.content)
            assert "pass" == doc["status"]
            assert ("payments", "1", "1.2.3") == (
                doc["serviceId"],
                doc["version"],
                doc["releaseId"],
            )
            assert {"db:responseTime", "payments-api:state"} == set(doc["checks"])
            (db_item,) = doc["checks"]["db:responseTime"]
            assert {
                "componentId": "primary",
                "componentType": "datastore",
                "observedValue": 12.5,
                "observedUnit": "ms",
                "status": "pass",
            } == {k: v for k, v in db_item.items() if k != "time"}

            # an open breaker is not critical: warn, still 200
            breaker.force_open()
            r = await client.get("/health/ready")
            doc = assert_health_json(r.status_code, r.headers, r.content)
            assert (200, "warn") == (r.status_code, doc["status"])
            assert "fail" == doc["checks"]["payments-api:state"][0]["status"]
            assert "forced_open" == doc["checks"]["payments-api:state"][0]["observedValue"]

            # a critical dependency that fails: 503
            db.status = Status.FAIL
            r = await client.get("/health/ready")
            doc = assert_health_json(r.status_code, r.headers, r.content)
            assert (503, "fail") == (r.status_code, doc["status"])
            assert "degraded" == doc["checks"]["db:responseTime"][0]["output"]

            # liveness does not depend on the database
            r = await client.get("/health/live")
            doc = assert_health_json(r.status_code, r.headers, r.content)
            assert (200, "pass") == (r.status_code, doc["status"])
            assert ["loop"] == list(doc["checks"])

            # everything under the mount's root
            r = await client.get("/health/")
            doc = assert_health_json(r.status_code, r.headers, r.content)
            assert {"db:responseTime", "payments-api:state", "loop"} == set(doc["checks"])

            # HEAD: same status and headers, no body; other methods: 405
            r = await client.head("/health/ready")
            assert (503, b"") == (r.status_code, r.content)
            assert "application/health+json" == r.headers["content-type"]
            r = await client.post("/health/ready")
            assert (405, "GET, HEAD") == (r.status_code, r.headers["allow"])


async def test_default_paths_and_lifespan_start_background_refresh() -> None:
    calls = 0

    async def dep() -> None:
        nonlocal calls
        calls += 1

    reg = HealthRegistry()
    reg.add(Check("dep", dep, ttl=30.0, refresh=0.02))
    with UvicornThread(HealthApp(reg), lifespan="on") as server:
        end = time.monotonic() + 5
        while calls < 3 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        assert calls >= 3  # refreshed at startup, before any probe
        async with httpx.AsyncClient(base_url=server.url) as client:
            for path in ("/health/live", "/health/ready", "/health/started", "/health"):
                r = await client.get(path)
                assert_health_json(r.status_code, r.headers, r.content)
            assert 404 == (await client.get("/other")).status_code


async def test_wrapping_an_app_passes_other_requests_through() -> None:
    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner " + scope["path"].encode()})

    reg = HealthRegistry()
    with UvicornThread(HealthApp(reg, app=inner)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert "inner /orders" == (await client.get("/orders")).text
            r = await client.get("/health/ready")
            assert {"status": "pass", "checks": {}} == r.json()


@pytest.fixture
def wsgi_server() -> Iterator[tuple[str, Switch, HealthRegistry]]:
    db = Switch()
    reg = registry_with(db, CircuitBreaker(name="b"))

    def other(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"flask here"]

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, HealthWSGIApp(reg, app=other), handler_class=Quiet
    )
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}", db, reg
    finally:
        httpd.shutdown()
        thread.join(5)
        httpd.server_close()
        reg.close()


def test_wsgi_app_on_a_real_wsgi_server(wsgi_server: tuple[str, Switch, HealthRegistry]) -> None:
    url, db, _ = wsgi_server
    with httpx.Client(base_url=url) as client:
        r = client.get("/health/ready")
        doc = assert_health_json(r.status_code, r.headers, r.content)
        assert "pass" == doc["status"]
        db.status = Status.FAIL
        r = client.get("/health/ready")
        doc = assert_health_json(r.status_code, r.headers, r.content)
        assert (503, "fail") == (r.status_code, doc["status"])
        r = client.get("/health/live")
        assert 200 == r.status_code
        assert "flask here" == client.get("/orders").text
        assert 405 == client.delete("/health/ready").status_code


# --- gRPC -----------------------------------------------------------------------------------------


async def test_grpc_aio_servicer_check_list_watch() -> None:
    db = Switch()
    reg = registry_with(db, CircuitBreaker(name="b"))
    server = grpc.aio.server()
    servicer = add_to_server(server, reg)
    assert isinstance(servicer, HealthServicer)
    servicer.watch_interval = 0.02
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING
            not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
            r = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert serving == r.status
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert grpc.StatusCode.NOT_FOUND == e.value.code()

            watch = stub.Watch(health_pb2.HealthCheckRequest(service="readiness"), timeout=10)
            first = await watch.read()
            assert serving == first.status
            db.status = Status.FAIL
            second = await watch.read()
            assert not_serving == second.status
            watch.cancel()

            listed = await stub.List(health_pb2.HealthListRequest(), timeout=5)
            assert {
                "": not_serving,
                "readiness": not_serving,
                "liveness": serving,
                "startup": serving,
            } == {k: v.status for k, v in listed.statuses.items()}

            unknown = stub.Watch(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert health_pb2.HealthCheckResponse.SERVICE_UNKNOWN == (await unknown.read()).status
    finally:
        await server.stop(None)


def test_grpc_sync_servicer_on_a_thread_pool_server() -> None:
    from concurrent.futures import ThreadPoolExecutor

    db = Switch()
    reg = registry_with(db, CircuitBreaker(name="b"))
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    assert isinstance(add_to_server(server, reg), SyncHealthServicer)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            r = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert health_pb2.HealthCheckResponse.SERVING == r.status
            db.status = Status.FAIL
            r = stub.Check(health_pb2.HealthCheckRequest(service="readiness"), timeout=5)
            assert health_pb2.HealthCheckResponse.NOT_SERVING == r.status
            r = stub.Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=5)
            assert health_pb2.HealthCheckResponse.SERVING == r.status
            with pytest.raises(grpc.RpcError) as e:
                stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5)
            assert grpc.StatusCode.NOT_FOUND == e.value.code()
    finally:
        server.stop(None).wait(5)
        reg.close()


def test_health_json_body_is_compact_utf8() -> None:
    reg = HealthRegistry(description="Zahlungen \u2013 payments")
    status, body = asyncio.run(reg.respond())
    assert 200 == status
    assert b'{"status":"pass","description":"Zahlungen \xe2\x80\x93 payments","checks":{}}' == body
    assert "Zahlungen \u2013 payments" == json.loads(body)["description"]
