"""Free TCP ports on loopback for servers that another process will open later.

The usual trick (bind port 0, read the number, close) hands out a port from the kernel's
*ephemeral* range, the same range the kernel picks from for every outgoing connection. Between
closing the probe and the server's bind, any client on the machine can be given that port as its
source port, and the server then fails with "Address already in use" (seen in CI: a lab's fault
proxy lost 127.0.0.1:60257 to one of the load driver's connections). So the ports handed out here
come from below the ephemeral range, which the kernel never uses on its own, and one process never
hands out the same port twice.
"""

from __future__ import annotations

import random
import socket
import threading

__all__ = ["free_port"]

_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
_LOWEST = 10_000  # below this live well-known services (and a developer's own servers)
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_start() -> int:
    try:
        with open(_RANGE_FILE, encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that no outgoing connection will be
    given meanwhile (it lies below the ephemeral range); never the same one twice in a process."""
    high = _ephemeral_start()
    with _lock:
        if high - _LOWEST > 1_000:
            for _ in range(200):
                port = random.randrange(_LOWEST, high)
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        # A machine whose ephemeral range starts low: fall back to the kernel's choice.
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _given:
                _given.add(port)
                return port
