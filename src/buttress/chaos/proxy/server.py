"""The fault proxy: listeners, connections ("links") and the two directions of each.

Each accepted connection becomes a :class:`Link` to the upstream with two :class:`Direction` pumps:
``upstream`` (client -> upstream) and ``downstream`` (upstream -> client).  A direction runs in one
of two phases and switches between them whenever the proxy's toxics change (existing connections are
affected at once, as in toxiproxy):

* **fast path**, no toxic on the direction: on Linux the bytes go socket -> pipe -> socket with
  :func:`os.splice`, never entering Python; readiness comes from the event loop (``add_reader`` /
  ``add_writer``), so one thread serves every connection.  Elsewhere, or with ``splice=False``, the
  same readiness-driven loop with ``recv_into`` a shared scratch buffer (``COPY_BUFFER``, 1 MiB)
  and ``send`` from it: two copies, but no per-chunk object, task or event-loop round trip.
  Either way each readiness event moves what is ready (at most ``SPLICE_ROUNDS`` buffer-loads, so
  one busy connection cannot starve the others) and only a destination that is full makes the
  direction wait for writability.
* **toxic path**: a readiness callback reads chunks (stamped with their arrival time) into a bounded
  buffer; a writer coroutine runs each chunk through the direction's active toxics in order and
  sends what comes out.  Reading stops while more than ``BUFFER_LIMIT`` bytes wait, so a slow toxic
  pushes back on the sender as a slow network would.

When one side closes, the close is passed on (``shutdown(SHUT_WR)``) after any ``slow_close`` delay;
the link ends when both directions have ended.  An error (a reset) on either side resets the other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Any

from .congestion import AUTO, apply_congestion, check_congestion
from .toxics import ApiError, CloseLink, Toxic, ToxicState, make_toxic, process

__all__ = [
    "BUFFER_LIMIT",
    "COPY_BUFFER",
    "Direction",
    "Link",
    "Proxy",
    "ProxyServer",
    "SPLICE_AVAILABLE",
]

_log = logging.getLogger("buttress.proxy")

SPLICE_AVAILABLE = sys.platform.startswith("linux") and hasattr(os, "splice")
CHUNK = 64 * 1024
PIPE_SIZE = 256 * 1024
SPLICE_ROUNDS = 16
BUFFER_LIMIT = 256 * 1024
COPY_BUFFER = 1024 * 1024
_SPLICE_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if SPLICE_AVAILABLE else 0
_F_SETPIPE_SZ = 1031
_EOF = "eof"
_CHANGED = "changed"


def _reset_close(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _split_addr(addr: str, what: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ApiError(f"{what} must be host:port, got {addr!r}")
    host = host.strip("[]") or "127.0.0.1"
    if not (host.isascii() and host.isprintable()) or " " in host:
        raise ApiError(f"{what} host must be an IP address or an ASCII name, got {addr!r}")
    return host, int(port)


class _Active:
    __slots__ = ("enabled", "state", "timer", "toxic")

    def __init__(self, toxic: Toxic, enabled: bool) -> None:
        self.toxic = toxic
        self.enabled = enabled
        self.state = ToxicState()
        self.timer: asyncio.TimerHandle | None = None


class Direction:
    """One direction of a link: reads ``src``, writes ``dst``, through this direction's toxics."""

    def __init__(self, link: Link, stream: str, src: socket.socket, dst: socket.socket) -> None:
        self.link = link
        self.stream = stream
        self.src = src
        self.dst = dst
        self.loop: asyncio.AbstractEventLoop = link.loop
        self.rng = link.proxy.rng
        self.active: dict[str, _Active] = {}
        self.toxics: list[tuple[Toxic, ToxicState]] = []
        self._buf: collections.deque[tuple[bytes | BaseException | None, float]] = (
            collections.deque()
        )
        self._buffered = 0
        self._reading = False
        self._eof = False
        self._ready = asyncio.Event()
        self._change = asyncio.Event()
        self._splice_fut: asyncio.Future[str] | None = None
        self._splice_pending = 0
        self._pipe: tuple[int, int] | None = None
        self.bytes = 0
        # What moves the bytes now: "splice" or "copy" (the fast paths), "toxic" or "idle".
        self.phase = "idle"

    # -- toxics ---------------------------------------------------------------

    def refresh(self, toxics: list[Toxic]) -> None:
        """Bring the active set in line with the proxy's toxics (draws for new or changed ones)."""
        seen: set[str] = set()
        for t in toxics:
            if not t.applies_to(self.stream):
                continue
            seen.add(t.name)
            cur = self.active.get(t.name)
            if cur is not None and cur.toxic is t:
                continue
            if cur is not None and cur.timer is not None:
                cur.timer.cancel()
            enabled = t.toxicity >= 1.0 or (t.toxicity > 0.0 and self.rng.random() < t.toxicity)
            if t.type == "http_status":
                enabled = True  # drawn per request
            act = _Active(t, enabled)
            self.active[t.name] = act
            if enabled:
                self._arm(act)
        for name in list(self.active):
            if name not in seen:
                old = self.active.pop(name)
                if old.timer is not None:
                    old.timer.cancel()
        self.toxics = [(a.toxic, a.state) for a in self.active.values() if a.enabled]
        self._change.set()
        self._change = asyncio.Event()
        self._ready.set()
        if self._splice_fut is not None and self.toxics:
            self._stop_splice_if_idle()

    def _arm(self, act: _Active) -> None:
        t = act.toxic
        if t.type == "reset_peer":
            act.timer = self.loop.call_later(
                t.attributes["timeout"] / 1000.0, self.link.abort, True
            )
        elif t.type == "timeout" and t.attributes["timeout"] > 0:
            act.timer = self.loop.call_later(
                t.attributes["timeout"] / 1000.0, self.link.abort, False
            )

    def _enabled(self, toxic: Toxic) -> bool:
        cur = self.active.get(toxic.name)
        return cur is not None and cur.toxic is toxic and cur.enabled

    async def hold_while(self, toxic: Toxic) -> None:
        """Wait (holding the data in hand) until ``toxic`` no longer acts on this direction."""
        while self._enabled(toxic):
            await self._change.wait()

    async def answer(self, data: bytes) -> None:
        """Send ``data`` back to the side this direction reads from (an HTTP toxic's response)."""
        await self.loop.sock_sendall(self.src, data)

    def _slow_close_delay(self) -> float:
        return max(
            (t.attributes["delay"] for t, _ in self.toxics if t.type == "slow_close"), default=0.0
        )

    # -- the pump -------------------------------------------------------------

    async def run(self) -> None:
        use_splice = self.link.proxy.server.splice and SPLICE_AVAILABLE
        try:
            while True:
                if not self.toxics:
                    self.phase = "splice" if use_splice else "copy"
                    result = await (self._splice_phase() if use_splice else self._copy_phase())
                else:
                    self.phase = "toxic"
                    result = await self._toxic_phase()
                if result == _EOF:
                    break
            delay = self._slow_close_delay()
            if delay:
                await asyncio.sleep(delay / 1000.0)
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)
        except CloseLink as e:
            self.link.abort(e.reset)
        except OSError:
            # A reset or a broken pipe on either side: pass it on as a reset.
            self.link.abort(True)
        finally:
            self.phase = "idle"
            self._stop_reading()
            self._close_pipe()

    # fast path: splice
    # -------------------------------------------------------------------------------

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._pipe = None

    def _stop_splice_if_idle(self) -> None:
        fut = self._splice_fut
        if fut is not None and not fut.done() and self._splice_pending == 0:
            self._finish_splice(_CHANGED)

    def _finish_splice(self, result: str | BaseException) -> None:
        fut = self._splice_fut
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(self.src.fileno())
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_writer(self.dst.fileno())
        if fut is not None and not fut.done():
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _run_fast_path(
        self, fut: asyncio.Future[str], src_fd: int, on_readable: Callable[[], None]
    ) -> str:
        """Start a fast path's readiness loop and wait for it to end (EOF, error or a change)."""
        self.loop.add_reader(src_fd, on_readable)
        try:
            return await fut
        finally:
            self._splice_fut = None
            if not fut.done():
                self._finish_splice(_CHANGED)

    async def _splice_phase(self) -> str:
        if self._pipe is None:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
            self._pipe = (r, w)
        pr, pw = self._pipe
        src_fd, dst_fd = self.src.fileno(), self.dst.fileno()
        loop = self.loop
        fut: asyncio.Future[str] = loop.create_future()
        self._splice_fut = fut
        self._splice_pending = 0
        splice = os.splice
        flags = _SPLICE_FLAGS

        def drain() -> None:
            while self._splice_pending:
                try:
                    m = splice(pr, dst_fd, self._splice_pending, flags=flags)
                except BlockingIOError:
                    loop.remove_reader(src_fd)
                    loop.add_writer(dst_fd, on_writable)
                    return
                except OSError as e:
                    self._finish_splice(e)
                    return
                self._splice_pending -= m
            if not self.toxics:
                return
            self._finish_splice(_CHANGED)

        def on_readable() -> None:
            # Move as much as is ready before going back to the selector: one readiness event
            # usually carries several pipe-loads on a fast stream.
            for _ in range(SPLICE_ROUNDS):
                try:
                    n = splice(src_fd, pw, PIPE_SIZE, flags=flags)
                except BlockingIOError:
                    return
                except OSError as e:
                    self._finish_splice(e)
                    return
                if n == 0:
                    self._finish_splice(_EOF)
                    return
                self.bytes += n
                self._splice_pending = n
                drain()
                if self._splice_pending or fut.done():
                    return

        def on_writable() -> None:
            loop.remove_writer(dst_fd)
            drain()
            if self._splice_pending == 0 and not fut.done():
                loop.add_reader(src_fd, on_readable)

        return await self._run_fast_path(fut, src_fd, on_readable)

    # fast path: copy through a shared buffer
    # -------------------------------------------------------------------------------

    async def _copy_phase(self) -> str:
        """The fast path without splice: ``recv_into`` the server's scratch buffer, ``send`` from
        it at once.  The scratch buffer is free again when each callback returns (the loop runs
        one callback at a time); only what the destination would not take is kept, as bytes."""
        scratch = self.link.proxy.server.scratch
        src, dst = self.src, self.dst
        src_fd, dst_fd = src.fileno(), dst.fileno()
        loop = self.loop
        fut: asyncio.Future[str] = loop.create_future()
        self._splice_fut = fut
        self._splice_pending = 0
        left: list[memoryview] = []  # what the destination has not taken yet

        def flush(data: memoryview) -> bool:
            """Send ``data``; True when all of it went, else keep the rest and wait."""
            while data:
                try:
                    m = dst.send(data)
                except (BlockingIOError, InterruptedError):
                    # Keep the rest (copied out of the shared buffer, once).
                    left.append(data if data.obj is not scratch.obj else memoryview(bytes(data)))
                    self._splice_pending = len(data)
                    loop.remove_reader(src_fd)
                    loop.add_writer(dst_fd, on_writable)
                    return False
                except OSError as e:
                    self._finish_splice(e)
                    return False
                data = data[m:]
            self._splice_pending = 0
            if self.toxics:
                self._finish_splice(_CHANGED)
                return False
            return True

        def on_readable() -> None:
            for _ in range(SPLICE_ROUNDS):
                try:
                    n = src.recv_into(scratch)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as e:
                    self._finish_splice(e)
                    return
                if n == 0:
                    self._finish_splice(_EOF)
                    return
                self.bytes += n
                if not flush(scratch[:n]) or n < len(scratch):
                    return

        def on_writable() -> None:
            loop.remove_writer(dst_fd)
            if flush(left.pop()) and not fut.done():
                loop.add_reader(src_fd, on_readable)

        return await self._run_fast_path(fut, src_fd, on_readable)

    # toxic path
    # --------------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = self.src.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._buf.append((e, time.monotonic()))
            self._eof = True
            self._stop_reading()
            self._ready.set()
            return
        self._buf.append((data or None, time.monotonic()))
        if not data:
            self._eof = True
            self._stop_reading()
        else:
            self.bytes += len(data)
            self._buffered += len(data)
            if self._buffered > BUFFER_LIMIT:
                self._stop_reading()
        self._ready.set()

    def _start_reading(self) -> None:
        if not self._reading and not self._eof:
            self._reading = True
            self.loop.add_reader(self.src.fileno(), self._on_readable)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self.src.fileno())

    async def _send(self, data: bytes) -> None:
        if data:
            await self.loop.sock_sendall(self.dst, data)

    async def _through(self, data: bytes, arrived: float) -> None:
        chain = list(self.toxics)
        rng = self.rng

        async def stage(i: int, piece: bytes) -> None:
            if i == len(chain):
                await self._send(piece)
                return
            toxic, state = chain[i]

            async def nxt(p: bytes) -> None:
                await stage(i + 1, p)

            await process(toxic, state, self, piece, arrived, nxt, rng)

        await stage(0, data)

    async def _toxic_phase(self) -> str:
        """Until EOF (``_EOF``) or until no toxic is left and nothing is buffered (``_CHANGED``:
        back to a fast path)."""
        while True:
            if self._buf:
                data, arrived = self._buf.popleft()
                if data is None:
                    return _EOF
                if isinstance(data, BaseException):
                    raise data
                self._buffered -= len(data)
                if self._buffered <= BUFFER_LIMIT // 2:
                    self._start_reading()
                await self._through(data, arrived)
                continue
            if not self.toxics:
                self._stop_reading()
                if not self._buf:
                    return _CHANGED
                continue
            self._ready.clear()
            self._start_reading()
            await self._ready.wait()


