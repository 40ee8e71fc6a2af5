"""Which TCP congestion control the proxy uses on its own sockets.

The proxy's job is to add the faults it is told to add and nothing else, so on a loopback hop it
picks the congestion control that costs least there.  On loopback the round trip is a few
microseconds and no queue needs protecting, yet the kernel's default algorithm still runs:

* **BBR** (the default on many distributions and cloud images, and on the machine these figures
  come from) paces every socket with high-resolution timers when no ``fq`` qdisc does it; on
  loopback those waits leave CPUs idle (27% idle during a proxied transfer, measured with perf).
* **CUBIC** reacts to the spurious fast retransmits that loopback reordering causes (segments
  delivered on two CPUs out of order) by cutting its window, and regrows it on a wall-clock curve
  that takes seconds, however short the round trip.
* **Reno** regrows its window by one segment per round trip, that is within microseconds on
  loopback, and never paces.

Measured with ``benchmarks/bench_chaos.py`` on a 2-core VM whose default is BBR: pass-through bulk
throughput went from about 0.4x to about 0.55x of a direct connection (see ``docs/chaos.md``).
Remote peers keep the system's choice: there congestion control protects a real network.

Settings: ``"auto"`` (the default: Reno when the peer is a loopback address, the system default
otherwise), ``"system"`` (never change it) or an algorithm name applied to every proxy socket.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from pathlib import Path

__all__ = ["AUTO", "LOOPBACK_ALGORITHM", "SYSTEM", "apply_congestion", "check_congestion"]

AUTO = "auto"
SYSTEM = "system"
#: What ``auto`` uses for loopback peers.  Reno is built into every Linux kernel and is always
#: allowed to unprivileged processes (``net.ipv4.tcp_allowed_congestion_control``).
LOOPBACK_ALGORITHM = "reno"

_TCP_CONGESTION: int | None = getattr(socket, "TCP_CONGESTION", None)
_PROC = Path("/proc/sys/net/ipv4")


def _listed(name: str) -> str:
    try:
        return (_PROC / name).read_text().strip() or "none"
    except OSError:
        return "unknown"


def check_congestion(setting: str) -> str:
    """Validate a congestion setting; return it, or raise :class:`ValueError` saying why not.

    A named algorithm is tried on a throwaway socket, so a typo or an algorithm this user may not
    select is reported at start, not silently ignored on every connection.
    """
    if setting in (AUTO, SYSTEM):
        return setting
    if not setting or not setting.replace("_", "").isalnum():
        raise ValueError(
            f"congestion control {setting!r}: expected 'auto', 'system' or an algorithm name"
        )
    if _TCP_CONGESTION is None:
        raise ValueError(
            f"congestion control {setting!r}: this platform cannot set it per socket "
            "(use 'auto' or 'system')"
        )
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, setting.encode())
        except OSError as e:
            if e.errno == errno.ENOENT:
                raise ValueError(
                    f"congestion control {setting!r} is not available; available: "
                    f"{_listed('tcp_available_congestion_control')}"
                ) from None
            if e.errno == errno.EPERM:
                raise ValueError(
                    f"congestion control {setting!r} is not allowed for this user; allowed: "
                    f"{_listed('tcp_allowed_congestion_control')}"
                ) from None
            raise ValueError(f"congestion control {setting!r}: {e.strerror or e}") from None
    return setting


def _is_loopback(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    # A dual-stack listener sees IPv4 clients as ``::ffff:127.0.0.1``, which Python 3.11 does not
    # call loopback.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def apply_congestion(sock: socket.socket, setting: str, peer_host: str) -> None:
    """Set ``sock``'s congestion control per ``setting`` for a connection to ``peer_host``.

    Best effort: a socket that refuses keeps the system's algorithm, which is still correct, only
    slower on loopback.
    """
    if _TCP_CONGESTION is None or setting == SYSTEM:
        return
    if setting == AUTO:
        if not _is_loopback(peer_host):
            return
        name = LOOPBACK_ALGORITHM
    else:
        name = setting
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, name.encode())
