"""The notify socket: systemd's ``sd_notify`` protocol, received by the supervisor.

A child finds the socket's path in ``NOTIFY_SOCKET`` and sends datagrams of newline-separated
``KEY=VALUE`` assignments (``READY=1``, ``WATCHDOG=1``, ``STATUS=...``).  Programs written for
systemd work unchanged: ``sd_notify(3)``, ``systemd-notify --ready``, or three lines of Python::

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])

Each child gets a socket of its own, so a message needs no credentials to say whose it is.
Descriptors passed along a message (``systemd-notify`` sends one with ``BARRIER=1`` and waits for it
to be closed) are closed on receipt.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

__all__ = ["NotifySocket", "parse_notification"]

_MAX_DATAGRAM = 4096
_MAX_FDS = 16


def parse_notification(data: bytes) -> dict[str, str]:
    """``b"READY=1\\nSTATUS=up"`` as ``{"READY": "1", "STATUS": "up"}`` (lines without ``=`` are
    ignored, as systemd ignores them)."""
    found: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            found[key] = value
    return found


class NotifySocket:
    """An ``AF_UNIX`` datagram socket at ``path`` calling ``on_message`` with each parsed
    datagram, on the running event loop."""

    def __init__(self, path: str, on_message: Callable[[dict[str, str]], None]) -> None:
        self.path = path
        self._on_message = on_message
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._sock.bind(path)
        self._sock.setblocking(False)
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self) -> None:
        """Start receiving (call from the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._receive)

    def _receive(self) -> None:
        while True:
            fds = array.array("i")
            try:
                data, ancdata, _, _ = self._sock.recvmsg(
                    _MAX_DATAGRAM, socket.CMSG_SPACE(_MAX_FDS * fds.itemsize)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % fds.itemsize
                    fds.frombytes(payload[:usable])
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._on_message(parse_notification(data))

    def close(self) -> None:
        """Stop receiving, close the socket and remove its file."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._loop = None
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
