"""When a started child counts as ready: a notify message, an open TCP port, a passing health check.

A child with no readiness is ready once it is launched.  The others are polled (TCP, HTTP) or
awaited (``READY=1`` on the notify socket) until they pass; :meth:`ProcessChild.ready
<buttress.supervise.process.ProcessChild.ready>` bounds the wait by ``ready_timeout`` and by the
child's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from buttress.errors import ConfigError

__all__ = ["HealthReady", "NotifyReady", "Readiness", "TcpReady", "probe_http", "probe_tcp"]


@dataclass(frozen=True, slots=True)
class NotifyReady:
    """Ready when the child sends ``READY=1`` to ``NOTIFY_SOCKET`` (systemd's ``Type=notify``)."""


@dataclass(frozen=True, slots=True)
class TcpReady:
    """Ready when ``host:port`` accepts a connection."""

    port: int
    host: str = "127.0.0.1"
    interval: float = 0.02

    def __post_init__(self) -> None:
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 < self.port < 65536
        ):
            raise ConfigError("port", self.port, "must be a TCP port (1..65535)")


@dataclass(frozen=True, slots=True)
class HealthReady:
    """Ready when an HTTP health endpoint (a Buttress ``/health/ready``) answers 2xx.

    Buttress health endpoints answer 200 for ``pass`` and ``warn``, 503 for ``fail``."""

    url: str
    interval: float = 0.05

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError("url", self.url, "must be an http:// URL with a host")


Readiness = NotifyReady | TcpReady | HealthReady


async def probe_tcp(host: str, port: int, timeout: float = 1.0) -> bool:
    """Does ``host:port`` accept a connection within ``timeout`` seconds?"""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def probe_http(url: str, timeout: float = 1.0) -> bool:
    """Does a GET of ``url`` answer 2xx within ``timeout`` seconds?  (HTTP/1.1, plain ``http``.)"""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request.encode("ascii"))
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
    except (TimeoutError, OSError, UnicodeEncodeError):
        return False
    fields = status_line.split()
    return len(fields) >= 2 and fields[1][:1] == b"2"


async def until_ready(readiness: TcpReady | HealthReady) -> None:
    """Poll ``readiness`` until it passes (the caller bounds the wait)."""
    while True:
        if isinstance(readiness, TcpReady):
            ok = await probe_tcp(readiness.host, readiness.port)
        else:
            ok = await probe_http(readiness.url)
        if ok:
            return
        await asyncio.sleep(readiness.interval)
