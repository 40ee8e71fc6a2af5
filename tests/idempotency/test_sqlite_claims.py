"""The SQLite store's lock claims: four uvicorn processes on one file run each raced key once; a
server killed with SIGKILL while it runs a request frees its key at once (no lock_timeout to wait
out); the states and fences of one store, in process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from buttress.errors import ConfigError
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore, StoredResponse
from buttress.ports import free_port

from .fleet import check_fleet, serve, wait_up
from .idem_app import runs


def test_four_processes_share_keys_through_one_sqlite_file(tmp_path: Path) -> None:
    check_fleet(tmp_path, {"IDEM_SQLITE": str(tmp_path / "idem.db")})


def test_a_killed_server_frees_its_key_at_once(tmp_path: Path) -> None:
    exec_db = str(tmp_path / "runs.db")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "IDEM_EXEC_DB": exec_db,
        "IDEM_SQLITE": str(tmp_path / "idem.db"),
    }
    ports = [free_port(), free_port()]
    doomed, survivor = (serve(p, env) for p in ports)
    a, b = (f"http://127.0.0.1:{p}" for p in ports)
    h = {"Idempotency-Key": '"order-1"'}
    try:
        wait_up([a, b])

        async def scenario() -> tuple[int, int, float]:
            async with httpx.AsyncClient(timeout=10) as client:
                slow = asyncio.create_task(client.post(f"{a}/orders?sleep=30", json={}, headers=h))
                while not runs(exec_db):  # the doomed server runs it now
                    await asyncio.sleep(0.02)
                racing = await client.post(f"{b}/orders", json={}, headers=h)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
                start = time.monotonic()
                again = await client.post(f"{b}/orders", json={}, headers=h)
                took = time.monotonic() - start
                with pytest.raises(httpx.TransportError):
                    await slow
                return racing.status_code, again.status_code, took

        racing, again, took = asyncio.run(scenario())
    finally:
        for s in (doomed, survivor):
            if s.poll() is None:
                s.terminate()
            s.wait(10)
            if s.stderr is not None:
                s.stderr.close()
    assert 409 == racing  # while the doomed server ran it
    assert 201 == again and took < 2.0  # the lock went with the process: no 60 s lock_timeout
    assert 2 == len(runs(exec_db))  # the killed run (no answer ever sent) and the new one


def test_the_states_and_fences_of_lock_claims(tmp_path: Path) -> None:
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    assert "lock" == store.claims
    r = StoredResponse(201, [(b"x-a", b"1")], b"body")

    async def scenario() -> list[object]:
        seen: list[object] = [
            (await store.begin("k", "fp", "t1", now=0, ttl=100, lock=10)).state,
            (await store.begin("k", "fp", "t2", now=5, ttl=100, lock=10)).state,  # running
            (await store.begin("k", "other", "t2", now=5, ttl=100, lock=10)).state,  # mismatch
            (await store.begin("k", "fp", "t3", now=50, ttl=100, lock=10)).state,  # still runs
            await store.complete("k", "wrong", r, now=12, ttl=100),  # not its token: fenced
            await store.complete("k", "t1", r, now=12, ttl=100),
        ]
        done = await store.begin("k", "fp", "t4", now=13, ttl=100, lock=10)
        seen += [done.state, done.response, store.holds("k")]
        seen.append((await store.begin("k", "other", "t5", now=13, ttl=100, lock=10)).state)
        seen.append(
            (await store.begin("k", "fp", "t6", now=113, ttl=100, lock=10)).state
        )  # expired
        await store.release("k", "t6")
        seen.append((await store.begin("k", "fp", "t7", now=114, ttl=100, lock=10)).state)
        await store.release("k", "t7")
        return seen

    assert [
        "new",
        "running",
        "mismatch",
        "running",
        False,
        True,
        "done",
        r,
        False,
        "mismatch",
        "new",
        "new",
    ] == asyncio.run(scenario())
    # A second store on the same file in the same process shares the claims (POSIX record locks
    # belong to the process, so the store cannot rely on the lock alone).
    other = SQLiteIdempotencyStore(tmp_path / "idem.db")

    async def shared() -> list[str]:
        first = await store.begin("s", "fp", "t1", now=0, ttl=100, lock=10)
        second = await other.begin("s", "fp", "t2", now=0, ttl=100, lock=10)
        return [first.state, second.state]

    assert ["new", "running"] == asyncio.run(shared())
    store.close()  # frees "s"
    assert "new" == asyncio.run(other.begin("s", "fp", "t3", now=1, ttl=100, lock=10)).state
    other.close()
    with pytest.raises(ConfigError, match="claims"):
        SQLiteIdempotencyStore(tmp_path / "x.db", claims="file")  # type: ignore[arg-type]
    # One file, one kind of claims: each kind would think free a key the other runs.
    with pytest.raises(ConfigError, match=r"idem.db is used with claims='lock'; use that"):
        SQLiteIdempotencyStore(tmp_path / "idem.db", claims="row")
