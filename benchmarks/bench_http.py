"""The HTTP transport's cost and the failover switch time, against real servers on loopback.

Servers: uvicorn in *subprocesses* (so that the server never competes with the client for the GIL),
each on its own listening socket of 127.0.0.1 (inherited by file descriptor, ``TCP_NODELAY`` set),
answering ``GET /`` with a 2-byte body; all killed at the end.

Groups:

* ``http-transport-sync``: time per ``GET`` through one ``httpx.Client`` (keep-alive), plain
  (baseline) and through :class:`buttress.http.ResilientTransport` over one endpoint and over two
  (a primary and a standby, so that every request still goes to the same server as the baseline's
  and only the pool's work differs).  The contenders run in interleaved rounds, each round a timed
  loop of ``N`` requests; a row is the best round (``time.perf_counter``), in microseconds per
  request.  Target: the transport adds at most 10% to the plain request.
* ``http-transport-async``: the same with ``httpx.AsyncClient`` and
  :class:`buttress.http.AsyncResilientTransport`, one request at a time.
* ``http-transport-overhead``: the transport's own work, without a network: the same client over
  :class:`httpx.MockTransport` answering at once, plain (baseline) and wrapped, in microseconds of
  *CPU time* (``time.process_time``) per request: everything runs in this process, so CPU time is
  the work itself, and it is stable where wall-clock figures move with the machine's load.
* ``failover``: two endpoints, primary (priority 0) and secondary (priority 1), active health checks
  every 0.5 s (timeout 0.25 s, ``unhealthy_threshold=1``).  A client sends requests back to back;
  after 200 of them the primary is killed with SIGKILL.  Measured: the time from the kill to the
  first answer from the secondary (*switch time*), against the bound "one health-check interval plus
  one request" (the baseline row); the number of failed requests (target 0); the number of requests
  answered by the primary after the switch (target 0).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from buttress.failover import HealthCheck
from buttress.http import AsyncResilientTransport, ResilientTransport

SERVER = r"""
import sys, uvicorn
NAME = sys.argv[1].encode()
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"%d" % len(NAME))]})
    await send({"type": "http.response.body", "body": NAME})
