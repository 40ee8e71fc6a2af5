"""Real upstream servers for the proxy tests: echo (selectors, many connections), blob, HTTP."""

from __future__ import annotations

import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EchoServer:
    """Echoes every byte back; one thread, a selector, any number of connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(2048)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self._stop = False
        self.conns: set[socket.socket] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.thread.join(5)
        for c in list(self.conns):
            c.close()
        self.sel.close()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop:
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                if s is self.sock:
                    try:
                        while True:
                            c, _ = self.sock.accept()
                            c.setblocking(True)
                            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                            self.conns.add(c)
                            self.sel.register(c, selectors.EVENT_READ)
                    except BlockingIOError:
                        pass
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.sel.unregister(s)
                    self.conns.discard(s)
                    s.close()
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    self.sel.unregister(s)
                    self.conns.discard(s)
                    s.close()


class BlobServer:
    """Sends ``size`` bytes (a repeating pattern) on every connection, then closes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.payload = bytes(i % 251 for i in range(size))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BlobServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.sendall(self.payload)
        except OSError:
            pass
        finally:
            c.close()


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        out = f"{self.command} {self.path} {len(body)}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _reply


class HttpServer:
    """A real HTTP/1.1 server answering ``200 "<METHOD> <path> <body length>"``."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        self.server.daemon_threads = True
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read until EOF."""
    sock.settimeout(timeout)
    out = bytearray()
    while True:
        d = sock.recv(65536)
        if not d:
            return bytes(out)
        out += d


def recv_exact(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        d = sock.recv(n - len(out))
        if not d:
            break
        out += d
    return bytes(out)
