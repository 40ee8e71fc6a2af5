"""The receiver: an ASGI app (Starlette) for alert webhooks and the incident HTTP API.

Routes (JSON in and out; every route but ``/healthz`` needs ``Authorization: Bearer <token>`` when
the receiver has a token)::

    POST /api/v1/alertmanager              Alertmanager's webhook (payload version 4)
    POST /api/v1/webhook                   the generic JSON webhook
    GET  /api/v1/incidents[?open=1&state=] incidents, newest first
    GET  /api/v1/incidents/{id}            one incident and its log
    POST /api/v1/incidents/{id}/ack        {"by": "alice", "note": "...", "at": optional}
    POST /api/v1/incidents/{id}/mitigate   (same body)
    POST /api/v1/incidents/{id}/resolve    (same body)
    POST /api/v1/deploys                   {"service": "shop", "version": "1.4.2", "by": "ci"}
    GET  /api/v1/deploys
    GET  /healthz

Refusals: 400 for a body that is not JSON, 413 for one over ``max_body`` bytes, 422 for JSON that
is not the payload, 401 for a missing or wrong token, 404 for an unknown incident, 409 for a
lifecycle step out of order.  Every refused webhook is journaled in the store's ``rejected`` table.

Group commit: webhook handlers do not write one by one.  Each parsed notification is queued with a
future; one writer task takes everything queued, applies it in one transaction (one fsync) in a
worker thread, and answers every request of the batch once it is on disk.  While it writes, the
next batch gathers, so throughput grows with concurrency instead of being one fsync per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from buttress.errors import ButtressError, ConfigError, MissingExtra

from .model import BadPayload, Notification, TransitionRefused, parse_alertmanager, parse_generic
from .store import IncidentStore, Outcome

if TYPE_CHECKING:
    from starlette.requests import Request

    from .notify import Notifier

__all__ = ["LOOPBACK", "MAX_BATCH", "Receiver", "check_bind", "create_app"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_BATCH = 2000
"""Notifications applied in one transaction at most."""

Listener = Callable[[Sequence[tuple[Notification, Outcome]]], None]
_ACTIONS = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if host not in LOOPBACK and not token:
        raise ConfigError(
            "--host",
            host,
            "the receiver listens beyond loopback only with a token "
            "(--token or BUTTRESS_INCIDENT_TOKEN)",
        )


class Receiver:
    """Queues notifications and commits them in batches to ``store``; ``listeners`` are called
    (in the writer thread, after the commit) with each batch's notifications and outcomes."""

    def __init__(self, store: IncidentStore, *, listeners: Sequence[Listener] = ()) -> None:
        self.store = store
        self.listeners = list(listeners)
        self._queue: asyncio.Queue[tuple[Notification, asyncio.Future[Outcome]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, notification: Notification) -> Outcome:
        """Queue ``notification``; returns its outcome once it is committed."""
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._writer())
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        await self._queue.put((notification, fut))
        return await fut

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < MAX_BATCH and not queue.empty():
                batch.append(queue.get_nowait())
            notes = [n for n, _ in batch]
            try:
                outcomes = await asyncio.to_thread(self._commit, notes)
            except Exception as e:  # the store failed: every request of the batch hears of it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)

    def _commit(self, notes: list[Notification]) -> list[Outcome]:
        outcomes = self.store.ingest(notes)
        self.batches += 1
        pairs = list(zip(notes, outcomes, strict=True))
        for listener in self.listeners:
            try:
                listener(pairs)
            except Exception:  # a failing notifier never loses or fails the notifications
                import logging

                logging.getLogger("buttress.incident").exception("incident listener failed")
        return outcomes

    async def close(self) -> None:
        """Stop the writer task (queued notifications not yet taken are answered with an error)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _response(data: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    body = json.dumps(data, separators=(",", ":"), default=str)
    return Response(body, status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Any:
    return _response({"error": message}, status)


class _Api:
    """The route handlers, sharing the store, the receiver, the token and the notifier."""

    def __init__(
        self,
        store: IncidentStore,
        receiver: Receiver,
        *,
        token: str | None,
        max_body: int,
        notifier: Notifier | None,
    ) -> None:
        self.store = store
        self.receiver = receiver
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_body = max_body
        self.notifier = notifier

    def authorized(self, request: Request) -> bool:
        if self.expected is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, self.expected)

    async def refuse(self, endpoint: str, status: int, reason: str, body: bytes) -> Any:
        """Journal a refused request, then answer it."""
        await asyncio.to_thread(self.store.reject, endpoint, status, reason, body)
        return _error(status, reason)

    async def read_json(self, request: Request, endpoint: str) -> tuple[Any, Any]:
        """(parsed body, None) or (None, the refusal response)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return None, await self.refuse(
                    endpoint, 413, f"body over {self.max_body} bytes", body
                )
        if not self.authorized(request):
            return None, await self.refuse(endpoint, 401, "missing or wrong bearer token", b"")
        try:
            return json.loads(body), None
        except (ValueError, UnicodeDecodeError) as e:
            return None, await self.refuse(endpoint, 400, f"body is not JSON: {e}", body)

    def webhook(self, endpoint: str, parse: Callable[[object], Notification]) -> Callable[..., Any]:
        async def handle(request: Request) -> Any:
            data, refusal = await self.read_json(request, endpoint)
            if refusal is not None:
                return refusal
            try:
                notification = parse(data)
            except BadPayload as e:
                return await self.refuse(endpoint, 422, str(e), json.dumps(data).encode())
            try:
                outcome = await self.receiver.submit(notification)
            except Exception as e:  # the store failed (disk full...): the sender retries
                return _error(503, f"incident store unavailable: {e}")
            return _response({"action": outcome.action, "incident": outcome.incident})

        return handle

    async def list_incidents(self, request: Request) -> Any:
        if not self.authorized(request):
            return _error(401, "missing or wrong bearer token")
        q = request.query_params
        try:
            limit = int(q.get("limit", "1000"))
        except ValueError:
            return _error(400, "limit: must be an integer")
        rows = await asyncio.to_thread(
            self.store.incidents, state=q.get("state"), open_only=q.get("open") == "1", limit=limit
        )
        return _response([r.to_json() for r in rows])

    async def show_incident(self, request: Request) -> Any:
        if not self.authorized(request):
            return _error(401, "missing or wrong bearer token")
        ident = int(request.path_params["id"])
        try:
            found = await asyncio.to_thread(self.store.get, ident)
        except ButtressError as e:
            return _error(404, str(e))
        log = await asyncio.to_thread(self.store.log, ident)
        return _response(found.to_json() | {"log": [e.to_json() for e in log]})

    async def act(self, request: Request) -> Any:
        data, refusal = await self.read_json(request, "incident")
        if refusal is not None:
            return refusal
        action = request.path_params["action"]
        if action not in _ACTIONS:
            return _error(404, f"unknown action {action!r}; one of ack, mitigate, resolve")
        if not isinstance(data, dict) or not isinstance(data.get("by"), str) or not data["by"]:
            return _error(422, "by: required, the person taking the step")
        at = data.get("at")
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | float)):
            return _error(422, "at: must be Unix seconds")
        try:
            found = await asyncio.to_thread(
                self.store.transition,
                int(request.path_params["id"]),
                _ACTIONS[action],
                actor=data["by"],
                at=at,
                note=str(data.get("note", "")),
            )
        except TransitionRefused as e:
            return _error(409 if "no such incident" not in str(e) else 404, str(e))
        if self.notifier is not None:
            self.notifier.submit(found.id, found.state)
        return _response(found.to_json())

    async def post_deploy(self, request: Request) -> Any:
        data, refusal = await self.read_json(request, "deploys")
        if refusal is not None:
            return refusal
        if not isinstance(data, dict):
            return await self.refuse("deploys", 422, "body: must be a JSON object", b"")
        try:
            marker = await asyncio.to_thread(
                self.store.add_deploy,
                data.get("service"),  # type: ignore[arg-type]
                data.get("version"),  # type: ignore[arg-type]
                actor=data.get("by", "ci"),
                at=data.get("at"),
            )
        except (ConfigError, TypeError, ValueError) as e:
            return await self.refuse("deploys", 422, str(e), json.dumps(data).encode())
        return _response(marker.to_json(), 201)

    async def list_deploys(self, request: Request) -> Any:
        if not self.authorized(request):
            return _error(401, "missing or wrong bearer token")
        rows = await asyncio.to_thread(self.store.deploys)
        return _response([d.to_json() for d in rows])

    async def healthz(self, request: Request) -> Any:
        return _response({"status": "pass"})


