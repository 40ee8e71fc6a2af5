"""Chaos benchmarks: the cost of a disabled failpoint, and the proxy's pass-through speed.

* ``failpoint``: ns per pass of ``buttress.failpoint(name)`` when the point is not configured
  (target: < 100 ns), next to an empty Python function call (the floor) and a configured point
  that never fires (``0%return(1)``).
* ``proxy bulk``: MB/s of one bulk transfer over loopback, direct and through the proxy (the
  ``os.splice`` fast path and the copy fast path of ``--no-splice``).  The proxies run in their own
  processes (``buttress proxy serve``), the sender and receiver in this one.  The three are
  measured *interleaved* (direct, splice, copy, direct, ...) and the best of each is kept, so a
  busy moment on a shared machine hits all of them alike.  Target: through the proxy >= half of
  direct.
* ``proxy bulk cpu``: CPU seconds per GB moved, for the same transfers: this process (sender and
  receiver threads) plus, through the proxy, the proxy process (Linux: from
  ``/proc/<pid>/task/*/schedstat``).  Throughput on a machine whose cores are all busy is bounded
  by this total, so it explains the throughput ratio where the timings are noisy.
* ``proxy latency``: median round trip of a 64-byte request/response, direct and through the
  proxy; the difference is the added latency (target: <= 200 us).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import timeit
import urllib.request
from collections.abc import Iterator
from typing import Any

import buttress
from buttress.chaos import failpoints


def _failpoint_rows(quick: bool) -> list[dict[str, Any]]:
    n = 100_000 if quick else 1_000_000
    reps = 15 if quick else 25  # min of many short runs: robust to a busy machine

    def empty(name: str) -> None:
        return None

    fp = buttress.failpoint
    failpoints.clear()
    t_empty = min(
        timeit.repeat("f('payments.charge')", globals={"f": empty}, number=n, repeat=reps)
    )
    t_off = min(timeit.repeat("f('payments.charge')", globals={"f": fp}, number=n, repeat=reps))
    failpoints.configure("payments.charge", "0%return(1)")
    try:
        t_never = min(
            timeit.repeat("f('payments.charge')", globals={"f": fp}, number=n, repeat=reps)
        )
    finally:
        failpoints.clear()
    loop_ns = min(timeit.repeat("pass", number=n, repeat=reps)) / n * 1e9
    return [
        {
            "group": "failpoint",
            "name": "empty function call (floor)",
            "value": t_empty / n * 1e9 - loop_ns,
            "unit": "ns/call",
            "baseline": True,
            "lower_is_better": True,
        },
        {
            "group": "failpoint",
            "name": "failpoint, not configured",
            "value": t_off / n * 1e9 - loop_ns,
            "unit": "ns/call",
            "baseline": False,
            "lower_is_better": True,
            "note": "target < 100 ns",
        },
        {
            "group": "failpoint",
            "name": "failpoint, configured 0% (draws, never fires)",
            "value": t_never / n * 1e9 - loop_ns,
            "unit": "ns/call",
            "baseline": False,
            "lower_is_better": True,
        },
    ]


# -- servers --------------------------------------------------------------------------------------


class _Source:
    """Sends ``size`` bytes to each connection, then closes it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = memoryview(bytes(1 << 20))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = self.sock.getsockname()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            left = self.size
            with c:
                while left > 0:
                    n = c.send(self.buf[: min(left, len(self.buf))])
                    left -= n


class _Echo:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = self.sock.getsockname()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _serve(c: socket.socket) -> None:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while data := c.recv(65536):
                c.sendall(data)


@contextlib.contextmanager
def _proxy_process(extra: list[str]) -> Iterator[tuple[str, int]]:
    """A ``buttress proxy serve`` process: (control API URL, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "buttress.cli", "proxy", "serve", "--port", "0", *extra],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        yield line.strip().rsplit(" ", 1)[-1], proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _cpu_of(pid: int) -> float:
    """CPU seconds used so far by every thread of process ``pid`` (Linux; 0.0 elsewhere)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _create(api: str, name: str, upstream: tuple[str, int]) -> tuple[str, int]:
    body = json.dumps({"name": name, "upstream": f"{upstream[0]}:{upstream[1]}"}).encode()
    req = urllib.request.Request(f"{api}/proxies", data=body, method="POST")
    with urllib.request.urlopen(req) as resp:
        listen = json.loads(resp.read())["listen"]
    host, _, port = listen.rpartition(":")
    return host, int(port)


