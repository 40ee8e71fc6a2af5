"""Active health-check driver: HTTP and TCP probes, run from a thread or an asyncio task.

The probes use the standard library only (``http.client`` and ``socket`` in threads, asyncio streams
in tasks), with their own short-lived connections, so that a probe never waits behind application
requests in a connection pool and never keeps a dead connection alive.

* **http**: ``GET <base path><check.path>`` with ``Connection: close``; a status in
  ``expected_statuses`` is ``pass``, any other status ``fail`` (unhealthy at once), no answer within
  ``timeout`` (refused, reset, timed out, garbage) ``error``;
* **tcp**: a connection accepted within ``timeout`` is ``pass``, else ``error``.

A round probes every endpoint of the pool concurrently and reports each result to the pool
(:meth:`~buttress.failover.pool.EndpointPool.report_probe`), then lets the pool return endpoints
whose ejection ended.  Rounds repeat every ``interval + U(0, jitter x interval)`` seconds, the first
at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import socket
import ssl
import threading
from urllib.parse import urlsplit

from buttress.errors import ConfigError

from .active import HealthCheck, ProbeResult
from .pool import Endpoint, EndpointPool

__all__ = ["HealthCheckDriver", "probe", "probe_async"]

_USER_AGENT = "buttress-health-check"


def _target(endpoint: Endpoint, check: HealthCheck) -> tuple[str, str, int, str]:
    parts = urlsplit(endpoint.url)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    path = (parts.path.rstrip("/") + check.path) if check.kind == "http" else ""
    return scheme, host, port, path


def probe(endpoint: Endpoint, check: HealthCheck) -> tuple[ProbeResult, str]:
    """Probe ``endpoint`` once, blocking (at most ``check.timeout`` per socket operation).

    Returns the result and a short detail (the status, or the error's type)."""
    scheme, host, port, path = _target(endpoint, check)
    if check.kind == "tcp" or scheme == "tcp":
        try:
            with socket.create_connection((host, port), timeout=check.timeout):
                return "pass", "connected"
        except OSError as e:
            return "error", type(e).__name__
    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = http.client.HTTPSConnection(
            host, port, timeout=check.timeout, context=ssl.create_default_context()
        )
    else:
        conn = http.client.HTTPConnection(host, port, timeout=check.timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": _USER_AGENT, "Connection": "close"})
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return "error", type(e).__name__
    finally:
        conn.close()
    return ("pass" if status in check.expected_statuses else "fail"), f"status {status}"


async def probe_async(endpoint: Endpoint, check: HealthCheck) -> tuple[ProbeResult, str]:
    """Probe ``endpoint`` once from asyncio (the whole probe bounded by ``check.timeout``)."""
    scheme, host, port, path = _target(endpoint, check)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout):
            tls = ssl.create_default_context() if scheme == "https" else None
            reader, writer = await asyncio.open_connection(host, port, ssl=tls)
            if check.kind == "tcp" or scheme == "tcp":
                return "pass", "connected"
            netloc = host if port in (80, 443) else f"{host}:{port}"
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: {_USER_AGENT}\r\n"
                "Connection: close\r\n\r\n".encode("latin-1")
            )
            await writer.drain()
            line = await reader.readline()
    except (OSError, TimeoutError) as e:
        return "error", type(e).__name__
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
    fields = line.split()
    if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
        return "error", "bad response"
    status = int(fields[1])
    return ("pass" if status in check.expected_statuses else "fail"), f"status {status}"


class HealthCheckDriver:
    """Runs ``check`` against every endpoint of ``pool``, from a thread or an asyncio task.

    :param pool: the pool to report to.
    :param check: the settings; default the pool's ``health_check``.

    ``start()`` / ``stop()`` run rounds in a daemon thread; ``start_async()`` / ``stop_async()`` in
    a task of the running loop; ``check_once()`` / ``await check_once_async()`` run one round now.
    """

    def __init__(self, pool: EndpointPool, check: HealthCheck | None = None) -> None:
        if not isinstance(pool, EndpointPool):
            raise ConfigError("pool", pool, "must be an EndpointPool")
        check = check if check is not None else pool.health_check
        if not isinstance(check, HealthCheck):
            raise ConfigError("check", check, "give a HealthCheck here or to the pool")
        self.pool = pool
        self.check = check
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"HealthCheckDriver(pool={self.pool.name!r}, check={self.check!r})"

    # -- one round ---------------------------------------------------------------------------------

    def check_once(self) -> list[tuple[Endpoint, ProbeResult]]:
        """Probe every endpoint now (concurrently, in threads) and report the results."""
        eps = self.pool.endpoints
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(32, len(eps)), thread_name_prefix="buttress-probe"
            )
        futures = [self._executor.submit(probe, ep, self.check) for ep in eps]
        out: list[tuple[Endpoint, ProbeResult]] = []
        for ep, fut in zip(eps, futures, strict=True):
            result, detail = fut.result()
            self.pool.report_probe(ep, result, detail)
            out.append((ep, result))
        self.pool.tick()
        self.rounds += 1
        return out

    async def check_once_async(self) -> list[tuple[Endpoint, ProbeResult]]:
        """Probe every endpoint now (concurrently, in tasks) and report the results."""
        eps = self.pool.endpoints
        results = await asyncio.gather(*(probe_async(ep, self.check) for ep in eps))
        out: list[tuple[Endpoint, ProbeResult]] = []
        for ep, (result, detail) in zip(eps, results, strict=True):
            self.pool.report_probe(ep, result, detail)
            out.append((ep, result))
        self.pool.tick()
        self.rounds += 1
        return out

    def _wait(self) -> float:
        return self.check.wait(self.pool.rng.random())

    # -- in a thread -------------------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds in a daemon thread until :meth:`stop` (a no-op if already running)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"buttress-health-{self.pool.name}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            if self._stop.wait(self._wait()):
                return

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread (waiting up to ``timeout`` for the round in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- in asyncio --------------------------------------------------------------------------------

    def start_async(self) -> asyncio.Task[None]:
        """Run rounds in a task of the running loop until :meth:`stop_async`."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"buttress-health-{self.pool.name}"
            )
        return self._task

    async def _run(self) -> None:
        while True:
            await self.check_once_async()
            await asyncio.sleep(self._wait())

    async def stop_async(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