uvicorn.run(app, fd=int(sys.argv[2]), log_level="error", lifespan="off", access_log=False)
"""


class Server:
    """A uvicorn subprocess on a free port of 127.0.0.1."""

    def __init__(self, name: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        fd = sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, name, str(fd)], pass_fds=(fd,), env=dict(os.environ)
        )
        end = time.monotonic() + 20
        while True:
            try:
                if httpx.get(self.url, timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > end or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"server {name} did not start")
            time.sleep(0.02)
        sock.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _row(
    group: str, name: str, value: float, unit: str, *, baseline: bool = False, note: str = ""
) -> dict[str, Any]:
    return {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "lower_is_better": True,
        "note": note,
    }


def _sync_rows(a: Server, b: Server, n: int, rounds: int) -> list[dict[str, Any]]:
    clients: dict[str, tuple[httpx.Client, str]] = {
        "plain httpx.Client": (httpx.Client(), a.url + "/"),
        "ResilientTransport, 1 endpoint": (
            httpx.Client(transport=ResilientTransport([a.url])),
            "http://svc/",
        ),
        "ResilientTransport, 2 endpoints (active-passive)": (
            httpx.Client(transport=ResilientTransport([a.url, {"url": b.url, "priority": 1}])),
            "http://svc/",
        ),
    }
    best = dict.fromkeys(clients, float("inf"))
    try:
        for client, url in clients.values():
            for _ in range(50):
                client.get(url)
        for _ in range(rounds):
            for name, (client, url) in clients.items():
                get = client.get
                t = time.perf_counter()
                for _ in range(n):
                    get(url)
                best[name] = min(best[name], (time.perf_counter() - t) / n)
    finally:
        for client, _ in clients.values():
            client.close()
    return [
        _row("http-transport-sync", name, v * 1e6, "us/request", baseline=i == 0)
        for i, (name, v) in enumerate(best.items())
    ]


async def _async_rows(a: Server, b: Server, n: int, rounds: int) -> list[dict[str, Any]]:
    clients: dict[str, tuple[httpx.AsyncClient, str]] = {
        "plain httpx.AsyncClient": (httpx.AsyncClient(), a.url + "/"),
        "AsyncResilientTransport, 1 endpoint": (
            httpx.AsyncClient(transport=AsyncResilientTransport([a.url])),
            "http://svc/",
        ),
        "AsyncResilientTransport, 2 endpoints (active-passive)": (
            httpx.AsyncClient(
                transport=AsyncResilientTransport([a.url, {"url": b.url, "priority": 1}])
            ),
            "http://svc/",
        ),
    }
    best = dict.fromkeys(clients, float("inf"))
    try:
        for client, url in clients.values():
            for _ in range(50):
                await client.get(url)
        for _ in range(rounds):
            for name, (client, url) in clients.items():
                get = client.get
                t = time.perf_counter()
                for _ in range(n):
                    await get(url)
                best[name] = min(best[name], (time.perf_counter() - t) / n)
    finally:
        for client, _ in clients.values():
            await client.aclose()
    return [
        _row("http-transport-async", name, v * 1e6, "us/request", baseline=i == 0)
        for i, (name, v) in enumerate(best.items())
    ]


def _overhead_rows(n: int, rounds: int) -> list[dict[str, Any]]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"ok")

    mock = httpx.MockTransport(answer)
    clients = {
        "plain httpx.Client over MockTransport": (httpx.Client(transport=mock), "http://a/x"),
        "ResilientTransport over MockTransport": (
            httpx.Client(transport=ResilientTransport(["http://127.0.0.1:9"], transport=mock)),
            "http://svc/x",
        ),
    }
    best = dict.fromkeys(clients, float("inf"))
    for _ in range(rounds):
        for name, (client, url) in clients.items():
            get = client.get
            t = time.process_time()
            for _ in range(n):
                get(url)
            best[name] = min(best[name], (time.process_time() - t) / n)
    return [
        _row("http-transport-overhead", name, v * 1e6, "us/request", baseline=i == 0)
        for i, (name, v) in enumerate(best.items())
    ]


def _failover_rows(interval: float) -> list[dict[str, Any]]:
    primary = Server("primary")
    secondary = Server("secondary")
    transport = ResilientTransport(
        [{"url": primary.url}, {"url": secondary.url, "priority": 1}],
        health_check=HealthCheck(interval=interval, timeout=interval / 2, unhealthy_threshold=1),
    )
    log: list[tuple[float, float, str]] = []
    killed = 0.0
    try:
        with httpx.Client(transport=transport) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    body = client.get("http://svc/").text
                except httpx.HTTPError as e:
                    body = f"error {type(e).__name__}"
                log.append((t0, time.monotonic(), body))
                if not killed and len(log) == 200:
                    primary.kill()
                    killed = time.monotonic()
                if killed and time.monotonic() - killed > 2 * interval:
                    break
    finally:
        primary.kill()
        secondary.kill()
    switch_at = next(end for start, end, body in log if body == "secondary")
    request_time = statistics.median(end - start for start, end, _ in log[:200])
    failed = sum(1 for _, _, body in log if body.startswith("error"))
    back = sum(1 for start, _, body in log if start >= switch_at and body == "primary")
    note = f"interval {interval:g}s; median request {request_time * 1e3:.2f} ms"
    return [
        _row(
            "failover",
            "bound: one health-check interval + one request",
            interval + request_time,
            "s",
            baseline=True,
            note=note,
        ),
        _row(
            "failover",
            "switch time (kill -> first answer from the secondary)",
            switch_at - killed,
            "s",
            note=note,
        ),
        _row("failover", "failed requests (target 0)", float(failed), "requests"),
        _row(
            "failover",
            "answers from the primary after the switch (target 0)",
            float(back),
            "requests",
        ),
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure; quick mode uses shorter loops (under ~15 s in all)."""
    n, rounds = (200, 3) if quick else (500, 5)
    a = Server("a")
    b = Server("b")
    try:
        rows = _sync_rows(a, b, n, rounds)
        rows += asyncio.run(_async_rows(a, b, n, rounds))
    finally:
        a.kill()
        b.kill()
    rows += _overhead_rows(n * 4, rounds)
    rows += _failover_rows(0.5)
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    base: dict[str, float] = {r["group"]: r["value"] for r in rows if r["baseline"]}
    for r in rows:
        ratio = r["value"] / base[r["group"]] if base.get(r["group"]) else float("nan")
        print(f"{r['group']:22} {r['name']:58} {r['value']:10.3f} {r['unit']:11} x{ratio:.3f}")


main: Callable[[], None] = lambda: _print(run(quick="--quick" in sys.argv))  # noqa: E731

if __name__ == "__main__":
    main()
