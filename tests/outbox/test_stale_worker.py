"""Fencing with real processes: a relay frozen (SIGSTOP) in the middle of a delivery outlives its
lease, a second relay takes the message over and delivers it, and when the first one wakes up
its acknowledgement is refused and its late delivery changes nothing (the inbox)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from buttress.outbox import SQLiteOutbox

from . import crash_worker

WORKER = str(Path(__file__).with_name("stale_worker.py"))


def _spawn(directory: Path, name: str, pause: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(WORKER).parent), *sys.path])}
    return subprocess.Popen(
        [sys.executable, WORKER, str(directory), name, str(pause)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _calls(directory: Path) -> list[str]:
    with sqlite3.connect(directory / "consumer.db") as db:
        return [r[0] for r in db.execute("SELECT uid FROM calls")]


def test_a_frozen_relay_is_fenced_and_its_late_delivery_changes_nothing(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "app.db", queues=[crash_worker.QUEUE])
    crash_worker.Consumer("sqlite", str(tmp_path)).conn.close()
    conn = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    conn.execute("BEGIN")
    outbox.enqueue(conn, crash_worker.QUEUE, {"order": 1}, key="sku-1")
    conn.execute("COMMIT")

    stale = _spawn(tmp_path, "stale", pause=0.5)
    try:
        end = time.monotonic() + 20
        while not _calls(tmp_path):  # the stale relay is inside its handler
            assert time.monotonic() < end and stale.poll() is None, stale.stderr
            time.sleep(0.01)
        stale.send_signal(signal.SIGSTOP)  # heartbeats stop too
        time.sleep(1.3)  # past its 1 s lease
        fresh = _spawn(tmp_path, "fresh", pause=0.0)
        out, err = fresh.communicate(timeout=30)
        assert (0, "done\n") == (fresh.returncode, out), err
        stale.send_signal(signal.SIGCONT)
        out, err = stale.communicate(timeout=30)
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()
    assert 0 == stale.returncode, err
    # Refused: the heartbeat's renewal when it wakes first, else the acknowledgement.
    assert re.search(r"^fenced (renew|ack) 1$", out, re.M), out
    with sqlite3.connect(tmp_path / "consumer.db") as db:
        assert [(1,)] == db.execute("SELECT count(*) FROM effects").fetchall()
    assert ["stale", "fresh"] == [c.split(":")[0] for c in _calls(tmp_path)]
    (status,) = outbox.status()
    assert (0, 0) == (status.pending, status.dead)
