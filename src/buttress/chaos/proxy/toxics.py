"""Toxics: the faults the proxy applies, their attributes, defaults and behaviour.

A toxic is what toxiproxy calls it: ``{"name", "type", "stream", "toxicity", "attributes"}``.
``stream`` is ``downstream`` (upstream -> client, the default) or ``upstream`` (client -> upstream).
``toxicity`` is the probability in [0, 1] that the toxic acts on a connection, drawn once per
connection (per request for HTTP toxics) as ``random() < toxicity``: 0 never acts, 1 always does.

Each chunk read from one side passes through the direction's active toxics in the order they were
added, each one handing its output to the next, and finally to the other socket.  Times are in
milliseconds and sizes in bytes unless stated, as in toxiproxy.

Toxic types, their attributes (defaults) and behaviour:

``latency``: latency (0), jitter (0)
    each chunk is sent ``latency + U(-jitter, +jitter)`` ms after it arrived.
``bandwidth``: rate (0, KB/s, 1 KB = 1000 bytes)
    paces the stream at ``rate``: slices of at most 100 ms worth, slice *i* of ``n`` bytes leaving
    at ``t_i = t_(i-1) + n / rate`` (``t_(i-1)`` is replaced by now after an idle gap > 100 ms).
``slow_close``: delay (0)
    the close (EOF) reaches the other side ``delay`` ms late.
``timeout``: timeout (0), on_remove ("close")
    holds all data; closes the connection after ``timeout`` ms (0: holds until removed).  When
    the toxic is removed (or ``POST /reset``), ``on_remove: "close"`` does as toxiproxy does: the
    held data is dropped and the connection closed; ``"release"`` lets the held data flow on and
    keeps the connection.
``reset_peer``: timeout (0)
    resets the connection (TCP RST, ``SO_LINGER`` 0) ``timeout`` ms after it applies.
``slicer``: average_size (0), size_variation (0), delay (0, microseconds)
    cuts chunks into pieces of ``average_size +- size_variation`` bytes, ``delay`` us apart.
``limit_data``: bytes (0)
    passes exactly ``bytes`` bytes, then closes the connection.
``connect_refuse`` (no attributes)
    new connections are reset on accept, before any byte; existing ones are untouched.
``connect_delay``: delay (0)
    new connections reach the upstream ``delay`` ms late (nothing flows meanwhile).
``hang_after``: duration (0), bytes (0)
    works for ``duration`` ms or ``bytes`` bytes (whichever first; 0 = no limit), then holds the
    data, connection open, until the toxic is removed (the held bytes then flow on).
``stall``: probability (0.01), duration (200), burst (3)
    per chunk, a loss burst of ``k`` consecutive losses (each with ``probability``, at most
    ``burst``) stalls it as TCP's doubling retransmission timer would:
    ``duration * (2**k - 1)`` ms.
``http_status``: status (503), retry_after (0, s), body (""), method ("" = any),
path ("" = any; a prefix, or a glob with ``*?[``), first (0 = every match)
    answers matching HTTP/1.1 requests itself with ``status`` (plus ``Retry-After`` when > 0) and
    ``Connection: close``; with ``first`` = N only the first N matching requests are answered.

``connect_*`` toxics act on new connections whatever their ``stream``; ``http_status`` reads
requests, so it acts on the client -> upstream direction whatever its ``stream``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from buttress.records import fields_of

from .http import HttpRequestScanner

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "TIMEOUT_ON_REMOVE",
    "ApiError",
    "CloseLink",
    "TOXIC_TYPES",
    "Toxic",
    "ToxicState",
    "make_toxic",
]

Send = Callable[[bytes], Awaitable[None]]


class Direction(Protocol):
    """What a toxic may ask of the direction it acts on (a :class:`~.link.Direction`)."""

    async def hold_while(self, toxic: Toxic) -> None:
        """Wait, holding the data in hand, until ``toxic`` no longer acts on this direction."""
        ...

    async def answer(self, data: bytes) -> None:
        """Send ``data`` back to the side the direction reads from."""
        ...

    def acting(self, name: str) -> Toxic | None:
        """The toxic named ``name`` if it acts on this direction now, else None."""
        ...


class ApiError(Exception):
    """An error the control API reports as ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


