"""Chaos benchmarks: the cost of a disabled failpoint, and the proxy's pass-through speed.

* ``failpoint``: ns per pass of ``buttress.failpoint(name)`` when the point is not configured
  (target: < 100 ns), next to an empty Python function call (the floor) and a configured point
  that never fires (``0%return(1)``).
* ``proxy bulk (ALGORITHM everywhere)``: MB/s of one bulk transfer over loopback, direct and
  through the proxy (the copy fast path, the default, and the ``os.splice`` one of ``--splice``),
  with the same TCP congestion control on every socket of every path (issue 20: the proxy picks Reno
  on loopback, so comparing it with a direct path on the system's BBR measured the algorithms, not
  the proxy): once with Reno, once with the system's default.  The sink and the echo server run in
  a process of their own, the proxies in theirs (``buttress proxy serve``), the receiver in this
  one.  The paths run in interleaved rounds (order rotated every round); the figures are medians,
  and the proxied rows give the median of the *paired* ratios (runs next to each other) with their
  interquartile range.  Target: through the proxy >= 0.7x direct.
* ``proxy bulk cpu``: CPU seconds per GB moved: this process (the receiver) plus, through the
  proxy, the proxy process (Linux: from ``/proc/<pid>/task/*/schedstat``).
* ``proxy latency``: median round trip of a 64-byte request/response, direct and through the
  proxy; the difference is the added latency (target: <= 200 us).
"""

from __future__ import annotations

import contextlib
import json
import os
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
#
# The sink (sends ``size`` bytes to each connection) and the echo server run in a process of their
# own (``python bench_chaos.py --servers SIZE ALGORITHM``), as the proxy does, so that neither
# shares this process's interpreter lock with the receiver it is measured against.  Every socket
# on a path gets the same congestion control: the servers' accepted sockets, the receiver's
# socket (here), and the proxy's two sockets (``--congestion``).

_TCP_CONGESTION: int | None = getattr(socket, "TCP_CONGESTION", None)


def _set_cc(sock: socket.socket, algorithm: str) -> None:
    if algorithm != "system" and _TCP_CONGESTION is not None:
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_CONGESTION, algorithm.encode())


def _serve_forever(size: int, algorithm: str) -> None:
    """The sink and echo servers (the child process's body): print both ports, serve until
    killed."""
    buf = memoryview(bytes(1 << 20))

    def listener() -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        return sock

    def sink(c: socket.socket) -> None:
        _set_cc(c, algorithm)
        left = size
        with c:
            while left > 0:
                left -= c.send(buf[: min(left, len(buf))])

    def echo(c: socket.socket) -> None:
        _set_cc(c, algorithm)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with c:
            while data := c.recv(65536):
                c.sendall(data)

    def accept(sock: socket.socket, serve: Any) -> None:
        while True:
            c, _ = sock.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    src, ech = listener(), listener()
    threading.Thread(target=accept, args=(src, sink), daemon=True).start()
    print(src.getsockname()[1], ech.getsockname()[1], flush=True)
    accept(ech, echo)


