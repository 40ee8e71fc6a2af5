"""Drain: a real uvicorn subprocess under load gets SIGTERM; readiness fails first, no request in
flight is lost, then the server exits.  And the Drainer's parts for other servers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from buttress.errors import ConfigError
from buttress.health import Drainer, HealthRegistry, Status
from buttress.testing import FakeClock

from .servers import wait_port

APP = Path(__file__).with_name("drain_app.py")
DELAY = 1.5  # SIGTERM -> stop accepting
GRACE = 5.0
WORK = 0.8  # each request's duration
LB_LAG = 0.8  # the balancer stops sending this long after it sees readiness fail
WORKERS = 12


@dataclass
class Outcome:
    started: float
    ended: float
    result: str  # "200 done" or the exception's type
    connection: str


async def test_sigterm_under_load_loses_no_request() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(DELAY), str(GRACE), str(WORK)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port="), line + (proc.stderr.read() if proc.stderr else "")
        port = int(line.strip().split("=")[1])
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        outcomes: list[Outcome] = []
        unready_at: list[float] = []
        stop = asyncio.Event()

        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            assert 200 == (await client.get("/health/ready")).status_code

            async def worker(i: int) -> None:
                # a client behind a load balancer: sends until the balancer sees readiness fail
                await asyncio.sleep(i * WORK / WORKERS)  # spread the requests over time
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        r = await client.get("/work")
                        result = f"{r.status_code} {r.text}"
                        conn = r.headers.get("connection", "")
                    except httpx.HTTPError as e:
                        result, conn = type(e).__name__, ""
                    outcomes.append(Outcome(t0, time.monotonic(), result, conn))

            async def balancer() -> None:
                async with httpx.AsyncClient(base_url=base, timeout=5) as probe_client:
                    while True:
                        r = await probe_client.get("/health/ready")
                        if r.status_code == 503:
                            assert "fail" == r.json()["status"]
                            assert "server:draining" in r.json()["checks"]
                            unready_at.append(time.monotonic())
                            await asyncio.sleep(LB_LAG)  # the removal propagates
                            stop.set()
                            return
                        await asyncio.sleep(0.05)

            workers = [asyncio.create_task(worker(i)) for i in range(WORKERS)]
            probing = asyncio.create_task(balancer())
            await asyncio.sleep(WORK + 0.2)
            term_at = time.monotonic()
            proc.send_signal(signal.SIGTERM)

            async def long_request() -> Outcome:
                # sent during the delay, still running when the server stops accepting
                t0 = time.monotonic()
                r = await client.get("/work", params={"seconds": DELAY + 1.0})
                return Outcome(t0, time.monotonic(), f"{r.status_code} {r.text}", "")

            long_one = asyncio.create_task(long_request())
            await asyncio.wait_for(probing, 10)
            await asyncio.wait_for(asyncio.gather(*workers), 20)
            long_outcome = await asyncio.wait_for(long_one, 20)
        code = await asyncio.to_thread(proc.wait, 20)
        exited_at = time.monotonic()
        closed_line, served_line = proc.stdout.read().split()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    assert 0 == code
    lost = [o for o in outcomes if o.result != "200 done"]
    assert [] == lost
    in_flight_at_term = [o for o in outcomes if o.started < term_at < o.ended]
    assert len(in_flight_at_term) >= WORKERS // 2
    during_delay = [o for o in outcomes if o.started > term_at]
    assert during_delay  # still served while readiness was failing
    assert all(o.connection == "close" for o in during_delay)  # keep-alive clients move away
    # the server stopped accepting after the delay, with a request still running, which finished
    closed_at = float(closed_line.removeprefix("closed_at="))
    assert closed_at - term_at >= DELAY
    assert long_outcome.started < closed_at < long_outcome.ended
    assert "200 done" == long_outcome.result
    assert unready_at[0] - term_at < DELAY  # readiness failed first
    assert exited_at - term_at >= DELAY  # and the server kept serving through the delay
    assert exited_at - term_at < DELAY + GRACE
    assert f"served={len(outcomes) + 1}" == served_line


async def test_drainer_parts_for_other_servers() -> None:
    clock = FakeClock()
    reg = HealthRegistry(clock=clock)
    drainer = Drainer(reg, delay=2.0, grace=0.05, clock=clock)
    assert (False, False) == (drainer.draining, drainer.stop_due)
    release = asyncio.Event()
    seen_headers: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"connection", b"keep")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            seen_headers.append(message["headers"])

    async def receive() -> Any:
        return {"type": "http.request"}

    wrapped = drainer.middleware(app)
    task = asyncio.create_task(wrapped({"type": "http"}, receive, send))
    await asyncio.sleep(0)
    assert 1 == drainer.in_flight
    stopped: list[float] = []
    drainer.install(lambda: stopped.append(1.0), signals=(signal.SIGUSR1,))
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        end = time.monotonic() + 5
        while not drainer.draining and time.monotonic() < end:
            await asyncio.sleep(0.005)
        assert drainer.draining
        assert Status.FAIL == (await reg.evaluate("readiness")).status
        assert drainer.stop_due is False
        clock.advance(2.0)
        assert drainer.stop_due is True
        assert await drainer.wait_idle() is False  # a request is still in flight after grace
        os.kill(os.getpid(), signal.SIGUSR1)  # a second signal stops at once
        end = time.monotonic() + 5
        while not stopped and time.monotonic() < end:
            await asyncio.sleep(0.005)
        assert [1.0] == stopped
        release.set()
        await task
        assert await drainer.wait_idle(1.0) is True
        assert [[(b"connection", b"close")]] == seen_headers
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)


def test_drainer_bad_input() -> None:
    reg = HealthRegistry()
    with pytest.raises(ConfigError) as e:
        Drainer(reg, delay=-1)
    assert "delay" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        Drainer(reg, grace=float("inf"))
    assert "grace" == e.value.parameter
    with pytest.raises(ConfigError) as e:
        Drainer("registry")  # type: ignore[arg-type]
    assert "registry" == e.value.parameter