class CloseLink(Exception):
    """Raised inside a toxic to end the connection (``reset``: with a TCP RST)."""

    def __init__(self, reset: bool = False) -> None:
        self.reset = reset
        super().__init__("reset" if reset else "close")


# type -> attribute -> (kind, default, minimum)
_NUM = "number"
_INT = "int"
_STR = "str"
TOXIC_TYPES: dict[str, dict[str, tuple[str, Any, float | None]]] = {
    "latency": {"latency": (_NUM, 0, 0), "jitter": (_NUM, 0, 0)},
    "bandwidth": {"rate": (_NUM, 0, 0)},
    "slow_close": {"delay": (_NUM, 0, 0)},
    "timeout": {"timeout": (_NUM, 0, 0), "on_remove": (_STR, "close", None)},
    "reset_peer": {"timeout": (_NUM, 0, 0)},
    "slicer": {"average_size": (_INT, 0, 0), "size_variation": (_INT, 0, 0), "delay": (_NUM, 0, 0)},
    "limit_data": {"bytes": (_INT, 0, 0)},
    "connect_refuse": {},
    "connect_delay": {"delay": (_NUM, 0, 0)},
    "hang_after": {"duration": (_NUM, 0, 0), "bytes": (_INT, 0, 0)},
    "stall": {"probability": (_NUM, 0.01, 0), "duration": (_NUM, 200, 0), "burst": (_INT, 3, 1)},
    "http_status": {
        "status": (_INT, 503, 100),
        "retry_after": (_INT, 0, 0),
        "body": (_STR, "", None),
        "method": (_STR, "", None),
        "path": (_STR, "", None),
        "first": (_INT, 0, 0),
    },
}
CONNECTION_TYPES = frozenset({"connect_refuse", "connect_delay"})
HTTP_TYPES = frozenset({"http_status"})
STREAMS = ("upstream", "downstream")
# toxiproxy's attributes are Go int64 fields: a value outside this range is a 400 there and here.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# The timeout toxic's ``on_remove``: "close" (toxiproxy's way: the held data is dropped and the
# connection closed) or "release" (the held data flows on and the connection lives).
TIMEOUT_ON_REMOVE = ("close", "release")
# A stall of k losses lasts duration * (2**k - 1): past this many, it would be longer than any run.
MAX_STALL_BURST = 32


