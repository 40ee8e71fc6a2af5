"""Idempotency keys over HTTP: ``IdempotencyMiddleware`` (pure ASGI 3).

It follows the IETF draft *The Idempotency-Key HTTP Header Field*
(draft-ietf-httpapi-idempotency-key-header) with Stripe's semantics::

    Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"

For a request whose method is in ``methods`` (default ``POST`` and ``PATCH``, the draft's
non-idempotent methods)::

    no key                          -> 400 when required, else the app runs as usual
    malformed key, too long, two    -> 400
    fingerprint = sha256(method, path, query, body)
    store.begin(key, fingerprint)   (one atomic step; see idempotency_stores)
      new        -> run the app; store its response, then send it
      running    -> 409, Retry-After: 1          (a concurrent repeat: the first is still running)
      mismatch   -> 422                          (the key was used for another payload)
      done       -> the stored response, with Idempotent-Replayed: true
      store down -> 503, Retry-After: 1          (nothing runs unrecorded)

Errors are ``application/problem+json`` (RFC 9457) with a ``type`` naming the case.

**What is stored.** The whole response, once the app has sent it; the response is buffered and
sent after it is stored, so a client that got an answer gets the same one on every repeat.  A 5xx
answer is *not* stored by default (``replay_server_errors=False``): the key is released, so a
retry runs the request again; that is what makes retrying a ``POST`` with a key safe and useful.
(Stripe replays 500s; turn ``replay_server_errors`` on for that.)  An app that raises without
answering also releases the key.  Keys expire ``ttl`` seconds after they were stored (default 24 h,
Stripe's); a key whose request has been running for longer than ``lock_timeout`` (its server died)
may be taken over by a repeat.

**Key format.** The draft makes the value an RFC 8941 ``sf-string`` (quoted); a bare value of
visible ASCII characters (what Stripe's clients send) is accepted too.  Keys are scoped by
``scope(asgi_scope)`` when given (the draft recommends combining the key with the client's
identity, so one client cannot replay another's response).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from buttress.errors import ConfigError
from buttress.options import Options, custom, documented, duration, flag, integer
from buttress.randomids import random_ids

from .idempotency_stores import IdempotencyStore, IdempotencyStoreUnavailable, StoredResponse

__all__ = ["HEADER", "IdempotencyMiddleware", "IdempotencyOptions", "parse_key"]

HEADER = "Idempotency-Key"
# RFC 8941 sf-string: printable ASCII, with `"` and `\` escaped by a backslash.
_SF_STRING = re.compile(r'"((?:[ !#-\[\]-~]|\\["\\])*)"')
_ESCAPE = re.compile(r"\\(.)")
# A bare key: visible ASCII but the characters that would make it a list or a string.
_BARE = re.compile(r"[!#-+\--:<-\[\]-~]+")
REPLAYED = (b"idempotent-replayed", b"true")
_log = logging.getLogger("buttress.integrations.idempotency")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_new_token = random_ids(8, 512)
"""64 random bits in hex: the token that proves a lock is still ours."""


def _methods(name: str, v: Any) -> frozenset[str]:
    if isinstance(v, str) or not isinstance(v, Iterable):
        raise ConfigError(name, v, "must be a collection of HTTP methods")
    methods = frozenset(str(m).upper() for m in v)
    if not methods:
        raise ConfigError(name, v, "must name at least one method")
    return methods


@dataclass(frozen=True, kw_only=True)
class IdempotencyOptions(Options):
    """How :class:`IdempotencyMiddleware` treats keys."""

    policy = "IdempotencyMiddleware"

    methods: frozenset[str] = custom(
        frozenset({"POST", "PATCH"}), "Methods whose requests honour keys", check=_methods
    )
    required: bool = flag(False, "Answer 400 to a request of those methods without a key")
    ttl: float = duration(86_400.0, "Seconds a completed key is remembered (Stripe: 24 h)", gt=0)
    lock_timeout: float = duration(
        60.0,
        "Seconds after which a key whose request is still running may be taken over (its server "
        "died)",
        gt=0,
    )
    max_key_length: int = integer(255, "Longest key accepted (characters)", ge=1, le=8192)
    max_body: int = integer(
        1 << 20, "Largest request body accepted with a key, bytes (it is hashed and buffered)", ge=0
    )
    replay_server_errors: bool = flag(
        False, "Store and replay 5xx answers too (Stripe does); default: release the key"
    )


def parse_key(raw: bytes, max_length: int) -> str | None:
    """The key in a header value, or ``None`` when it is malformed or too long: an RFC 8941
    ``sf-string`` (``"..."``, with ``\\"`` and ``\\\\`` escapes, printable ASCII), or a bare run
    of visible ASCII characters."""
    try:
        text = raw.decode("ascii").strip(" \t")
    except UnicodeDecodeError:
        return None
    quoted = _SF_STRING.fullmatch(text)
    if quoted is not None:
        key = quoted[1]
        if "\\" in key:
            key = _ESCAPE.sub(r"\1", key)
    elif _BARE.fullmatch(text) is not None:
        key = text
    else:
        return None
    if not key or len(key) > max_length:
        return None
    return key


async def _problem(
    send: Send, status: int, title: str, detail: str, retry_after: bool = False
) -> None:
    body = json.dumps(
        {
            "type": f"https://buttress.dev/problems/idempotency-{status}",
            "title": title,
            "status": status,
            "detail": detail,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@documented(IdempotencyOptions)
class IdempotencyMiddleware:
    """Make ``app``'s ``POST`` and ``PATCH`` requests idempotent by key (see the module's docs).

    ``store`` is a :class:`~buttress.integrations.idempotency_stores.SQLiteIdempotencyStore` (one
    host) or a :class:`~buttress.integrations.idempotency_stores.RedisIdempotencyStore` (several
    replicas).  ``scope`` maps the ASGI scope to a namespace for keys (the client's identity);
    ``now`` is the wall clock (tests pass their own).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: IdempotencyStore,
        *,
        methods: Iterable[str] = IdempotencyOptions.methods,
        required: bool = IdempotencyOptions.required,
        ttl: float = IdempotencyOptions.ttl,
        lock_timeout: float = IdempotencyOptions.lock_timeout,
        max_key_length: int = IdempotencyOptions.max_key_length,
        max_body: int = IdempotencyOptions.max_body,
        replay_server_errors: bool = IdempotencyOptions.replay_server_errors,
        scope: Callable[[Scope], str] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.options = IdempotencyOptions(
            methods=methods,  # type: ignore[arg-type]
            required=required,
            ttl=ttl,
            lock_timeout=lock_timeout,
            max_key_length=max_key_length,
            max_body=max_body,
            replay_server_errors=replay_server_errors,
        )
        self.app = app
        self.store = store
        self.scope = scope
        self.now = now
        self._methods = self.options.methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self._methods:
            await self.app(scope, receive, send)
            return
        raw = [v for k, v in scope["headers"] if k == b"idempotency-key"]
        if not raw:
            if self.options.required:
                await _problem(
                    send,
                    400,
                    "Idempotency-Key is missing",
                    f"{scope['method']} {scope['path']} requires an Idempotency-Key",
                )
                return
            await self.app(scope, receive, send)
            return
        key = parse_key(raw[0], self.options.max_key_length) if len(raw) == 1 else None
        if key is None:
            await _problem(
                send,
                400,
                "Idempotency-Key is malformed",
                "send one key: a quoted string of printable ASCII, at most "
                f"{self.options.max_key_length} characters",
            )
            return
        body = await self._read_body(receive)
        if body is None:
            await _problem(
                send,
                413,
                "Request body too large for an idempotent request",
                f"at most {self.options.max_body} bytes with an Idempotency-Key",
            )
            return
        await self._keyed(scope, receive, send, key, body)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size, limit = 0, self.options.max_body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away; the app will see nothing more
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            if not message.get("more_body", False):
                return b"".join((*chunks, chunk)) if chunks else chunk
            chunks.append(chunk)

    def _fingerprint(self, scope: Scope, body: bytes) -> str:
        # method, path and query, each followed by a NUL (none holds one), then the body
        head = b"%s\0%s\0%s\0" % (
            scope["method"].encode(),
            scope.get("raw_path") or scope["path"].encode(),
            scope.get("query_string", b""),
        )
        h = hashlib.sha256(head)
        h.update(body)
        return h.hexdigest()

    async def _keyed(
        self, scope: Scope, receive: Receive, send: Send, key: str, body: bytes
    ) -> None:
        o = self.options
        full_key = f"{self.scope(scope)}\0{key}" if self.scope is not None else key
        token = _new_token()
        try:
            begun = await self.store.begin(
                full_key,
                self._fingerprint(scope, body),
                token,
                now=self.now(),
                ttl=o.ttl,
                lock=o.lock_timeout,
            )
        except IdempotencyStoreUnavailable as e:
            _log.warning("%s", e)
            await _problem(
                send,
                503,
                "Idempotency store unavailable",
                "the request was not run; retry it with the same key",
                True,
            )
            return
        if begun.state == "running":
            await _problem(
                send,
                409,
                "A request is outstanding for this Idempotency-Key",
                "the first request with this key is still being processed",
                True,
            )
        elif begun.state == "mismatch":
            await _problem(
                send,
                422,
                "Idempotency-Key is already used",
                "this key was used with a different request payload",
            )
        elif begun.state == "done":
            assert begun.response is not None
            r = begun.response
            await send(
                {
                    "type": "http.response.start",
                    "status": r.status,
                    "headers": [*r.headers, REPLAYED],
                }
            )
            await send({"type": "http.response.body", "body": r.body})
        else:
            await self._run(scope, receive, send, (full_key, token), body)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, held: tuple[str, str], body: bytes
    ) -> None:
        key, token = held
        o = self.options
        sent = False

        async def replay_body() -> MutableMapping[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # the body was read; what comes next is the disconnect

        start: MutableMapping[str, Any] | None = None
        chunks: list[bytes] = []
        complete = False

        async def capture(message: MutableMapping[str, Any]) -> None:
            nonlocal start, complete
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            await self._release(key, token)
            raise
        if start is None or not complete:
            await self._release(key, token)
            raise RuntimeError("the app returned without a complete response")
        response = StoredResponse(start["status"], list(start.get("headers", [])), b"".join(chunks))
        if response.status >= 500 and not o.replay_server_errors:
            await self._release(key, token)
        else:
            try:
                await self.store.complete(key, token, response, self.now(), o.ttl)
            except IdempotencyStoreUnavailable as e:
                # The app ran: its answer goes out.  The key stays locked until lock_timeout, so
                # a repeat meanwhile gets 409 rather than running the request a second time.
                _log.error("response not stored, key %r stays locked: %s", key, e)
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response.headers}
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _release(self, key: str, token: str) -> None:
        try:
            await self.store.release(key, token)
        except IdempotencyStoreUnavailable as e:
            _log.warning("key %r not released (it unlocks after lock_timeout): %s", key, e)