def _bulk(addr: tuple[str, int], size: int) -> float:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    got = 0
    with socket.create_connection(addr) as s:
        while n := s.recv_into(view):
            got += n
    elapsed = time.perf_counter() - t0
    assert got == size, (got, size)
    return size / elapsed / 1e6


def _latency(addr: tuple[str, int], n: int) -> float:
    payload = b"x" * 64
    samples = []
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(payload)
            got = 0
            while got < 64:
                got += len(s.recv(64 - got))
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


_PATHS = (
    ("splice", "splice fast path", []),
    ("copy", "copy fast path, --no-splice", ["--no-splice"]),
)


def _proxy_rows(quick: bool) -> list[dict[str, Any]]:
    size = (64 if quick else 512) << 20
    reps = 4 if quick else 6
    trips = 2000 if quick else 10000
    source = _Source(size)
    echo = _Echo()
    bw: dict[str, list[float]] = {"direct": []}
    lat: dict[str, list[float]] = {"direct": []}
    cpu: dict[str, list[float]] = {"direct": []}
    with contextlib.ExitStack() as stack:
        bulk_addr: dict[str, tuple[str, int]] = {"direct": source.addr}
        echo_addr: dict[str, tuple[str, int]] = {"direct": echo.addr}
        pids: dict[str, int] = {}
        for label, _, extra in _PATHS:
            api, pids[label] = stack.enter_context(_proxy_process(extra))
            bulk_addr[label] = _create(api, "bulk", source.addr)
            echo_addr[label] = _create(api, "echo", echo.addr)
            bw[label], lat[label], cpu[label] = [], [], []
        for _ in range(reps):  # interleaved: a busy moment hits every path alike
            for label, addr in bulk_addr.items():
                own0 = _own_cpu()
                proxy0 = _cpu_of(pids[label]) if label in pids else 0.0
                bw[label].append(_bulk(addr, size))
                used = _own_cpu() - own0
                if label in pids:
                    used += _cpu_of(pids[label]) - proxy0
                cpu[label].append(used / (size / 1e9))
            for label, addr in echo_addr.items():
                lat[label].append(_latency(addr, trips))
    direct_bw = max(bw["direct"])
    direct_lat = min(lat["direct"])
    rows: list[dict[str, Any]] = [
        {
            "group": "proxy bulk",
            "name": "direct loopback",
            "value": direct_bw,
            "unit": "MB/s",
            "baseline": True,
            "lower_is_better": False,
            "note": f"best of {reps}, interleaved with the proxied runs",
        }
    ]
    for label, text, _ in _PATHS:
        ratios = sorted(b / d for b, d in zip(bw[label], bw["direct"], strict=True))
        rows.append(
            {
                "group": "proxy bulk",
                "name": f"through the proxy ({text})",
                "value": max(bw[label]),
                "unit": "MB/s",
                "baseline": False,
                "lower_is_better": False,
                "note": f"target >= 0.5x direct; median of paired ratios "
                f"{statistics.median(ratios):.2f}x",
            }
        )
    rows.append(
        {
            "group": "proxy bulk cpu",
            "name": "direct loopback: sender + receiver",
            "value": statistics.median(cpu["direct"]),
            "unit": "s/GB",
            "baseline": True,
            "lower_is_better": True,
            "note": "median",
        }
    )
    for label, text, _ in _PATHS:
        rows.append(
            {
                "group": "proxy bulk cpu",
                "name": f"through the proxy ({text}): sender + receiver + proxy",
                "value": statistics.median(cpu[label]),
                "unit": "s/GB",
                "baseline": False,
                "lower_is_better": True,
                "note": "median",
            }
        )
    rows.append(
        {
            "group": "proxy latency",
            "name": "direct loopback round trip (median)",
            "value": direct_lat,
            "unit": "us",
            "baseline": True,
            "lower_is_better": True,
        }
    )
    for label, text, _ in _PATHS:
        best = min(lat[label])
        rows.append(
            {
                "group": "proxy latency",
                "name": f"through the proxy ({text}), round trip (median)",
                "value": best,
                "unit": "us",
                "baseline": False,
                "lower_is_better": True,
                "note": f"added {best - direct_lat:.0f} us; target <= 200 us added",
            }
        )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """All chaos figures (quick: well under 20 s)."""
    return _failpoint_rows(quick) + _proxy_rows(quick)


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        note = row.get("note", "")
        print(f"{row['group']:14} {row['name']:70} {row['value']:10.2f} {row['unit']:6} {note}")
    os._exit(0)
