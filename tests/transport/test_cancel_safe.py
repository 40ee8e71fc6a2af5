"""CancelSafeTransport: callers cancelled by timeouts never cancel a request inside httpcore's
pool, so the pool cannot wedge (encode/httpcore#1093); the caller is released at once, the
abandoned request's response is closed, and aclose() finishes what is left.  A real asyncio
server on 127.0.0.1, real httpx."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from buttress.integrations.cancel_safe import CancelSafeTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answering(delay: float, done: list[float] | None = None, chunked: bool = False) -> Handler:
    """HTTP/1.1 keep-alive: every request answered ``{}`` after ``delay`` seconds (``chunked``:
    in two chunks, ``delay`` apart, without a Content-Length)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return
                    head += chunk
                await asyncio.sleep(delay)
                if chunked:
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
                    await writer.drain()
                    await asyncio.sleep(delay)
                    writer.write(b"1\r\n}\r\n0\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
                if done is not None:
                    done.append(time.monotonic())
        writer.close()

    return serve


@contextlib.asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"
    finally:
        srv.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(srv.wait_closed(), 1.0)


@pytest.mark.parametrize("chunked", [False, True], ids=["sized body", "chunked body"])
async def test_cancelled_callers_never_wedge_the_pool(chunked: bool) -> None:
    # The churn that wedges httpcore 1.0.9's pool: twice as many concurrent requests as
    # connections, each cancelled after a random 0-30 ms against 10 ms answers (a chunked body,
    # sent in two parts 10 ms apart, also has callers cancelled while reading it).  The pool timeout
    # stays above the backlog the churn leaves: a PoolTimeout can orphan a connection in the
    # same way (httpcore's race, not a cancellation), which no transport around it can prevent.
    rng = random.Random(7)
    async with server(answering(0.01, chunked=chunked)) as url:
        safe = CancelSafeTransport(limits=httpx.Limits(max_connections=10))
        timeout = httpx.Timeout(2.0, pool=5.0)
        async with httpx.AsyncClient(transport=safe, timeout=timeout) as client:
            most_abandoned = 0

            async def one() -> None:
                nonlocal most_abandoned
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(client.get(url), rng.uniform(0.0, 0.03))
                most_abandoned = max(most_abandoned, safe.abandoned)

            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                await asyncio.gather(*(one() for _ in range(20)))
            assert most_abandoned > 0  # callers were cancelled with requests inside the pool
            # The abandoned requests end (their answers come), and every slot comes back:
            # sequential requests each get a connection within the pool timeout.
            for _ in range(250):
                if safe.abandoned == 0:
                    break
                await asyncio.sleep(0.02)
            assert 0 == safe.abandoned
            for _ in range(12):
                assert 200 == (await client.get(url)).status_code


async def test_the_caller_is_released_at_once_and_the_late_response_is_closed() -> None:
    answered: list[float] = []
    async with server(answering(0.5, answered)) as url:
        safe = CancelSafeTransport()
        async with httpx.AsyncClient(transport=safe, timeout=5.0) as client:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(url), 0.05)
            assert time.monotonic() - t0 < 0.3  # not held until the server answers
            assert 1 == safe.abandoned
            for _ in range(100):
                if safe.abandoned == 0:
                    break
                await asyncio.sleep(0.02)
            assert 0 == safe.abandoned and 1 == len(answered)
            # The connection went back to the pool (or was closed): the next request is served.
            assert 200 == (await client.get(url)).status_code


async def test_the_request_runs_in_the_callers_context() -> None:
    seen: list[str] = []
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(var.get())
            return httpx.Response(204)

    async with httpx.AsyncClient(transport=CancelSafeTransport(Recording())) as client:
        var.set("the caller's deadline")
        assert 204 == (await client.get("http://example.invalid/")).status_code
    assert ["the caller's deadline"] == seen


async def test_aclose_finishes_requests_abandoned_to_a_hung_server() -> None:
    hung = asyncio.Event()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hung.set()
        with contextlib.suppress(Exception):
            await reader.read(4096)
            await asyncio.sleep(3600)

    async with server(never) as url:
        safe = CancelSafeTransport()
        client = httpx.AsyncClient(transport=safe, timeout=None)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get(url), 0.2)
        await asyncio.wait_for(hung.wait(), 1.0)
        assert 1 == safe.abandoned
        await asyncio.wait_for(client.aclose(), 2.0)
        assert 0 == safe.abandoned


def test_a_transport_and_keywords_together_are_refused() -> None:
    with pytest.raises(TypeError, match="not both"):
        CancelSafeTransport(httpx.AsyncHTTPTransport(), retries=1)


async def test_the_resilient_transport_sends_through_one() -> None:
    from buttress.integrations.http import AsyncResilientTransport, ResilientTransport

    own = httpx.AsyncHTTPTransport()
    rt = AsyncResilientTransport(["http://127.0.0.1:9"], transport=own)
    assert isinstance(rt.transport, CancelSafeTransport) and rt.transport.transport is own
    safe = CancelSafeTransport()
    assert AsyncResilientTransport(["http://127.0.0.1:9"], transport=safe).transport is safe
    sync_own = httpx.HTTPTransport()
    assert ResilientTransport(["http://127.0.0.1:9"], transport=sync_own).transport is sync_own
    for t in (rt, safe, own):
        await t.aclose()
    sync_own.close()
