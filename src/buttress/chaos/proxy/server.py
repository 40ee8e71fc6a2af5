"""The fault proxy's listeners (:class:`Proxy`) and the collection behind the control API
(:class:`ProxyServer`).  What happens on each accepted connection is in :mod:`.link`."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
from typing import Any, TypeVar

from buttress.records import attributes

from .congestion import AUTO, apply_congestion, check_congestion
from .link import COPY_BUFFER, Link, reset_close
from .toxics import ApiError, Toxic, make_toxic

__all__ = ["Proxy", "ProxyServer"]

T = TypeVar("T")

_log = logging.getLogger("buttress.proxy")


def _split_addr(addr: str, what: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ApiError(f"{what} must be host:port, got {addr!r}")
    host = host.strip("[]") or "127.0.0.1"
    if not (host.isascii() and host.isprintable()) or " " in host:
        raise ApiError(f"{what} host must be an IP address or an ASCII name, got {addr!r}")
    return host, int(port)


def _field(body: dict[str, Any], key: str, kind: type[T], default: T) -> T:
    """``body[key]`` when it has type ``kind``; ``default`` when absent or null (as Go's JSON
    decoder leaves a field it reads null); a 400 naming the field for any other type."""
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is str and isinstance(value, bool)):
        want = "a string (host:port)" if kind is str else "a boolean"
        raise ApiError(f"bad request body: {key} must be {want}, got {value!r:.80}")
    return value


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
        toxics = [t.to_json() for t in self.toxics.values()]
        return attributes(self, "name", "listen", "upstream", "enabled") | {"toxics": toxics}

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
                reset_close(conn)
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
            reset_close(conn)
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

    :param splice: use the ``os.splice`` fast path where available instead of the copy loop
        (default False: the copy loop measured faster, see docs/chaos.md).
    :param seed: seed for toxicity draws and jitter, for repeatable runs.
    :param congestion: TCP congestion control for the proxy's own sockets: ``"auto"`` (Reno
        towards loopback peers, the system default otherwise), ``"system"`` or an algorithm name;
        see :mod:`buttress.chaos.proxy.congestion`.  :class:`ValueError` if it cannot be used.

    Every method must be called on the server's event loop.
    """

    def __init__(
        self, *, splice: bool = False, seed: int | None = None, congestion: str = AUTO
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
        listen = _field(body, "listen", str, "") or "127.0.0.1:0"
        enabled = _field(body, "enabled", bool, True)
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
        listen = _field(body, "listen", str, proxy.listen)
        upstream = _field(body, "upstream", str, proxy.upstream)
        enabled = _field(body, "enabled", bool, proxy.enabled)
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
