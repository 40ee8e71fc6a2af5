"""Four uvicorn processes behind one idempotency store (Redis, or one SQLite file with lock
claims): duplicates of one key sent to all four at once run once in the whole fleet; every other
copy is a 409 or the replay of that one response."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from buttress.ports import free_port

from .idem_app import runs

HERE = Path(__file__).resolve().parent


def serve(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "idem_app:store_app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_up(urls: list[str]) -> None:
    end = time.monotonic() + 20
    for url in urls:
        while True:
            try:
                httpx.get(url + "/health", timeout=0.5)
                break
            except httpx.TransportError:
                assert time.monotonic() < end, f"{url} did not start"
                time.sleep(0.05)


def check_fleet(tmp_path: Path, store_env: dict[str, str]) -> None:
    """Run four replicas with ``store_env`` (``IDEM_REDIS`` or ``IDEM_SQLITE``) and check the
    fleet ran each of twelve raced keys once."""
    exec_db = str(tmp_path / "runs.db")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "IDEM_EXEC_DB": exec_db,
        **store_env,
    }
    ports = [free_port() for _ in range(4)]
    servers = [serve(p, env) for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        wait_up(urls)

        async def fleet() -> dict[str, list[httpx.Response]]:
            async with httpx.AsyncClient(timeout=10) as client:

                async def one_key(k: int) -> list[httpx.Response]:
                    h = {"Idempotency-Key": f'"order-{k}"'}
                    # Replica k % 4 gets a 50 ms head start, so the keys' first executions are
                    # spread over the replicas however the machine schedules them; the other
                    # three race it while it runs (the handler takes 200 ms).
                    order = urls[k % 4 :] + urls[: k % 4]

                    async def send(i: int, u: str) -> httpx.Response:
                        await asyncio.sleep(0.05 if i else 0.0)
                        return await client.post(f"{u}/orders?sleep=0.2", json={"k": k}, headers=h)

                    sent = await asyncio.gather(*(send(i, u) for i, u in enumerate(order)))
                    return [sent[(j - k % 4) % 4] for j in range(4)]

                results = await asyncio.gather(*(one_key(k) for k in range(12)))
                return {f"order-{k}": r for k, r in enumerate(results)}

        answers = asyncio.run(fleet())
        for url in urls:  # after the races, every replica replays every key
            r = httpx.post(
                f"{url}/orders?sleep=0.2", json={"k": 0}, headers={"Idempotency-Key": '"order-0"'}
            )
            assert "true" == r.headers["idempotent-replayed"]
    finally:
        for s in servers:
            s.terminate()
        for s in servers:
            s.wait(10)
            if s.stderr is not None:
                s.stderr.close()

    executed = runs(exec_db)
    assert sorted(f'"order-{k}"' for k in range(12)) == sorted(k for k, _, _ in executed)
    assert len({pid for _, _, pid in executed}) > 1  # the work was spread over the replicas
    for key, responses in answers.items():
        fresh = [
            r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
        ]
        assert 1 == len(fresh), key
        for r in responses:
            assert r.status_code == 409 or r.content == fresh[0].content, key
