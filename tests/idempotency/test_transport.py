"""The resilient transport and the middleware together: a POST carries one Idempotency-Key for all
its retries and hedges, seen at the server (every arrival recorded before the middleware), and
the server runs it once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from _servers import UvicornThread
from buttress import Hedge
from buttress.integrations.http import AsyncResilientTransport, ResilientTransport
from buttress.integrations.idempotency import IdempotencyMiddleware
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore
from buttress.policies.backoff import Backoff

from .idem_app import orders_app, runs


class Arrivals:
    """Records the method and Idempotency-Key of every request that reaches the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            key = dict(scope["headers"]).get(b"idempotency-key")
            self.seen.append((scope["method"], key.decode() if key else None))
        await self.app(scope, receive, send)


def _server(tmp_path: Path, flaky: int = 0) -> tuple[Arrivals, str]:
    exec_db = str(tmp_path / "runs.db")
    inner = orders_app(exec_db)
    failures = {"left": flaky}

    async def sometimes_down(scope: Any, receive: Any, send: Any) -> None:
        if failures["left"] > 0:  # the first attempts find the service down (not stored: 5xx)
            failures["left"] -= 1
            scope = {**scope, "query_string": b"status=503"}
        await inner(scope, receive, send)

    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    return Arrivals(IdempotencyMiddleware(sometimes_down, store)), exec_db


def test_retries_of_a_post_reuse_its_key(tmp_path: Path) -> None:
    arrivals, exec_db = _server(tmp_path, flaky=2)
    with UvicornThread(arrivals) as server:
        transport = ResilientTransport(
            [server.url], attempts=4, backoff=Backoff(base=0.01), budget=None, idempotency_keys=True
        )
        with httpx.Client(transport=transport, base_url="http://orders") as client:
            r = client.post("/orders", json={"sku": "a"})
            plain = client.get("/orders")
    assert 201 == r.status_code
    posts = [key for method, key in arrivals.seen if method == "POST"]
    assert 3 == len(posts) and 1 == len(set(posts)) and posts[0].startswith('"')  # type: ignore[union-attr]
    assert ("GET", None) == arrivals.seen[-1]  # GETs get no key
    assert 201 == plain.status_code  # the test app answers 201 to every method
    # Two failed runs (503, released) and the successful one, all under that one key.
    assert [posts[0]] * 3 == [k for k, _, _ in runs(exec_db)]


def test_a_post_without_a_key_is_not_retried_unless_keys_are_made(tmp_path: Path) -> None:
    arrivals, _ = _server(tmp_path, flaky=1)
    with UvicornThread(arrivals) as server:
        transport = ResilientTransport([server.url], attempts=3, backoff=Backoff(base=0.01))
        with httpx.Client(transport=transport) as client:
            assert 503 == client.post(f"{server.url}/orders", json={}).status_code
            own = client.post(
                f"{server.url}/orders", json={}, headers={"Idempotency-Key": '"mine"'}
            )
    assert 201 == own.status_code
    assert [("POST", None), ("POST", '"mine"')] == arrivals.seen


def test_a_hedged_post_sends_one_key_and_runs_once(tmp_path: Path) -> None:
    arrivals, exec_db = _server(tmp_path)

    async def call(url: str) -> httpx.Response:
        transport = AsyncResilientTransport(
            [url], policies=[Hedge(delay=0.05, max_hedges=1)], idempotency_keys=True, budget=None
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            return await client.post("/orders?sleep=0.4", json={"sku": "h"})

    with UvicornThread(arrivals) as server:
        r = asyncio.run(call(server.url))
    assert 201 == r.status_code and "idempotent-replayed" not in r.headers
    keys = [key for method, key in arrivals.seen if method == "POST"]
    assert 2 == len(keys) and 1 == len(set(keys))  # the hedge went out with the same key
    assert 1 == len(runs(exec_db))  # and got a 409: the server ran the order once