@contextlib.contextmanager
def _servers(size: int, algorithm: str) -> Iterator[tuple[tuple[str, int], tuple[str, int]]]:
    """A servers process: (sink address, echo address)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--servers", str(size), algorithm],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        sink_port, echo_port = (int(p) for p in proc.stdout.readline().split())
        yield ("127.0.0.1", sink_port), ("127.0.0.1", echo_port)
    finally:
        proc.terminate()
        proc.wait(10)


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


def _create(api: str, name: str, upstream: tuple[str, int]) -> tuple[str, int]:
    body = json.dumps({"name": name, "upstream": f"{upstream[0]}:{upstream[1]}"}).encode()
    req = urllib.request.Request(f"{api}/proxies", data=body, method="POST")
    with urllib.request.urlopen(req) as resp:
        listen = json.loads(resp.read())["listen"]
    host, _, port = listen.rpartition(":")
    return host, int(port)


def _connect(addr: tuple[str, int], algorithm: str) -> socket.socket:
    s = socket.socket()
    _set_cc(s, algorithm)
    s.connect(addr)
    return s


def _bulk(addr: tuple[str, int], size: int, algorithm: str) -> float:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    t0 = time.perf_counter()
    got = 0
    with _connect(addr, algorithm) as s:
        while n := s.recv_into(view):
            got += n
    elapsed = time.perf_counter() - t0
    assert got == size, (got, size)
    return size / elapsed / 1e6


def _latency(addr: tuple[str, int], n: int, algorithm: str) -> float:
    payload = b"x" * 64
    samples = []
    with _connect(addr, algorithm) as s:
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
    ("splice", "splice fast path, --splice", ["--splice"]),
    ("copy", "copy fast path, the default", []),
)


def _system_algorithm() -> str:
    try:
        return open("/proc/sys/net/ipv4/tcp_congestion_control").read().strip()
    except OSError:
        return "the system's"


def _spread(xs: list[float]) -> str:
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) > 1 else [xs[0]] * 3
    return f"IQR {q[0]:.2f}-{q[2]:.2f}"


def _measure(algorithm: str, size: int, reps: int, trips: int) -> dict[str, Any]:
    """Bulk MB/s, CPU s/GB and round-trip us of every path, all sockets on ``algorithm``,
    ``reps`` interleaved rounds (the order rotated every round)."""
    bw: dict[str, list[float]] = {"direct": []}
    lat: dict[str, list[float]] = {"direct": []}
    cpu: dict[str, list[float]] = {"direct": []}
    with contextlib.ExitStack() as stack:
        sink, echo = stack.enter_context(_servers(size, algorithm))
        bulk_addr: dict[str, tuple[str, int]] = {"direct": sink}
        echo_addr: dict[str, tuple[str, int]] = {"direct": echo}
        pids: dict[str, int] = {}
        for label, _, extra in _PATHS:
            api, pids[label] = stack.enter_context(
                _proxy_process([*extra, "--congestion", algorithm])
            )
            bulk_addr[label] = _create(api, "bulk", sink)
            echo_addr[label] = _create(api, "echo", echo)
            bw[label], lat[label], cpu[label] = [], [], []
        labels = list(bulk_addr)
        for r in range(reps):  # interleaved: a busy moment hits every path alike
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                # CPU of the whole path: this process (receiver), the servers, the proxy.
                procs = [pids[label]] if label in pids else []
                cpu0 = sum(_cpu_of(p) for p in procs) + _cpu_of(os.getpid())
                bw[label].append(_bulk(bulk_addr[label], size, algorithm))
                used = sum(_cpu_of(p) for p in procs) + _cpu_of(os.getpid()) - cpu0
                cpu[label].append(used / (size / 1e9))
            for label in labels:
                lat[label].append(_latency(echo_addr[label], trips, algorithm))
    return {"bw": bw, "lat": lat, "cpu": cpu}


def _proxy_rows(quick: bool) -> list[dict[str, Any]]:
    size = (64 if quick else 256) << 20
    reps = 3 if quick else 7
    trips = 2000 if quick else 5000
    rows: list[dict[str, Any]] = []
    for algorithm in ("reno", "system"):
        cc = _system_algorithm() if algorithm == "system" else algorithm
        m = _measure(algorithm, size, reps, trips)
        bw, lat, cpu = m["bw"], m["lat"], m["cpu"]
        group = f"proxy bulk ({cc} everywhere)"
        rows.append(
            {
                "group": group,
                "name": "direct loopback",
                "value": statistics.median(bw["direct"]),
                "unit": "MB/s",
                "baseline": True,
                "lower_is_better": False,
                "note": f"median of {reps} runs interleaved with the proxied ones, "
                f"{_spread(bw['direct'])} MB/s; sink in its own process",
            }
        )
        for label, text, _ in _PATHS:
            ratios = [b / d for b, d in zip(bw[label], bw["direct"], strict=True)]
            paired = statistics.median(ratios)
            rows.append(
                {
                    "group": group,
                    "name": f"through the proxy ({text})",
                    "value": statistics.median(bw[label]),
                    "unit": "MB/s",
                    "baseline": False,
                    "lower_is_better": False,
                    "note": f"paired median {paired:.2f}x direct ({_spread(ratios)}); "
                    f"target >= 0.7x: {'met' if paired >= 0.7 else 'NOT met'}",
                }
            )
        rows.append(
            {
                "group": f"proxy bulk cpu ({cc})",
                "name": "direct loopback: receiver",
                "value": statistics.median(cpu["direct"]),
                "unit": "s/GB",
                "baseline": True,
                "lower_is_better": True,
                "note": "median; the sink's own CPU not counted on any path",
            }
        )
        for label, text, _ in _PATHS:
            rows.append(
                {
                    "group": f"proxy bulk cpu ({cc})",
                    "name": f"through the proxy ({text}): receiver + proxy",
                    "value": statistics.median(cpu[label]),
                    "unit": "s/GB",
                    "baseline": False,
                    "lower_is_better": True,
                    "note": "median",
                }
            )
        direct_lat = statistics.median(lat["direct"])
        rows.append(
            {
                "group": f"proxy latency ({cc})",
                "name": "direct loopback round trip",
                "value": direct_lat,
                "unit": "us",
                "baseline": True,
                "lower_is_better": True,
                "note": f"median of {reps} runs' medians; echo server in its own process",
            }
        )
        for label, text, _ in _PATHS:
            med = statistics.median(lat[label])
            rows.append(
                {
                    "group": f"proxy latency ({cc})",
                    "name": f"through the proxy ({text}), round trip",
                    "value": med,
                    "unit": "us",
                    "baseline": False,
                    "lower_is_better": True,
                    "note": f"added {med - direct_lat:.0f} us; target <= 200 us added",
                }
            )
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """All chaos figures (quick: well under 20 s)."""
    return _failpoint_rows(quick) + _proxy_rows(quick)


if __name__ == "__main__" and sys.argv[1:2] == ["--servers"]:
    _serve_forever(int(sys.argv[2]), sys.argv[3])
elif __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        note = row.get("note", "")
        print(f"{row['group']:14} {row['name']:70} {row['value']:10.2f} {row['unit']:6} {note}")
    os._exit(0)
