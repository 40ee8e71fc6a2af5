"""An httpx transport that keeps asyncio cancellation away from the connection pool.

A :class:`~buttress.Timeout` (or ``asyncio.wait_for``, or a task group) stops waiting for a request
by *cancelling* the task that awaits it.  httpcore's ``AsyncConnectionPool`` (1.0.9, the latest
release at the time of writing) is not safe against that: a request cancelled while the pool has
just assigned it a new connection, before the connection is established, leaves that connection in
the pool in a state no clean-up matches (encode/httpcore#1093, #830, #658).  Under contention they
pile up until every slot is taken, and from then on every request fails with ``PoolTimeout``
against a healthy server; only a new pool, or a new process, recovers.  Reproduced here with 20
concurrent requests on a pool of 10 against a loopback server answering in 10 ms, each request
cancelled after a random 0-30 ms: within a few seconds the pool showed 10 connections
``CONNECTING`` and no request, and every request after it timed out
(``tests/transport/test_cancel_safe.py`` runs that churn).

:class:`CancelSafeTransport` sends each request in a task of its own and waits for it behind
:func:`asyncio.shield`.  When the caller is cancelled, the caller's wait ends at once (the
cancellation propagates as usual, so timeouts keep their meaning), while the request runs on,
untouched, until it ends by the client's own timeouts (set them: a request abandoned to a hung
server otherwise holds its connection as long as the server does); its response is then closed,
giving the connection back.  Reading the body needs no such care: httpcore closes a stream
interrupted by a cancellation behind its own shield.  Cost: a task per request, about 20 us,
against the hundreds of microseconds an httpx request takes on loopback.

What it cannot prevent: the same orphaned connection when a request waits for a connection longer
than the client's *pool* timeout and fails with ``PoolTimeout`` just as the pool hands it a new
connection (httpcore's race, without any cancellation; seen with a 1 s pool timeout under the
churn above).  Keep the pool timeout above the time requests may queue for a connection.

Use it for every ``httpx.AsyncClient`` whose requests a Buttress timeout may cut short (the
:class:`~buttress.integrations.http.AsyncResilientTransport` puts the transport it sends with
behind one itself)::

    client = httpx.AsyncClient(transport=CancelSafeTransport(), timeout=5.0)
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from buttress.errors import MissingExtra

try:
    import httpx
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtra("buttress.integrations.cancel_safe", "http", "httpx") from None

__all__ = ["CancelSafeTransport", "cancel_safe"]


class CancelSafeTransport(httpx.AsyncBaseTransport):
    """Wraps ``transport`` (default: a new :class:`httpx.AsyncHTTPTransport` built from
    ``kwargs``) so that a cancelled caller never cancels a request inside the connection pool."""

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any) -> None:
        if transport is not None and kwargs:
            raise TypeError("give a transport or the keywords to build one, not both")
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport(**kwargs)
        # Requests whose caller gave up, still running: kept referenced (a task nobody holds may
        # be collected mid-flight) and finished off by aclose().
        self._abandoned: set[asyncio.Task[httpx.Response]] = set()

    @property
    def abandoned(self) -> int:
        """Requests whose caller was cancelled and that are still running."""
        return len(self._abandoned)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        task = asyncio.ensure_future(self.transport.handle_async_request(request))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                _close_when_done(task)
            else:
                self._abandoned.add(task)
                task.add_done_callback(self._settle)
            raise

    def _settle(self, task: asyncio.Task[httpx.Response]) -> None:
        self._abandoned.discard(task)
        _close_when_done(task)

    async def aclose(self) -> None:
        """Cancel the requests still running for callers that gave up (the pool is closing: its
        state no longer matters), then close the wrapped transport."""
        pending = list(self._abandoned)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                await task
        await self.transport.aclose()


def cancel_safe(transport: httpx.AsyncBaseTransport) -> CancelSafeTransport:
    """``transport`` behind a :class:`CancelSafeTransport` (itself if it already is one)."""
    return (
        transport if isinstance(transport, CancelSafeTransport) else CancelSafeTransport(transport)
    )


_closing: set[asyncio.Task[None]] = set()


def _close_when_done(task: asyncio.Task[httpx.Response]) -> None:
    """Close the response of a finished request nobody will read (its connection goes back to
    the pool, or is closed); an error or a cancellation is retrieved so asyncio does not log it."""
    if task.cancelled() or task.exception() is not None:
        return
    closing = asyncio.ensure_future(task.result().aclose())
    _closing.add(closing)
    closing.add_done_callback(_closed)


def _closed(task: asyncio.Task[None]) -> None:
    _closing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failing close of an abandoned response is not news
