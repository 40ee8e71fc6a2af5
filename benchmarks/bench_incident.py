"""Alert notifications per second into the incident store, with the store's fsync on
(``synchronous = FULL``: a notification acknowledged to Alertmanager is on disk).

The figure to reach (issue 19): the receiver ingests at least 1,000 alert notifications a second.

Groups (notifications/s, higher is better):

* ``incident.store``: :meth:`IncidentStore.ingest` called directly with parsed Alertmanager
  payloads, one notification per transaction (baseline: one fsync each) and 100 per transaction
  (what the receiver's group commit does under load).
* ``incident.http``: the real receiver (``buttress incident serve``, uvicorn, in its own process)
  on a loopback port, Alertmanager version-4 payloads (two alerts each, 500 alert groups) POSTed
  over keep-alive HTTP/1.1 connections by a small asyncio client that sends pre-encoded requests
  (so the client costs little of the two cores), with 1 connection (baseline: every request waits
  for its own fsync) and with 64 (the receiver batches what arrives while it writes).

The mix of notifications cycles through what Alertmanager sends: a group's first notification
opens an incident, the next two add an alert each, the rest repeat, and every tenth round the
group resolves (and the next round opens a new incident).  Every notification is answered only
once its transaction has committed.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GROUPS = 500


def payload(k: int) -> dict[str, Any]:
    """The ``k``-th notification of the mix (see the module docstring)."""
    group, rnd = k % GROUPS, k // GROUPS
    resolved = rnd % 10 == 9
    alerts = []
    for j in range(2):
        alerts.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": {"alertname": "HighErrorRate", "service": f"svc{group}", "i": str(j)},
                "annotations": {"summary": f"errors on svc{group}"},
                "startsAt": f"2026-01-01T00:{rnd % 60:02d}:00Z"
                if rnd % 10 < 3
                else "2026-01-01T00:02:00Z",
                "endsAt": "2026-01-01T01:00:00Z" if resolved else "0001-01-01T00:00:00Z",
                "generatorURL": "http://127.0.0.1:9090/graph",
                "fingerprint": f"{group:04x}{j}",
            }
        )
    return {
        "receiver": "buttress",
        "status": "resolved" if resolved else "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": "HighErrorRate", "service": f"svc{group}"},
        "commonLabels": {"alertname": "HighErrorRate", "service": f"svc{group}"},
        "commonAnnotations": {"summary": f"errors on svc{group}"},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="HighErrorRate", service="svc{group}"}}',
        "truncatedAlerts": 0,
    }


def bench_store(n: int, batch: int) -> float:
    from buttress.incident import IncidentStore, parse_alertmanager

    notes = [parse_alertmanager(payload(k)) for k in range(n)]
    with tempfile.TemporaryDirectory() as d, IncidentStore(Path(d) / "inc.db") as store:
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            store.ingest(notes[i : i + batch])
        return n / (time.perf_counter() - t0)


def _request(k: int, port: int) -> bytes:
    body = json.dumps(payload(k), separators=(",", ":")).encode()
    head = (
        f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _connection(port: int, requests: list[bytes], start: int, step: int, end: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    k = start
    try:
        while time.perf_counter() < end:
            writer.write(requests[k % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"receiver answered {head[:40]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            sent += 1
            k += step
    finally:
        writer.close()
    return sent


async def _drive(port: int, connections: int, seconds: float) -> float:
    requests = [_request(k, port) for k in range(GROUPS * 10)]
    t0 = time.perf_counter()
    end = t0 + seconds
    counts = await asyncio.gather(
        *(_connection(port, requests, c, connections, end) for c in range(connections))
    )
    return sum(counts) / (time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_http(connections: int, seconds: float) -> float:
    port = _free_port()
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ}
        proc = subprocess.Popen(
            [sys.executable, "-m", "buttress.cli", "incident", "serve", "--store",
             str(Path(d) / "inc.db"), "--port", str(port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the receiver did not start") from None
                    time.sleep(0.05)
            return asyncio.run(_drive(port, connections, seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 300 if quick else 2000
    seconds = 2.0 if quick else 8.0
    rows: list[dict[str, Any]] = []
    for batch, baseline in ((1, True), (100, False)):
        rows.append(
            {
                "group": "incident.store",
                "name": f"IncidentStore.ingest, {batch} per transaction (fsync on)",
                "value": bench_store(n, batch),
                "unit": "notifications/s",
                "baseline": baseline,
                "lower_is_better": False,
            }
        )
    for connections, baseline in ((1, True), (64, False)):
        rows.append(
            {
                "group": "incident.http",
                "name": f"receiver over HTTP, {connections} connection(s) (fsync on)",
                "value": bench_http(connections, seconds),
                "unit": "notifications/s",
                "baseline": baseline,
                "lower_is_better": False,
                "note": "target >= 1,000/s" if connections > 1 else "",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['group']:16} {row['name']:58} {row['value']:>10,.0f} {row['unit']}")
