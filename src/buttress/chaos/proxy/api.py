"""The control API: toxiproxy's HTTP API, endpoint for endpoint; toxiproxy clients work unchanged.

* ``GET /version``: ``{"version": "X.Y.Z"}`` (Buttress's version, a semver string as toxiproxy's)
* ``POST /reset``: enable every proxy, remove every toxic (204)
* ``GET /proxies``: ``{name: proxy}``
* ``POST /proxies``: create ``{name, upstream, listen?, enabled?, toxics?}`` (201; 409 if it exists)
* ``POST /populate``: create or replace a list of proxies (201, ``{"proxies": [...]}``)
* ``GET /proxies/{proxy}``: the proxy with its toxics
* ``POST`` or ``PATCH /proxies/{proxy}``: update ``listen``, ``upstream``, ``enabled``
* ``DELETE /proxies/{proxy}``: delete (204)
* ``GET /proxies/{proxy}/toxics``: the toxics, in the order they apply
* ``POST /proxies/{proxy}/toxics``: add ``{type, name?, stream?, toxicity?, attributes}``
* ``GET /proxies/{proxy}/toxics/{toxic}``: one toxic
* ``POST`` or ``PATCH /proxies/{proxy}/toxics/{toxic}``: update (attributes merge)
* ``DELETE /proxies/{proxy}/toxics/{toxic}``: remove (204)

A proxy is ``{"name", "listen", "upstream", "enabled", "toxics": [...]}``; a toxic is
``{"name", "type", "stream", "toxicity", "attributes"}``.  Every error is a 4xx with
``{"error": message, "status": code}``, as toxiproxy answers: malformed HTTP or JSON (400), a
value of the wrong type (a float or a number beyond int64 where toxiproxy has an integer, a
``listen`` that is not a string: 400), an unknown path (404; paths match exactly, as toxiproxy's
router matches them: ``/proxies/`` with a trailing slash is not ``/proxies``) or method (405), a
duplicate (409).  No request gets a 5xx.  Like toxiproxy, requests whose
``User-Agent`` starts with ``Mozilla/`` are refused (403), so a web page cannot drive the API from a
browser.  The API listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from buttress.chaos.versions import buttress_version

from .server import ProxyServer
from .toxics import ApiError

__all__ = ["VERSION", "ControlAPI", "ProxyThread", "serve_forever"]

VERSION = buttress_version()  # a semver string, as toxiproxy's /version gives
MAX_BODY = 1024 * 1024
_log = logging.getLogger("buttress.proxy.api")

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
}


class _BadRequest(Exception):
    pass


async def _readline(reader: asyncio.StreamReader, what: str) -> bytes:
    try:
        return await reader.readline()
    except (asyncio.LimitOverrunError, ValueError):
        raise _BadRequest(f"bad request: {what} too long") from None


class ControlAPI:
    """Serves the control API of one :class:`ProxyServer` (on its event loop)."""

    def __init__(self, proxies: ProxyServer) -> None:
        self.proxies = proxies
        self.server: asyncio.Server | None = None
        self.requests = 0

    async def start(self, host: str = "127.0.0.1", port: int = 8474) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        self.server = await asyncio.start_server(self._connection, host, port, limit=MAX_BODY)
        sock = self.server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
        self.proxies.close()

    # -- HTTP/1.1 -------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    req = await self._read_request(reader)
                except _BadRequest as e:
                    await self._write(writer, 400, {"error": str(e), "status": 400}, close=True)
                    return
                if req is None:
                    return
                method, path, headers, body, keep = req
                status, payload = self.handle(method, path, headers, body)
                await self._write(writer, status, payload, close=not keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except Exception:  # a bug: log it, drop this connection, keep serving the others
            _log.exception("control API: connection failed")
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader
    ) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        try:
            line = await reader.readline()
        except (asyncio.LimitOverrunError, ValueError):
            raise _BadRequest("bad request: request line too long") from None
        if not line:
            return None
        try:
            text = line.decode("ascii").rstrip("\r\n")
        except UnicodeDecodeError:
            raise _BadRequest("bad request: request line is not ASCII") from None
        parts = text.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"bad request: malformed request line {text[:80]!r}")
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            try:
                hline = await reader.readline()
            except (asyncio.LimitOverrunError, ValueError):
                raise _BadRequest("bad request: header line too long") from None
            if hline in (b"\r\n", b"\n"):
                break
            if not hline:
                raise _BadRequest("bad request: headers ended early")
            name, sep, value = hline.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(f"bad request: malformed header {name.strip()[:40]!r}")
            headers[name.strip().lower()] = value.strip()
            if len(headers) > 100:
                raise _BadRequest("bad request: too many headers")
        body = b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._read_chunked(reader)
        elif "content-length" in headers:
            text = headers["content-length"]
            if not (text.isascii() and text.isdigit()):
                if text.startswith("-") and text[1:].isdigit():
                    raise _BadRequest("bad request: negative Content-Length")
                raise _BadRequest("bad request: Content-Length is not a number")
            length = int(text) if len(text) <= 9 else MAX_BODY + 1
            if length > MAX_BODY:
                raise _BadRequest("bad request: body over 1 MiB")
            body = await reader.readexactly(length)
        conn = headers.get("connection", "").lower()
        keep = (version == "HTTP/1.1" and conn != "close") or conn == "keep-alive"
        return method, target, headers, body, keep

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        """A chunked body; each chunk size is checked against ``MAX_BODY`` before it is read."""
        out = bytearray()
        while True:
            size_line = await _readline(reader, "chunk size line")
            digits = size_line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):
                raise _BadRequest(f"bad request: malformed chunk size {digits[:20]!r}")
            if len(digits) > 8 or len(out) + int(digits, 16) > MAX_BODY:
                raise _BadRequest("bad request: body over 1 MiB")
            size = int(digits, 16)
            if size == 0:
                while (await _readline(reader, "trailer")) not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += await reader.readexactly(size)
            if await _readline(reader, "chunk end") not in (b"\r\n", b"\n"):
                raise _BadRequest("bad request: a chunk is not followed by CRLF")

    async def _write(
        self, writer: asyncio.StreamWriter, status: int, payload: Any, *, close: bool
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
        if status == 204:
            data = b""
        else:
            data = (json.dumps(payload) + "\n").encode()
            head.append("Content-Type: application/json")
        head.append(f"Content-Length: {len(data)}")
        if close:
            head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

    # -- routing --------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        """Dispatch one request; returns (status, JSON payload)."""
        self.requests += 1
        try:
            if headers.get("user-agent", "").startswith("Mozilla/"):
                raise ApiError("User agent not allowed", 403)
            return self._route(method, target.split("?", 1)[0], body)
        except ApiError as e:
            return e.status, {"error": e.message, "status": e.status}
        except Exception as e:  # never crash the API on a request
            _log.exception("control API failed on %s %s", method, target)
            return 500, {"error": f"internal error: {e}", "status": 500}

    def _json(self, body: bytes) -> Any:
        if not body.strip():
            raise ApiError("bad request body: empty, expected JSON")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as e:  # also over-long integers, too deep nesting
            raise ApiError(f"bad request body: {e}") from None

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        # As toxiproxy's router (gorilla/mux, StrictSlash off): paths match exactly, so a
        # trailing slash ("/proxies/") names no endpoint (404).  An empty segment ("//proxies")
        # is a 404 too (toxiproxy's router redirects it to the cleaned path instead).
        parts = [unquote(p) for p in path.split("/")[1:]] if path.startswith("/") else [""]
        if "" in parts:
            raise ApiError(f"no such endpoint: {path[:200]}", 404)
        ps = self.proxies
        routes: dict[str, Callable[[], tuple[int, Any]]]
        if parts == ["version"]:
            routes = {"GET": lambda: (200, {"version": VERSION})}
        elif parts == ["reset"]:
            routes = {"POST": lambda: _none(ps.reset)}
        elif parts == ["proxies"]:
            routes = {
                "GET": lambda: (200, {n: p.to_json() for n, p in ps.proxies.items()}),
                "POST": lambda: (201, ps.create(self._json(body)).to_json()),
            }
        elif parts == ["populate"]:
            routes = {
                "POST": lambda: (
                    201,
                    {"proxies": [p.to_json() for p in ps.populate(self._json(body))]},
                )
            }
        elif len(parts) == 2 and parts[0] == "proxies":
            name = parts[1]
            update = lambda: (200, ps.update(name, self._json(body)).to_json())  # noqa: E731
            routes = {
                "GET": lambda: (200, ps.get(name).to_json()),
                "POST": update,
                "PATCH": update,
                "DELETE": lambda: _none(ps.delete, name),
            }
        elif len(parts) == 3 and parts[0] == "proxies" and parts[2] == "toxics":
            name = parts[1]
            routes = {
                "GET": lambda: (200, [t.to_json() for t in ps.get(name).toxic_list()]),
                "POST": lambda: (200, ps.add_toxic(name, self._json(body)).to_json()),
            }
        elif len(parts) == 4 and parts[0] == "proxies" and parts[2] == "toxics":
            name, toxic = parts[1], parts[3]
            tupdate = lambda: (  # noqa: E731
                200,
                ps.update_toxic(name, toxic, self._json(body)).to_json(),
            )
            routes = {
                "GET": lambda: (200, ps.get_toxic(name, toxic).to_json()),
                "POST": tupdate,
                "PATCH": tupdate,
                "DELETE": lambda: _none(ps.remove_toxic, name, toxic),
            }
        else:
            raise ApiError(f"no such endpoint: {path[:200]}", 404)
        handler = routes.get(method)
        if handler is None:
            raise ApiError(f"method {method[:20]} not allowed on {path[:200]}", 405)
        return handler()


def _none(fn: Callable[..., None], *args: str) -> tuple[int, Any]:
    fn(*args)
    return 204, None


class ProxyThread:
    """A proxy server and its control API on their own event loop, in a daemon thread.

    For tests and for embedding in synchronous programs::

        with ProxyThread() as px:
            client = Client(px.url)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        splice: bool = False,
        seed: int | None = None,
        congestion: str = "auto",
    ) -> None:
        self.host = host
        self.port = port
        self.splice = splice
        self.seed = seed
        self.congestion = congestion
        self.loop: asyncio.AbstractEventLoop | None = None
        self.api: ControlAPI | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def proxies(self) -> ProxyServer:
        assert self.api is not None
        return self.api.proxies

    def start(self) -> ProxyThread:
        self._thread = threading.Thread(target=self._main, name="buttress-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        asyncio.run(self._amain())

    async def _amain(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.api = ControlAPI(
                ProxyServer(splice=self.splice, seed=self.seed, congestion=self.congestion)
            )
            self.host, self.port = await self.api.start(self.host, self.port)
        except BaseException as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.api.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the proxy's loop and return its result (for inspection from tests)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ProxyThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8474,
    *,
    config: str | Path | None = None,
    splice: bool = False,
    seed: int | None = None,
    congestion: str = "auto",
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run the proxy and its API until SIGINT or SIGTERM (``buttress proxy serve``).

    ``config`` is a JSON file with a list of proxies, created at start as by ``POST /populate``.
    """
    try:
        server = ProxyServer(splice=splice, seed=seed, congestion=congestion)
    except ValueError as e:
        raise ApiError(str(e)) from None
    api = ControlAPI(server)
    if config is not None:
        text = Path(config).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ApiError(f"{config}:{e.lineno}:{e.colno}: not JSON ({e.msg})") from None
        try:
            api.proxies.populate(data)
        except ApiError as e:
            raise ApiError(f"{config}: {e.message}") from None
    bound = await api.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Event-loop signal handlers exist on Unix only, and only in the main thread; elsewhere the
    # server stops through `stop` (Ctrl-C still raises KeyboardInterrupt in the caller).
    if sys.platform != "win32" and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        on_ready(*bound)
    try:
        await stop.wait()
    finally:
        await api.close()