def create_app(
    store: IncidentStore,
    *,
    token: str | None = None,
    max_body: int = 1 << 20,
    listeners: Sequence[Listener] = (),
    notifier: Notifier | None = None,
) -> Any:
    """The Starlette app serving ``store`` (see the module docstring for the routes).

    ``notifier`` hears of every incident opened or resolved by a webhook and of every lifecycle
    step taken through the API; ``listeners`` get each committed batch of notifications.
    """
    try:
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError as e:
        raise MissingExtra("buttress incident serve", "incident", e.name or "starlette") from None
    if max_body < 1024:
        raise ConfigError("max_body", max_body, "must be >= 1024 bytes")
    if notifier is not None:
        listeners = [*listeners, notifier.listener]
    receiver = Receiver(store, listeners=listeners)
    api = _Api(store, receiver, token=token, max_body=max_body, notifier=notifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await receiver.close()

    app = Starlette(
        routes=[
            Route(
                "/api/v1/alertmanager",
                api.webhook("alertmanager", parse_alertmanager),
                methods=["POST"],
            ),
            Route("/api/v1/webhook", api.webhook("webhook", parse_generic), methods=["POST"]),
            Route("/api/v1/incidents", api.list_incidents),
            Route("/api/v1/incidents/{id:int}", api.show_incident),
            Route("/api/v1/incidents/{id:int}/{action}", api.act, methods=["POST"]),
            Route("/api/v1/deploys", api.post_deploy, methods=["POST"]),
            Route("/api/v1/deploys", api.list_deploys),
            Route("/healthz", api.healthz),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app
