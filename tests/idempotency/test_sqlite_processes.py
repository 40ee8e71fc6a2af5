"""The SQLite store across processes: four uvicorn processes on one file run each raced key once;
a server killed with SIGKILL while it runs a request keeps its key locked (409, no second run)
until ``lock_timeout``, and then another process runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from buttress.ports import free_port

from .fleet import check_fleet, serve, wait_up
from .idem_app import runs


def test_four_processes_share_keys_through_one_sqlite_file(tmp_path: Path) -> None:
    check_fleet(tmp_path, {"IDEM_SQLITE": str(tmp_path / "idem.db")})


def test_a_killed_server_s_key_stays_locked_until_the_lock_timeout(tmp_path: Path) -> None:
    exec_db = str(tmp_path / "runs.db")
    lock = 1.5
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "IDEM_EXEC_DB": exec_db,
        "IDEM_SQLITE": str(tmp_path / "idem.db"),
        "IDEM_LOCK_TIMEOUT": str(lock),
    }
    ports = [free_port(), free_port()]
    doomed, survivor = (serve(p, env) for p in ports)
    a, b = (f"http://127.0.0.1:{p}" for p in ports)
    h = {"Idempotency-Key": '"order-1"'}
    try:
        wait_up([a, b])

        async def scenario() -> tuple[list[int], float]:
            async with httpx.AsyncClient(timeout=10) as client:
                slow = asyncio.create_task(
                    client.post(f"{a}/orders", json={}, headers={**h, "X-Sleep": "30"})
                )
                while not runs(exec_db):  # the doomed server runs it now
                    await asyncio.sleep(0.02)
                started = time.monotonic()
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
                with pytest.raises(httpx.TransportError):
                    await slow
                seen = []
                while True:  # repeat on the survivor until it runs the request itself
                    r = await client.post(f"{b}/orders", json={}, headers=h)
                    seen.append(r.status_code)
                    if r.status_code != 409:
                        return seen, time.monotonic() - started
                    await asyncio.sleep(0.1)

        seen, took = asyncio.run(scenario())
    finally:
        for s in (doomed, survivor):
            if s.poll() is None:
                s.terminate()
            s.wait(10)
            if s.stderr is not None:
                s.stderr.close()
    assert 409 == seen[0]  # the dead server's key is not run again at once
    assert 201 == seen[-1] and set(seen[:-1]) == {409}
    assert lock - 0.3 <= took <= lock + 3.0  # taken over once the lock ran out, not before
    assert 2 == len(runs(exec_db))  # the killed run (no answer ever sent) and the new one
