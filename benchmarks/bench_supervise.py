"""Supervision figures (issue 16): restart latency, hang detection, idle overhead.

* ``supervise-restart`` (ms, lower is better): a child that exits with status 1 right after it
  starts, supervised with no backoff.  ``exit to running again`` is the time from the child's last
  act (it writes ``time.monotonic()`` just before exiting) to the next run's first act (the same
  reading as its first line): the supervisor's reaction plus the child's own start time.
  ``child's own start time`` (the baseline) is the time from a ``Popen`` to the first line of the
  same program run alone.  ``supervisor's part`` is the first minus the second: the figure to stay
  under 100 ms.  Medians over the restarts (CLOCK_MONOTONIC is shared by all processes).
* ``supervise-watchdog`` (ms): a child pings ``WATCHDOG=1`` every ``watchdog/3`` and then stops;
  ``hang detected after the last ping`` is the time from its last ping (it records it) to the
  supervisor's ``watchdog_fired`` event.  The bound, the watchdog interval plus one check
  (``1.25 x watchdog``), is reported as the baseline row.
* ``supervise-idle`` (% of one core): the supervisor's own CPU time (``RUSAGE_SELF``: the children
  and the guard are other processes) over a window, with 50 idle children (``sleep``), and with
  none (the baseline: an idle event loop).
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from buttress.events import Event, add_listener
from buttress.supervise import NotifyReady, ProcessChild, Supervisor

CRASHER = """
import sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"start {time.monotonic()}\\n")
    f.flush()
    f.write(f"exit {time.monotonic()}\\n")
sys.exit(1)
"""

PINGER = """
import os, socket, sys, time
path = os.environ["NOTIFY_SOCKET"]
interval = int(os.environ["WATCHDOG_USEC"]) / 1e6 / 3
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1", path)
for _ in range(3):
    s.sendto(b"WATCHDOG=1", path)
    with open(sys.argv[1], "w") as f:
        f.write(str(time.monotonic()))
    time.sleep(interval)
time.sleep(3600)
"""


def _row(
    group: str, name: str, value: float, unit: str, *, baseline: bool = False, note: str = ""
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "group": group,
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "lower_is_better": True,
    }
    if note:
        row["note"] = note
    return row


def _own_start_ms(record: Path, runs: int) -> float:
    times = []
    for _ in range(runs):
        record.write_text("")
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", CRASHER, str(record)], check=False)
        first = float(record.read_text().split()[1])
        times.append((first - t0) * 1000)
    return statistics.median(times)


async def _restart_gaps(record: Path, restarts: int) -> list[float]:
    record.write_text("")
    child = ProcessChild(
        "crasher", [sys.executable, "-c", CRASHER, str(record)], backoff_initial=0.0
    )
    sup = Supervisor("bench", [child], intensity=restarts + 5, period=3600.0)
    task = asyncio.create_task(sup.run())
    try:
        while record.read_text().count("start") < restarts + 1:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    lines = [line.split() for line in record.read_text().splitlines()]
    gaps, last_exit = [], None
    for kind, value in lines:
        if kind == "exit":
            last_exit = float(value)
        elif last_exit is not None:
            gaps.append((float(value) - last_exit) * 1000)
    return gaps


async def _hang_detection(pinged: Path, watchdog: float, runs: int) -> list[float]:
    fired: list[float] = []

    def listen(event: Event) -> None:
        if event.kind == "watchdog_fired":
            fired.append(time.monotonic())

    remove = add_listener(listen)
    child = ProcessChild(
        "hung",
        [sys.executable, "-c", PINGER, str(pinged)],
        ready=NotifyReady(),
        watchdog=watchdog,
        backoff_initial=0.0,
    )
    sup = Supervisor("bench", [child], intensity=runs + 5, period=3600.0)
    task = asyncio.create_task(sup.run())
    out = []
    try:
        for _ in range(runs):
            before = len(fired)
            while len(fired) == before:
                await asyncio.sleep(0.005)
            out.append((fired[-1] - float(pinged.read_text())) * 1000)
    finally:
        remove()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    return out


async def _idle_cpu(children: int, seconds: float) -> float:
    kids = [ProcessChild(f"idle{i}", ["sleep", "3600"]) for i in range(children)]
    sup = Supervisor("bench", kids)
    await sup.start()
    await sup.ready()
    await asyncio.sleep(0.5)  # settle
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    await asyncio.sleep(seconds)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    await sup.stop()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return cpu / (t1 - t0) * 100


def run(quick: bool = False) -> list[dict[str, Any]]:
    restarts = 5 if quick else 20
    hangs = 2 if quick else 5
    window = 2.0 if quick else 10.0
    watchdog = 0.2
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record"
        own = _own_start_ms(record, restarts)
        gap = statistics.median(asyncio.run(_restart_gaps(record, restarts)))
        detection = statistics.median(
            asyncio.run(_hang_detection(Path(tmp) / "ping", watchdog, hangs))
        )
    idle_none = asyncio.run(_idle_cpu(0, window))
    idle_50 = asyncio.run(_idle_cpu(50, window))
    g = "supervise-restart"
    return [
        _row(g, "child's own start time (spawn to first line, alone)", own, "ms", baseline=True),
        _row(g, "exit to running again (first line of the next run)", gap, "ms"),
        _row(g, "supervisor's part (the difference; figure: < 100 ms)", max(0.0, gap - own), "ms"),
        _row(
            "supervise-watchdog",
            "bound: watchdog + one check (1.25 x 200 ms)",
            watchdog * 1250,
            "ms",
            baseline=True,
        ),
        _row(
            "supervise-watchdog",
            "hang detected after the last ping (watchdog 200 ms)",
            detection,
            "ms",
        ),
        _row(
            "supervise-idle", "supervisor with no children", idle_none, "% of a core", baseline=True
        ),
        _row(
            "supervise-idle",
            "supervisor with 50 idle children (figure: < 1 %)",
            idle_50,
            "% of a core",
        ),
    ]


if __name__ == "__main__":
    for r in run(quick="--quick" in sys.argv):
        print(f"{r['group']:<20} {r['name']:<60} {r['value']:10.2f} {r['unit']}")
