"""Supervisors over real processes: crashes, strategies, restart types, escalation, readiness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buttress.supervise import CrashLoop, NotifyReady, Supervisor, TcpReady
from buttress.supervise.events import ChildExited, ChildRestarting

from .helpers import Captured, alive, child, free_port, records, until


async def _stop(sup: Supervisor, task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_crashing_child_runs_again(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    captured = Captured()
    sup = Supervisor("s", [child("a", rec, "--exit-after", "0.1", "--code", "3")], intensity=100)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: len(records(rec, "start")) >= 3)
    finally:
        await _stop(sup, task)
        captured.close()
    pids = [pid for _, _, pid, _ in records(rec, "start")]
    assert len(set(pids)) == len(pids)
    exits = [e.reason for e in captured.events if isinstance(e, ChildExited)]
    assert ["exited 3", "exited 3"] == exits[:2]
    assert any(isinstance(e, ChildRestarting) for e in captured.events)
    assert not any(alive(pid) for pid in pids)


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [("one_for_one", {"b"}), ("one_for_all", {"a", "b", "c"}), ("rest_for_one", {"b", "c"})],
)
async def test_strategies_restart_the_right_siblings(
    tmp_path: Path, strategy: str, restarted: set[str]
) -> None:
    rec = tmp_path / "rec"
    children = [child("a", rec), child("b", rec, "--exit-after", "0.3"), child("c", rec)]
    sup = Supervisor("s", children, strategy=strategy, intensity=100)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: all(len(records(rec, "start", n)) >= 2 for n in restarted))
        await asyncio.sleep(0.1)  # time enough for a wrong sibling to start again too
    finally:
        await _stop(sup, task)
    started = {n for n in "abc" if len(records(rec, "start", n)) >= 2}
    assert restarted == started
    # the siblings stopped for the restart were stopped last-started first
    terms = [n for _, n, _, _ in records(rec, "term")]
    if strategy == "one_for_all":
        assert ["c", "a"] == terms[:2]


async def test_transient_and_temporary_children(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    children = [
        child("done", rec, "--exit-after", "0.05", "--code", "0", restart="transient"),
        child("crash", rec, "--exit-after", "0.05", "--code", "1", restart="transient"),
        child("once", rec, "--exit-after", "0.05", "--code", "1", restart="temporary"),
    ]
    sup = Supervisor("s", children, intensity=100)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: len(records(rec, "start", "crash")) >= 3)
        await asyncio.sleep(0.2)
    finally:
        await _stop(sup, task)
    assert 1 == len(records(rec, "start", "done"))
    assert 1 == len(records(rec, "start", "once"))
    states = {c["name"]: c["state"] for c in sup.snapshot()["children"]}
    assert "exited" == states["done"] and "removed" == states["once"]


async def test_intensity_exceeded_gives_up_and_leaves_nothing_running(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    captured = Captured()
    children = [child("steady", rec), child("loop", rec, "--exit-after", "0", "--code", "2")]
    sup = Supervisor("s", children, intensity=2, period=30.0)
    try:
        with pytest.raises(CrashLoop, match="3 restarts within 30s exceed the intensity 2"):
            await asyncio.wait_for(sup.run(), 20)
    finally:
        captured.close()
    assert 3 == len(records(rec, "start", "loop"))  # intensity 2: the first start and 2 restarts
    assert "gave_up" in captured.kinds("s")
    assert not any(alive(pid) for _, _, pid, _ in records(rec, "start"))


async def test_ordered_start_waits_for_readiness(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    port = free_port()
    children = [
        child("web", rec, depends_on=["db", "cache"]),
        child("db", rec, "--ready-after", "0.3", ready=NotifyReady()),
        child("cache", rec, "--ready-after", "0.2", "--listen", str(port), ready=TcpReady(port)),
    ]
    sup = Supervisor("s", children)
    assert ["db", "cache", "web"] == sup.order
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: bool(records(rec, "start", "web")))
    finally:
        await _stop(sup, task)
    ((_, _, _, web_started),) = records(rec, "start", "web")
    ((_, _, _, db_ready),) = records(rec, "ready", "db")
    ((_, _, _, cache_ready),) = records(rec, "ready", "cache")
    assert web_started > db_ready and web_started > cache_ready


async def test_a_child_that_never_gets_ready_counts_as_failed(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    children = [child("slow", rec, "--ready-after", "5", ready=NotifyReady(), ready_timeout=0.3)]
    sup = Supervisor("s", children, intensity=1, period=60.0)
    with pytest.raises(CrashLoop, match="slow failed"):
        await asyncio.wait_for(sup.run(), 10)
    assert "not ready within 0.3s" == sup.snapshot()["children"][0]["last_exit"]


async def test_stop_sends_sigterm_in_reverse_order_then_sigkill_after_grace(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    children = [
        child("first", rec),
        child("second", rec, "--ignore-term", grace=0.3),
        child("third", rec),
    ]
    sup = Supervisor("s", children)
    task = asyncio.create_task(sup.run())
    await until(lambda: len(records(rec, "ready")) == 3)
    await _stop(sup, task)
    assert ["third", "second", "first"] == [n for _, n, _, _ in records(rec, "term")]
    exits = {c["name"]: c["last_exit"] for c in sup.snapshot()["children"]}
    assert "stopped (killed by SIGKILL, SIGKILL after the 0.3s grace)" == exits["second"]
    assert "stopped (exited 0)" == exits["first"]


HEALTH_SERVER = """
import sys, time, uvicorn
from buttress.health import HealthRegistry
from buttress.health.asgi import HealthApp
from buttress.health.checks import Check

