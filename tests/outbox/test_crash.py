"""The crash test: producers commit orders with their messages while relay processes are killed
with SIGKILL at random (and one producer too); afterwards a checker proves that every committed
message was delivered, its effect applied exactly once, in order per key, and that nothing of a
rolled-back or killed transaction got out."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from buttress.outbox import Outbox

from . import crash_worker
from ._backends import Backend

WORKER = str(Path(__file__).with_name("crash_worker.py"))
PRODUCERS, PER_PRODUCER = 3, 120


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, WORKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _rows(backend: Backend, sql: str) -> list[Any]:
    conn = backend.connect()
    if backend.kind == "sqlite":
        conn.close()
        import sqlite3

        path = Path(backend.target) / (
            "consumer.db" if "effects" in sql or "calls" in sql else "app.db"
        )
        conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _drain(outbox: Outbox, relays: list[subprocess.Popen[bytes]], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        (status,) = outbox.status()
        if status.pending == 0:
            return
        for r in relays:
            assert r.poll() is None, r.stderr.read() if r.stderr else ""
        time.sleep(0.1)
    raise AssertionError(f"not drained after {timeout}s: {outbox.status()}")


@pytest.mark.slow
def test_sigkilled_relays_lose_nothing_and_apply_once(backend: Backend) -> None:
    rng = random.Random(18)
    target = backend.target
    outbox = backend.outbox(queues=["orders"])
    conn = backend.connect()
    conn.execute(crash_worker.ORDERS)  # made once here: concurrent CREATEs race on PostgreSQL
    conn.close()
    crash_worker.Consumer(backend.kind, target).conn.close()
    relays = [_spawn("relay", backend.kind, target) for _ in range(3)]
    producers = [
        _spawn("producer", backend.kind, target, str(p), str(PER_PRODUCER))
        for p in range(PRODUCERS)
    ]
    victim = _spawn("producer", backend.kind, target, "99", "100000")  # killed half-way
    kills = 0
    try:
        deadline = time.monotonic() + 60
        while any(p.poll() is None for p in producers) or kills < 8:
            assert time.monotonic() < deadline, "producers did not finish"
            time.sleep(rng.uniform(0.05, 0.3))
            i = rng.randrange(len(relays))
            _kill(relays[i])
            kills += 1
            relays[i] = _spawn("relay", backend.kind, target)
            if victim.poll() is None and _rows(backend, "SELECT 1 FROM orders WHERE producer = 99"):
                _kill(victim)  # between two transactions or inside one: both must hold
        for p in producers:
            assert 0 == p.returncode, p.stderr.read() if p.stderr else ""
        _drain(outbox, relays, timeout=60)
    finally:
        for proc in [*relays, *producers, victim]:
            if proc.poll() is None:
                _kill(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        outbox.close()

    committed = set(_rows(backend, "SELECT producer, seq FROM orders"))
    effects = _rows(backend, "SELECT n, key, producer, seq FROM effects ORDER BY n")
    applied = [(p, s) for _, _, p, s in effects]
    calls = len(_rows(backend, "SELECT uid FROM calls"))

    assert PRODUCERS * PER_PRODUCER < len(committed)  # the victim committed some before dying
    assert committed == set(applied), "every committed message applied, nothing else"
    assert len(applied) == len(set(applied)), "each effect applied once"
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, key, _, seq in effects:
        by_key[key].append(seq)
    for key, seqs in by_key.items():
        assert sorted(seqs) == seqs, f"order broken for {key}"
    assert kills >= 8
    assert victim.returncode == -signal.SIGKILL
    assert calls >= len(applied)  # handler calls include the redeliveries and the failed attempts
    status = backend.outbox(queues=["orders"]).status()
    assert [(0, 0)] == [(s.pending, s.dead) for s in status]
