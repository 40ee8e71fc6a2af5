"""Real servers on 127.0.0.1 for the transport and middleware tests: uvicorn in a thread (a
controllable backend) or in a subprocess (to be killed); always stopped."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import uvicorn


class Backend:
    """A controllable ASGI backend.

    ``mode``: ``ok`` (200, body = name), or a status to answer with (``503``...);
    ``fail_next``: answer ``fail_status`` to that many requests first; ``retry_after``: a
    Retry-After header on failures.  ``/healthz`` answers 200 when ``mode == "ok"``, else 503;
    ``/slow?ms=N`` waits N ms; ``delay``: seconds every other request waits before it is answered
    (a slow-but-alive instance).  Every request is recorded in ``seen`` (method, path, headers).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode: str | int = "ok"
        self.fail_next = 0
        self.fail_status = 503
        self.retry_after: str | None = None
        self.delay = 0.0
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def requests(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.seen if path is None or p == path)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        with self.lock:
            self.seen.append((scope["method"], path, headers))
        extra: list[tuple[bytes, bytes]] = []
        if path == "/healthz":
            status = 200 if self.mode == "ok" else 503
        elif self.fail_next > 0:
            self.fail_next -= 1
            status = self.fail_status
        elif self.mode == "ok":
            status = 200
        else:
            status = int(self.mode)
        if status >= 400 and self.retry_after is not None and path != "/healthz":
            extra.append((b"retry-after", self.retry_after.encode()))
        if self.delay and path != "/healthz":
            await asyncio.sleep(self.delay)
        if path == "/slow":
            ms = int(parse_qs(scope["query_string"].decode()).get("ms", ["100"])[0])
            await asyncio.sleep(ms / 1000)
        payload = self.name.encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(payload)).encode()), *extra],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit it: without it the response head and body, written separately,
    # meet Nagle's algorithm and delayed ACKs and every request takes 40 ms.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ThreadServer:
    """uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sock = _listener()
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="error", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


class ProcessServer:
    """The subprocess backend (``_backend.py``) on an inherited listening socket; ``kill()`` sends
    SIGKILL, after which connections are refused."""

    def __init__(self, name: str) -> None:
        self.sock = _listener()
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        script = pathlib.Path(__file__).with_name("_backend.py")
        fd = self.sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, str(script), name, str(fd)], pass_fds=(fd,), env=dict(os.environ)
        )
        # The child owns the listener now; the parent's copy would keep accepting after a kill.
        end = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(self.url, timeout=0.5)
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > end or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"backend {name} did not start")
            time.sleep(0.02)
        self.sock.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.sock.close()


@pytest.fixture
def backends() -> Iterator[Any]:
    """``backends(n)`` -> n started (Backend, ThreadServer) pairs; all stopped after the test."""
    started: list[ThreadServer] = []

    def make(n: int) -> list[tuple[Backend, ThreadServer]]:
        out = []
        for i in range(n):
            b = Backend(f"b{i}")
            s = ThreadServer(b).start()
            started.append(s)
            out.append((b, s))
        return out

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(app)`` -> a started ThreadServer for any ASGI app; stopped after the test."""
    started: list[ThreadServer] = []

    def make(app: Any) -> ThreadServer:
        s = ThreadServer(app).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def processes() -> Iterator[Any]:
    """``processes(name)`` -> a started ProcessServer; killed after the test."""
    started: list[ProcessServer] = []

    def make(name: str) -> ProcessServer:
        p = ProcessServer(name)
        started.append(p)
        return p

    yield make
    for p in started:
        p.kill()


@pytest.fixture
def dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    s = _listener()
    port: int = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