port, warmup = int(sys.argv[1]), float(sys.argv[2])
born = time.monotonic()

def warmed_up() -> None:
    if time.monotonic() - born < warmup:
        raise RuntimeError("warming up")

registry = HealthRegistry()
registry.add(Check("cache", warmed_up, ttl=0))
uvicorn.run(HealthApp(registry), host="127.0.0.1", port=port, log_level="error")
"""


async def test_readiness_by_a_buttress_health_check(tmp_path: Path) -> None:
    import os
    import sys

    from buttress.supervise import HealthReady, ProcessChild

    pytest.importorskip("uvicorn")
    port = free_port()
    rec = tmp_path / "rec"
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    server = ProcessChild(
        "server",
        [sys.executable, "-c", HEALTH_SERVER, str(port), "0.8"],
        ready=HealthReady(f"http://127.0.0.1:{port}/health/ready"),
        env=env,
        ready_timeout=15.0,
    )
    sup = Supervisor("s", [server, child("client", rec, depends_on=["server"])])
    task = asyncio.create_task(sup.run())
    started = asyncio.get_running_loop().time()
    try:
        await until(lambda: bool(records(rec, "start", "client")), timeout=20)
        waited = asyncio.get_running_loop().time() - started
    finally:
        await _stop(sup, task)
    # the check fails for its first 0.8 s: the dependent waited for it to pass
    assert waited >= 0.8


LIVE_SERVER = """
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, healthy_for = int(sys.argv[1]), float(sys.argv[2])
born = time.monotonic()

class Live(BaseHTTPRequestHandler):
    def do_GET(self):
        if time.monotonic() - born > healthy_for:
            time.sleep(3600)  # alive, but not answering
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Live).serve_forever()
"""


@pytest.mark.serial  # the uptime bound needs a quiet machine
async def test_a_failing_liveness_check_kills_and_restarts_the_child(tmp_path: Path) -> None:
    import sys

    from buttress.supervise import HealthReady, ProcessChild

    port = free_port()
    captured = Captured()
    server = ProcessChild(
        "server",
        [sys.executable, "-c", LIVE_SERVER, str(port), "0.4"],
        ready=TcpReady(port),
        liveness=HealthReady(f"http://127.0.0.1:{port}/health/live"),
        liveness_period=0.1,
        liveness_timeout=0.3,
        backoff_initial=0.0,
    )
    sup = Supervisor("s", [server], intensity=10)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: "child_restarting" in captured.kinds())
    finally:
        await _stop(sup, task)
        captured.close()
    exits = [e for e in captured.events if isinstance(e, ChildExited)]
    assert exits[0].reason.startswith("liveness: check failing for 0.")
    # healthy for 0.4 s, then killed once failing for more than 0.3 s (checks every 0.1 s)
    assert 0.7 <= exits[0].uptime < 1.5


async def test_a_program_that_cannot_start_is_a_failure_like_any_other() -> None:
    from buttress.supervise import ProcessChild

    missing = ProcessChild("ghost", ["/nonexistent/program"], backoff_initial=0.0)
    sup = Supervisor("s", [missing], intensity=2, period=60.0)
    with pytest.raises(CrashLoop, match="ghost failed: 3 restarts"):
        await asyncio.wait_for(sup.run(), 10)
    last = sup.snapshot()["children"][0]["last_exit"]
    assert last.startswith("could not start: [Errno 2] No such file or directory")
