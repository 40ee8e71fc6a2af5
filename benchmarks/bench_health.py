"""Requests per second of the readiness endpoint with cached checks, against a bare Starlette route
returning the same JSON.

The figure to reach (issue 7): the readiness endpoint serves at least 80 % of the requests per
second of a bare Starlette route returning the same JSON, measured in one run.

What is measured: ``GET /health/ready`` answered by an ASGI app, in process, with no network, so
the figure is the app's own cost per request.  Two drivers:

* ``health-asgi``: the ASGI app called directly (a prepared ``scope``, a ``receive`` that returns
  the empty request body, a ``send`` that drops the messages) in one event loop: the strictest
  comparison, nothing but the app's work is timed.
* ``health-httpx``: the same apps behind ``httpx.ASGITransport`` and an ``httpx.AsyncClient``,
  each request built, sent and its response parsed as a client would.

Rows per group (requests/s, higher is better):

* ``bare Starlette route, JSONResponse(doc)`` (baseline): a ``Route`` whose endpoint returns
  ``JSONResponse`` of the same document (with the same content type and ``Cache-Control``).
* ``bare Starlette route, prebuilt bytes``: the same route returning the document already encoded.
* ``buttress HealthApp mounted in Starlette``: ``Mount("/health", HealthApp(registry))``: three
  checks (an async dependency check, a circuit breaker's state, disk space), every one cached
  (``ttl`` one hour, warmed before timing).
* ``buttress HealthApp (top-level)``: the health app as the whole ASGI app.

Each figure is the best of several runs of a timed loop (``time.perf_counter``, garbage collector
off while timing).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from buttress.health import (
    Check,
    HealthApp,
    HealthRegistry,
    Result,
    breaker_check,
    disk_space_check,
)
from buttress.policies.breaker import CircuitBreaker

RUNS = 7
QUICK_RUNS = 3
ASGI_REQUESTS = 20_000
QUICK_ASGI_REQUESTS = 3_000
HTTPX_REQUESTS = 3_000
QUICK_HTTPX_REQUESTS = 500
HOUR = 3600.0

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def build_registry() -> HealthRegistry:
    reg = HealthRegistry(service_id="bench", version="1")

    async def dependency() -> Result:
        return Result(observed_value=1.5, observed_unit="ms")

    reg.add(Check("db", dependency, measurement="responseTime", ttl=HOUR, component_id="primary"))
    reg.add(breaker_check(CircuitBreaker(name="payments"), ttl=HOUR))
    reg.add(disk_space_check("/", ttl=HOUR, warn_below=0.0, fail_below=0.0))
    return reg


def build_apps(reg: HealthRegistry, doc: dict[str, Any], body: bytes) -> dict[str, ASGIApp]:
    headers = {"cache-control": "no-cache"}

    async def bare_json(request: Request) -> Response:
        return JSONResponse(doc, media_type="application/health+json", headers=headers)

    async def bare_bytes(request: Request) -> Response:
        return Response(body, media_type="application/health+json", headers=headers)

    return {
        "bare Starlette route, JSONResponse(doc)": Starlette(
            routes=[Route("/health/ready", bare_json)]
        ),
        "bare Starlette route, prebuilt bytes": Starlette(
            routes=[Route("/health/ready", bare_bytes)]
        ),
        "buttress HealthApp mounted in Starlette": Starlette(
            routes=[Mount("/health", app=HealthApp(reg, paths={"/ready": "readiness"}))]
        ),
        "buttress HealthApp (top-level)": HealthApp(reg),
    }


def _scope(app_state: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/health/ready",
        "raw_path": b"/health/ready",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": app_state,
    }


async def time_asgi(app: ASGIApp, n: int, runs: int) -> tuple[float, int, bytes]:
    """Best requests/s of ``n`` direct calls; also the last status and body (to check them)."""
    seen: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
        else:
            seen["body"] = message.get("body", b"")

    best = 0.0
    for _ in range(runs):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for _ in range(n):
                await app(_scope({}), receive, send)
            elapsed = time.perf_counter() - t0
        finally:
            gc.enable()
        best = max(best, n / elapsed)
    return best, seen["status"], seen["body"]


async def time_httpx(app: ASGIApp, n: int, runs: int) -> tuple[float, int, bytes]:
    """Best requests/s of ``n`` sequential requests through ``httpx.ASGITransport``."""
    transport = httpx.ASGITransport(app=app)
    best = 0.0
    status, body = 0, b""
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(runs):
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(n):
                    r = await client.get("/health/ready")
                elapsed = time.perf_counter() - t0
            finally:
                gc.enable()
            status, body = r.status_code, r.content
            best = max(best, n / elapsed)
    return best, status, body


async def measure(quick: bool) -> list[dict[str, Any]]:
    runs = QUICK_RUNS if quick else RUNS
    reg = build_registry()
    status, body = await reg.respond("readiness")  # warm every cache
    assert status == 200, body
    doc = json.loads(body)
    apps = build_apps(reg, doc, body)
    rows: list[dict[str, Any]] = []
    drivers = (
        ("health-asgi", time_asgi, QUICK_ASGI_REQUESTS if quick else ASGI_REQUESTS),
        ("health-httpx", time_httpx, QUICK_HTTPX_REQUESTS if quick else HTTPX_REQUESTS),
    )
    for group, timer, n in drivers:
        for i, (name, app) in enumerate(apps.items()):
            rps, got_status, got_body = await timer(app, n, runs)
            # every contender answers the same document
            assert got_status == 200, (name, got_status)
            assert doc == json.loads(got_body), name
            rows.append(
                {
                    "group": group,
                    "name": name,
                    "value": rps,
                    "unit": "requests/s",
                    "baseline": i == 0,
                    "lower_is_better": False,
                    "note": f"best of {runs} runs of {n} requests, in process",
                }
            )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return asyncio.run(measure(quick))


if __name__ == "__main__":
    for row in run(quick=True):
        print(f"{row['group']:14} {row['name']:44} {row['value']:>12,.0f} {row['unit']}")