class Link:
    """One proxied connection: the client socket, the upstream socket and two directions."""

    def __init__(self, proxy: Proxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.loop: asyncio.AbstractEventLoop = proxy.loop
        self.client = client
        self.upstream = upstream
        self.up = Direction(self, "upstream", client, upstream)
        self.down = Direction(self, "downstream", upstream, client)
        self._tasks: list[asyncio.Task[None]] = []
        self.closed = False

    def refresh(self, toxics: list[Toxic]) -> None:
        self.up.refresh(toxics)
        self.down.refresh(toxics)

    async def run(self) -> None:
        self.refresh(self.proxy.toxic_list())
        self._tasks = [
            asyncio.ensure_future(self.up.run()),
            asyncio.ensure_future(self.down.run()),
        ]
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self.abort(False)

    def abort(self, reset: bool) -> None:
        """End the link now; ``reset``: with TCP RSTs to both sides."""
        if self.closed:
            return
        self.closed = True
        for d in (self.up, self.down):
            d._stop_reading()
            d._finish_splice(_CHANGED)
            for act in d.active.values():
                if act.timer is not None:
                    act.timer.cancel()
        for task in self._tasks:
            if not task.done() and task is not asyncio.current_task():
                task.cancel()
        for s in (self.client, self.upstream):
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(s.fileno())
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_writer(s.fileno())
            if reset:
                _reset_close(s)
            else:
                with contextlib.suppress(OSError):
                    s.close()
        for d in (self.up, self.down):
            d._close_pipe()


class Proxy:
    """A named listener forwarding to ``upstream`` through its toxics."""

    def __init__(
        self, server: ProxyServer, name: str, listen: str, upstream: str, enabled: bool
    ) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop = server.loop
        self.rng = server.rng
        self.name = name
        self.listen = listen or "127.0.0.1:0"
        self.upstream = upstream
        self.enabled = False
        self.want_enabled = enabled
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._sock: socket.socket | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        _split_addr(self.upstream, "upstream")
        _split_addr(self.listen, "listen")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxics.values()],
        }

    def toxic_list(self) -> list[Toxic]:
        return list(self.toxics.values())

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self.enabled:
            return
        host, port = _split_addr(self.listen, "listen")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1024)
        except OSError as e:
            sock.close()
            raise ApiError(f"cannot listen on {self.listen}: {e.strerror or e}", 409) from None
        except (ValueError, TypeError) as e:  # what the host check cannot foresee
            sock.close()
            raise ApiError(f"cannot listen on {self.listen!r}: {e}") from None
        sock.setblocking(False)
        bound = sock.getsockname()
        self.listen = (
            f"[{bound[0]}]:{bound[1]}" if family == socket.AF_INET6 else f"{bound[0]}:{bound[1]}"
        )
        self._sock = sock
        self.loop.add_reader(sock.fileno(), self._on_accept)
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and drop every connection (toxiproxy's "disabled")."""
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for link in list(self.links):
            link.abort(False)
        for task in list(self._handlers):
            task.cancel()
        self.enabled = False

    def set_toxics_changed(self) -> None:
        toxics = self.toxic_list()
        for link in list(self.links):
            link.refresh(toxics)

    # -- connections ----------------------------------------------------------

    def _on_accept(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    _log.error(
                        "proxy %s: out of file descriptors, accept paused briefly", self.name
                    )
                    self.loop.remove_reader(sock.fileno())
                    self.loop.call_later(0.05, self._resume_accept)
                return
            task = asyncio.ensure_future(self._handle(conn))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    def _resume_accept(self) -> None:
        if self._sock is not None:
            self.loop.add_reader(self._sock.fileno(), self._on_accept)

    async def _handle(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            apply_congestion(conn, self.server.congestion, conn.getpeername()[0])
        for t in self.toxic_list():
            if not t.connection_level:
                continue
            if not (t.toxicity >= 1.0 or (t.toxicity > 0 and self.rng.random() < t.toxicity)):
                continue
            if t.type == "connect_refuse":
                _reset_close(conn)
                return
            if t.type == "connect_delay":
                try:
                    await asyncio.sleep(t.attributes["delay"] / 1000.0)
                except asyncio.CancelledError:
                    conn.close()
                    raise
        host, port = _split_addr(self.upstream, "upstream")
        up: socket.socket | None = None
        try:
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, stype, proto, _, addr = infos[0]
            up = socket.socket(family, stype, proto)
            up.setblocking(False)
            with contextlib.suppress(OSError):
                up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            apply_congestion(up, self.server.congestion, str(addr[0]))
            await asyncio.wait_for(self.loop.sock_connect(up, addr), 10.0)
        except (OSError, TimeoutError) as e:
            # The upstream is down: refuse the client cleanly, with a reset, and go on serving.
            self.server.upstream_errors += 1
            _log.warning("proxy %s: upstream %s unreachable: %s", self.name, self.upstream, e)
            if up is not None:
                up.close()
            _reset_close(conn)
            return
        except asyncio.CancelledError:
            if up is not None:
                up.close()
            conn.close()
            raise
        if not self.enabled:
            up.close()
            conn.close()
            return
        link = Link(self, conn, up)
        self.links.add(link)
        try:
            await link.run()
        finally:
            self.links.discard(link)


class ProxyServer:
    """The collection of proxies behind one control API (see :mod:`buttress.chaos.proxy.api`).

    :param splice: use the ``os.splice`` fast path where available (default True).
    :param seed: seed for toxicity draws and jitter, for repeatable runs.
    :param congestion: TCP congestion control for the proxy's own sockets: ``"auto"`` (Reno
        towards loopback peers, the system default otherwise), ``"system"`` or an algorithm name;
        see :mod:`buttress.chaos.proxy.congestion`.  :class:`ValueError` if it cannot be used.

    Every method must be called on the server's event loop.
    """

    def __init__(
        self, *, splice: bool = True, seed: int | None = None, congestion: str = AUTO
    ) -> None:
        self.loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        self.splice = splice
        self.congestion = check_congestion(congestion)
        self.rng = random.Random(seed)
        self.proxies: dict[str, Proxy] = {}
        self.upstream_errors = 0
        # The copy fast path's read buffer, shared by every connection of this loop.
        self.scratch = memoryview(bytearray(COPY_BUFFER))

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError("proxy not found", 404) from None

    def create(self, body: Any) -> Proxy:
        if not isinstance(body, dict):
            raise ApiError("bad request body: expected a JSON object")
        name, upstream = body.get("name"), body.get("upstream")
        if not isinstance(name, str) or not name:
            raise ApiError("missing required field: name")
        if not isinstance(upstream, str) or not upstream:
            raise ApiError("missing required field: upstream")
        listen = body.get("listen") or "127.0.0.1:0"
        enabled = body.get("enabled", True)
        if not isinstance(listen, str) or not isinstance(enabled, bool):
            raise ApiError("bad request body: listen must be a string and enabled a boolean")
        if name in self.proxies:
            raise ApiError("proxy already exists", 409)
        toxics = body.get("toxics")
        if toxics is None:
            toxics = []
        if not isinstance(toxics, list):
            raise ApiError(f"bad request body: toxics must be a JSON array, got {toxics!r:.80}")
        proxy = Proxy(self, name, listen, upstream, enabled)
        for i, tbody in enumerate(toxics):
            try:
                t = make_toxic(tbody)
            except ApiError as e:
                raise ApiError(f"toxics[{i}]: {e.message}", e.status) from None
            proxy.toxics[t.name] = t
        if enabled:
            proxy.start()
        self.proxies[name] = proxy
        return proxy

    def update(self, name: str, body: Any) -> Proxy:
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise ApiError("bad request body: expected a JSON object")
        listen = body.get("listen", proxy.listen)
        upstream = body.get("upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        if (
            not isinstance(listen, str)
            or not isinstance(upstream, str)
            or not isinstance(enabled, bool)
        ):
            raise ApiError("bad request body: listen and upstream are strings, enabled a boolean")
        _split_addr(upstream, "upstream")
        _split_addr(listen, "listen")
        restart = listen != proxy.listen
        proxy.upstream = upstream
        if restart and proxy.enabled:
            proxy.stop()
        proxy.listen = listen
        if enabled and not proxy.enabled:
            proxy.start()
        elif not enabled and proxy.enabled:
            proxy.stop()
        return proxy

    def delete(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in self.proxies.values():
            proxy.toxics.clear()
            proxy.start()
            proxy.set_toxics_changed()

    def populate(self, body: Any) -> list[Proxy]:
        """Create or replace proxies from a list (replacing those whose listen or upstream
        differ)."""
        if not isinstance(body, list):
            raise ApiError("bad request body: expected a JSON array of proxies")
        made: list[Proxy] = []
        for i, item in enumerate(body):
            if not isinstance(item, dict):
                raise ApiError(f"[{i}]: expected a JSON object")
            name = item.get("name")
            existing = self.proxies.get(name) if isinstance(name, str) else None
            if existing is not None:
                same = existing.upstream == item.get("upstream") and (
                    "listen" not in item or existing.listen == item.get("listen")
                )
                if same:
                    made.append(existing)
                    continue
                self.delete(existing.name)
            try:
                made.append(self.create({**item, "enabled": item.get("enabled", True)}))
            except ApiError as e:
                raise ApiError(f"[{i}]: {e.message}", e.status) from None
        return made

    def add_toxic(self, name: str, body: Any) -> Toxic:
        proxy = self.get(name)
        t = make_toxic(body)
        if t.name in proxy.toxics:
            raise ApiError("toxic already exists", 409)
        proxy.toxics[t.name] = t
        proxy.set_toxics_changed()
        return t

    def get_toxic(self, name: str, toxic: str) -> Toxic:
        proxy = self.get(name)
        try:
            return proxy.toxics[toxic]
        except KeyError:
            raise ApiError("toxic not found", 404) from None

    def update_toxic(self, name: str, toxic: str, body: Any) -> Toxic:
        proxy = self.get(name)
        old = self.get_toxic(name, toxic)
        if isinstance(body, dict) and body.get("name", toxic) != toxic:
            raise ApiError("a toxic cannot be renamed")
        t = make_toxic(body, existing=old)
        proxy.toxics[toxic] = t
        proxy.set_toxics_changed()
        return t

    def remove_toxic(self, name: str, toxic: str) -> None:
        proxy = self.get(name)
        if toxic not in proxy.toxics:
            raise ApiError("toxic not found", 404)
        del proxy.toxics[toxic]
        proxy.set_toxics_changed()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
