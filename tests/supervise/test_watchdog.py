"""sd_notify from real children (READY=1, WATCHDOG=1, systemd-notify), hangs, and no orphans."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from buttress.supervise import NotifyReady, ProcessChild, Supervisor
from buttress.supervise.events import WatchdogFired
from buttress.supervise.process import sweep_notify_dirs

from .helpers import CHILD, Captured, alive, child, records, until


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.serial  # the detection bound needs a quiet machine
async def test_a_child_that_stops_pinging_is_killed_and_restarted(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    captured = Captured()
    hung = child("hung", rec, "--ping-for", "0.3", ready=NotifyReady(), watchdog=0.2)
    sup = Supervisor("s", [hung], intensity=100)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: len(records(rec, "start")) >= 2)
    finally:
        await _stop(task)
        captured.close()
    fired = [e for e in captured.events if isinstance(e, WatchdogFired)]
    assert fired, captured.kinds()
    # detected within the watchdog interval plus one check (a quarter of it), with some slack
    assert 0.2 < fired[0].silence <= 0.2 + 0.05 + 0.05
    exits = [c["last_exit"] for c in sup.snapshot()["children"]]
    assert exits and exits[0] is not None
    assert any("watchdog: no WATCHDOG=1" in getattr(e, "reason", "") for e in captured.events)


async def test_a_child_that_keeps_pinging_is_left_alone(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    sup = Supervisor("s", [child("ok", rec, ready=NotifyReady(), watchdog=0.15)])
    task = asyncio.create_task(sup.run())
    await asyncio.sleep(0.8)
    await _stop(task)
    assert 1 == len(records(rec, "start"))


async def test_watchdog_trigger_counts_as_a_hang(tmp_path: Path) -> None:
    script = "import os,socket,time\n" + textwrap.dedent(
        """
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
        time.sleep(0.1)
        s.sendto(b"WATCHDOG=trigger", os.environ["NOTIFY_SOCKET"])
        time.sleep(30)
        """
    )
    captured = Captured()
    c = ProcessChild("t", [sys.executable, "-c", script], ready=NotifyReady(), restart="transient")
    sup = Supervisor("s", [c], intensity=10, period=60.0)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: "child_restarting" in captured.kinds())
    finally:
        await _stop(task)
        captured.close()
    assert "watchdog: the child sent WATCHDOG=trigger" in [
        getattr(e, "reason", None) for e in captured.events
    ]


@pytest.mark.skipif(shutil.which("systemd-notify") is None, reason="systemd-notify not installed")
async def test_systemd_notify_works_unchanged(tmp_path: Path) -> None:
    # systemd-notify passes a descriptor with BARRIER=1 and waits until it is closed
    script = "systemd-notify --ready --status=up && exec sleep 30"
    c = ProcessChild("n", ["/bin/sh", "-c", script], ready=NotifyReady(), ready_timeout=4.0)
    sup = Supervisor("s", [c], intensity=1, period=60.0)
    task = asyncio.create_task(sup.run())
    started = time.monotonic()
    try:
        await until(lambda: sup.snapshot()["children"][0]["state"] == "running", timeout=5)
        await until(lambda: sup.snapshot()["children"][0]["status"] == "up", timeout=5)
    finally:
        await _stop(task)
    assert time.monotonic() - started < 3  # not the 5 s a kept descriptor would cost


SUPERVISOR = """
import asyncio, sys
from buttress.supervise import ProcessChild, Supervisor
child, rec = sys.argv[1], sys.argv[2]
children = [
    ProcessChild(n, [sys.executable, child, "--name", n, "--record", rec, *extra])
    for n, extra in (("a", []), ("b", ["--grandchild"]))
]
asyncio.run(Supervisor("s", children).run())
"""


def test_no_orphan_survives_sigkill_of_the_supervisor(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    tmp = Path(tempfile.mkdtemp(prefix="bn-", dir="/tmp"))  # short: socket paths are short
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src"), "TMPDIR": str(tmp)}
    sup = subprocess.Popen([sys.executable, "-c", SUPERVISOR, CHILD, str(rec)], env=env)
    try:
        deadline = time.monotonic() + 10
        while len(records(rec, "ready")) < 2 or not records(rec, "grandchild"):
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.02)
    finally:
        sup.send_signal(signal.SIGKILL)
        sup.wait()
    pids = [pid for _, _, pid, _ in records(rec, "start") + records(rec, "grandchild")]
    assert 3 == len(pids)
    deadline = time.monotonic() + 3
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [] == [pid for pid in pids if alive(pid)]
    # Killed, it could not remove its children's notify sockets; the next supervisor does.
    left = sorted(str(d) for d in tmp.glob("buttress-notify-*"))
    assert 2 == len(left)
    assert left == sorted(sweep_notify_dirs(str(tmp)))
    assert [] == list(tmp.iterdir())
    tmp.rmdir()


def test_a_long_temporary_directory_does_not_break_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sun_path`` holds 107 bytes: under a long TMPDIR the sockets go to /tmp instead."""
    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))

    async def main() -> None:
        child = ProcessChild("c", [sys.executable, "-c", "import time; time.sleep(30)"], grace=1)
        await child.start()
        try:
            assert child._notify is not None and child._notify.path.startswith("/tmp/")
        finally:
            child.kill("test done")
            await child.wait()

    asyncio.run(main())
