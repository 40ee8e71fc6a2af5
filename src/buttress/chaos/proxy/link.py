"""The fault proxy's connections ("links") and the two directions of each.

Each accepted connection becomes a :class:`Link` to the upstream with two :class:`Direction` pumps:
``upstream`` (client -> upstream) and ``downstream`` (upstream -> client).  A direction runs in one
of two phases and switches between them whenever the proxy's toxics change (existing connections are
affected at once, as in toxiproxy):

* **fast path**, no toxic on the direction: a readiness-driven loop (``add_reader`` /
  ``add_writer``, so one thread serves every connection) that ``recv_into`` a shared scratch
  buffer (``COPY_BUFFER``, 1 MiB) and ``send`` from it: two copies, but no per-chunk object, task
  or event-loop round trip.  With ``splice=True`` on Linux the same loop moves the bytes socket ->
  pipe -> socket with :func:`os.splice`, never entering Python; it is not the default because the
  copy loop moved more bytes per second in 11 of 12 paired comparisons (docs/chaos.md).
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
import functools
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Protocol

from .toxics import CloseLink, Toxic, ToxicState, process

__all__ = [
    "BUFFER_LIMIT",
    "COPY_BUFFER",
    "SPLICE_AVAILABLE",
    "Direction",
    "Link",
    "LinkOwner",
    "reset_close",
]

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


class ServerSettings(Protocol):
    """What a link reads from the server: whether to splice, and the copy path's scratch buffer."""

    @property
    def splice(self) -> bool: ...

    @property
    def scratch(self) -> memoryview: ...


class LinkOwner(Protocol):
    """What a link needs from the listener that accepted it (a :class:`~.server.Proxy`)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def server(self) -> ServerSettings: ...

    def toxic_list(self) -> list[Toxic]:
        """The proxy's toxics, in order."""
        ...


def reset_close(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


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
        close = False
        for name in list(self.active):
            if name not in seen:
                old = self.active.pop(name)
                if old.timer is not None:
                    old.timer.cancel()
                # toxiproxy's timeout toxic closes the connection when it is removed
                # (its Cleanup), whether or not data was held.
                t = old.toxic
                if old.enabled and t.type == "timeout" and t.attributes["on_remove"] == "close":
                    close = True
        self.toxics = [(a.toxic, a.state) for a in self.active.values() if a.enabled]
        self._change.set()
        self._change = asyncio.Event()
        self._ready.set()
        if self._splice_fut is not None and self.toxics:
            self._stop_splice_if_idle()
        if close:
            self.link.abort(False)

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

    def acting(self, name: str) -> Toxic | None:
        """The toxic named ``name`` if it acts on this direction now, else None."""
        cur = self.active.get(name)
        return cur.toxic if cur is not None and cur.enabled else None

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

    def _read_once(self, read: Callable[[], int]) -> int:
        """One read of a fast path (``read`` moves what is ready and returns its size): the size,
        or 0 when nothing was ready or the phase has ended (EOF or an error)."""
        try:
            n = read()
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as e:
            self._finish_splice(e)
            return 0
        if n == 0:
            self._finish_splice(_EOF)
            return 0
        self.bytes += n
        return n

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
        read = functools.partial(splice, src_fd, pw, PIPE_SIZE, flags=flags)

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
                n = self._read_once(read)
                if not n:
                    return
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
        read = functools.partial(src.recv_into, scratch)

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
                n = self._read_once(read)
                if not n or not flush(scratch[:n]) or n < len(scratch):
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

    def __init__(self, proxy: LinkOwner, client: socket.socket, upstream: socket.socket) -> None:
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
        self._tasks = [asyncio.ensure_future(self.up.run()), asyncio.ensure_future(self.down.run())]
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
                reset_close(s)
            else:
                with contextlib.suppress(OSError):
                    s.close()
        for d in (self.up, self.down):
            d._close_pipe()