def _attributes(kind: str, given: Any) -> dict[str, Any]:
    schema = TOXIC_TYPES[kind]
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ApiError("bad request body: attributes must be a JSON object")
    out: dict[str, Any] = {}
    for key in given:
        if key not in schema:
            valid = ", ".join(sorted(schema)) or "none"
            raise ApiError(f"unknown attribute {key!r} for toxic type {kind!r} (valid: {valid})")
    for key, (vkind, default, minimum) in schema.items():
        value = given.get(key, default)
        if vkind == _STR:
            if not isinstance(value, str):
                raise ApiError(f"attribute {key!r} must be a string, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApiError(f"attribute {key!r} must be a number, got {value!r:.80}")
            if vkind == _INT and not isinstance(value, int):
                # As toxiproxy (Go's int64 fields): 5.0 is refused too, not rounded.
                raise ApiError(f"attribute {key!r} must be an integer, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ApiError(f"attribute {key!r} must be finite, got {value!r}")
            if not INT64_MIN <= value <= INT64_MAX:
                raise ApiError(
                    f"attribute {key!r} is out of range (a 64-bit integer: "
                    f"{INT64_MIN}..{INT64_MAX}), got {value!r:.40}"
                )
            if minimum is not None and value < minimum:
                raise ApiError(f"attribute {key!r} must be >= {minimum:g}, got {value!r}")
        out[key] = value
    if kind == "timeout" and out["on_remove"] not in TIMEOUT_ON_REMOVE:
        raise ApiError(
            f"attribute 'on_remove' must be one of {', '.join(TIMEOUT_ON_REMOVE)}, "
            f"got {out['on_remove']!r}"
        )
    if kind == "stall" and out["burst"] > MAX_STALL_BURST:
        raise ApiError(f"attribute 'burst' must be <= {MAX_STALL_BURST}, got {out['burst']}")
    if kind == "stall" and out["probability"] > 1:
        raise ApiError(f"attribute 'probability' must be in [0, 1], got {out['probability']!r}")
    if kind == "http_status" and out["status"] > 599:
        raise ApiError(f"attribute 'status' must be an HTTP status 100..599, got {out['status']}")
    return out


@dataclass(frozen=True)
class Toxic:
    """A configured toxic (immutable: an update replaces it, and connections draw again)."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return fields_of(self, skip={"shared"}, attributes=dict(self.attributes))

    @property
    def connection_level(self) -> bool:
        return self.type in CONNECTION_TYPES

    def applies_to(self, stream: str) -> bool:
        """Does this toxic act on chunks of direction ``stream``?"""
        if self.type in CONNECTION_TYPES:
            return False
        if self.type in HTTP_TYPES:
            return stream == "upstream"
        return self.stream == stream


def make_toxic(body: Any, *, existing: Toxic | None = None) -> Toxic:
    """Validate a toxic from its JSON (an update merges into ``existing``); raises
    :class:`ApiError`."""
    if not isinstance(body, dict):
        raise ApiError("bad request body: expected a JSON object")
    base = existing.to_json() if existing else {}
    kind = body.get("type", base.get("type"))
    if existing is not None and "type" in body and body["type"] != existing.type:
        raise ApiError("a toxic's type cannot be changed; delete it and create another")
    if not isinstance(kind, str) or kind not in TOXIC_TYPES:
        raise ApiError(
            f"invalid toxic type {kind!r}; expected one of: {', '.join(sorted(TOXIC_TYPES))}"
        )
    stream = body.get("stream", base.get("stream", "downstream"))
    if stream not in STREAMS:
        raise ApiError("stream was invalid, can be either upstream or downstream")
    toxicity = body.get("toxicity", base.get("toxicity", 1.0))
    if (
        isinstance(toxicity, bool)
        or not isinstance(toxicity, int | float)
        or not 0.0 <= toxicity <= 1.0
    ):
        raise ApiError(f"toxicity must be a number in [0, 1], got {toxicity!r:.80}")
    name = body.get("name", base.get("name")) or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise ApiError(f"name must be a string, got {name!r}")
    attrs = dict(base.get("attributes", {}))
    new_attrs = body.get("attributes", {})
    if new_attrs is not None and not isinstance(new_attrs, dict):
        raise ApiError("bad request body: attributes must be a JSON object")
    attrs.update(new_attrs or {})
    return Toxic(name, kind, stream, float(toxicity), _attributes(kind, attrs))


# -- behaviour ---------------------------------------------------------------


class ToxicState:
    """A toxic's state on one direction of one connection (counters, pacing clock, parser)."""

    __slots__ = ("counter", "next_t", "parser", "started", "triggered")

    def __init__(self) -> None:
        self.counter = 0
        self.next_t = 0.0
        self.started = time.monotonic()
        self.triggered = False
        self.parser: HttpRequestScanner | None = None


async def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def process(  # noqa: PLR0917 - internal, hot path
    toxic: Toxic,
    state: ToxicState,
    d: Direction,
    data: bytes,
    arrived: float,
    send: Send,
    rng: random.Random,
) -> None:
    """Run one chunk through ``toxic`` on direction ``d``; hand what passes to ``send``."""
    kind = toxic.type
    a = toxic.attributes
    if kind == "latency":
        jitter = a["jitter"]
        delay = a["latency"] + (rng.uniform(-jitter, jitter) if jitter else 0.0)
        await _sleep_until(arrived + max(0.0, delay) / 1000.0)
        await send(data)
    elif kind == "bandwidth":
        rate = a["rate"] * 1000.0  # bytes per second
        if rate <= 0:
            await d.hold_while(toxic)
            await send(data)
            return
        step = max(1, int(rate / 10))  # at most 100 ms worth per slice
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            now = time.monotonic()
            # Keep the schedule while the stream is busy (time spent sending is caught up on the
            # next slice); after an idle gap of over 100 ms, start afresh (no burst credit).
            start = state.next_t if now - state.next_t < 0.1 else now
            state.next_t = start + len(piece) / rate
            await _sleep_until(state.next_t)
            await send(piece)
    elif kind == "slicer":
        avg, var, delay_us = a["average_size"], a["size_variation"], a["delay"]
        if avg <= 0:
            await send(data)
            return
        i = 0
        while i < len(data):
            size = avg + (rng.randint(-var, var) if var else 0)
            size = max(1, size)
            await send(data[i : i + size])
            i += size
            if delay_us and i < len(data):
                await asyncio.sleep(delay_us / 1e6)
    elif kind == "limit_data":
        left = a["bytes"] - state.counter
        if left > 0:
            piece = data[:left]
            state.counter += len(piece)
            await send(piece)
        if state.counter >= a["bytes"]:
            raise CloseLink()
    elif kind == "timeout":
        last = toxic
        while True:  # an update replaces the toxic: hold on under the new one
            await d.hold_while(last)
            acting = d.acting(toxic.name)
            if acting is None or acting.type != "timeout":
                break
            last = acting
        if last.attributes["on_remove"] == "close":
            raise CloseLink()
        await send(data)
    elif kind == "hang_after":
        if not state.triggered:
            limit_b = a["bytes"]
            limit_t = a["duration"]
            if limit_t and time.monotonic() - state.started >= limit_t / 1000.0:
                state.triggered = True
            elif limit_b:
                left = limit_b - state.counter
                if len(data) < left:
                    state.counter += len(data)
                    await send(data)
                    return
                state.counter = limit_b
                state.triggered = True
                await send(data[:left])
                data = data[left:]
            else:
                await send(data)
                return
        if data:
            await d.hold_while(toxic)
            await send(data)
    elif kind == "stall":
        k = 0
        while k < a["burst"] and rng.random() < a["probability"]:
            k += 1
        if k:
            await asyncio.sleep(a["duration"] * (2**k - 1) / 1000.0)
        await send(data)
    elif kind == "http_status":
        if state.parser is None:
            state.parser = HttpRequestScanner()
        await _http_status(toxic, state.parser, d, data, send, rng)
    else:  # slow_close, reset_peer act on close / by timer, not per chunk
        await send(data)


def _matches(toxic: Toxic, method: str, target: str) -> bool:
    a = toxic.attributes
    if a["method"] and a["method"].upper() != method.upper():
        return False
    pattern = a["path"]
    if not pattern:
        return True
    path = target.split("?", 1)[0]
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(path, pattern)
    return path.startswith(pattern)


async def _http_status(  # noqa: PLR0917 - internal
    toxic: Toxic,
    parser: HttpRequestScanner,
    d: Direction,
    data: bytes,
    send: Send,
    rng: random.Random,
) -> None:
    for item in parser.feed(data):
        if isinstance(item, bytes):
            await send(item)
            continue
        if not _matches(toxic, item.method, item.target):
            await send(item.raw)
            continue
        shared = toxic.shared
        first = toxic.attributes["first"]
        if first:
            seen = shared.get("matched", 0)
            shared["matched"] = seen + 1
            if seen >= first:
                await send(item.raw)
                continue
        if toxic.toxicity < 1.0 and not rng.random() < toxic.toxicity:
            await send(item.raw)
            continue
        shared["answered"] = shared.get("answered", 0) + 1
        await d.answer(_http_response(toxic))
        raise CloseLink()


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _http_response(toxic: Toxic) -> bytes:
    a = toxic.attributes
    status = int(a["status"])
    body = str(a["body"]).encode()
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Injected')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"X-Buttress-Toxic: {toxic.name}",
    ]
    if a["retry_after"]:
        lines.append(f"Retry-After: {a['retry_after']}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
