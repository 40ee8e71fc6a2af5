"""Supervisors over asyncio tasks, and supervisors nested in supervisors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from buttress.supervise import CrashLoop, Supervisor, TaskChild, TaskContext
from buttress.supervise.events import WatchdogFired

from .helpers import Captured, alive, child, records, until


async def test_a_failing_task_is_restarted_and_a_finished_transient_one_is_not() -> None:
    runs: dict[str, int] = {"flaky": 0, "job": 0}

    async def flaky(ctx: TaskContext) -> None:
        runs["flaky"] += 1
        if runs["flaky"] < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    async def job(ctx: TaskContext) -> None:
        runs["job"] += 1

    sup = Supervisor(
        "s",
        [
            TaskChild("flaky", flaky, backoff_initial=0.0),
            TaskChild("job", job, restart="transient"),
        ],
    )
    task = asyncio.create_task(sup.run())
    await until(lambda: runs["flaky"] == 3)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {"flaky": 3, "job": 1} == runs
    flaky_state = sup.snapshot()["children"][0]
    assert 2 == flaky_state["restarts"]
    assert "stopped" == flaky_state["last_exit"]


async def test_a_task_waits_for_its_dependency_to_say_ready() -> None:
    order: list[str] = []

    async def db(ctx: TaskContext) -> None:
        await asyncio.sleep(0.1)
        order.append("db ready")
        ctx.ready()
        await asyncio.sleep(3600)

    async def api(ctx: TaskContext) -> None:
        order.append("api started")
        await asyncio.sleep(3600)

    sup = Supervisor(
        "s", [TaskChild("api", api, depends_on=["db"]), TaskChild("db", db, notify=True)]
    )
    task = asyncio.create_task(sup.run())
    await until(lambda: len(order) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ["db ready", "api started"] == order


async def test_a_task_that_stops_pinging_is_cancelled_and_restarted() -> None:
    runs = [0]

    async def worker(ctx: TaskContext) -> None:
        runs[0] += 1
        for _ in range(3):
            ctx.ping()
            await asyncio.sleep(0.02)
        await asyncio.sleep(3600)  # hangs

    captured = Captured()
    sup = Supervisor("s", [TaskChild("w", worker, watchdog=0.1, backoff_initial=0.0)], intensity=50)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: runs[0] >= 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        captured.close()
    assert any(isinstance(e, WatchdogFired) for e in captured.events)


async def test_a_nested_supervisor_that_gives_up_is_restarted_by_its_parent(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    inner = Supervisor(
        "inner", [child("crasher", rec, "--exit-after", "0.05")], intensity=1, period=30.0
    )
    outer = Supervisor("outer", [child("steady", rec), inner], intensity=1, period=30.0)
    captured = Captured()
    try:
        with pytest.raises(CrashLoop, match=r"outer.*inner failed"):
            await asyncio.wait_for(outer.run(), 20)
    finally:
        captured.close()
    # inner: two starts of its child, then it gives up; outer restarts inner once (intensity 1),
    # inner gives up again, and outer gives up in turn
    assert 4 == len(records(rec, "start", "crasher"))
    gave_up = [e.pipeline for e in captured.events if e.kind == "gave_up"]
    assert ["inner", "inner", "outer"] == gave_up
    assert not any(alive(pid) for _, _, pid, _ in records(rec, "start"))


async def test_supervisor_events_reach_the_policies_telemetry() -> None:
    prom = pytest.importorskip("prometheus_client")
    from buttress.telemetry import prometheus

    registry = prom.CollectorRegistry()
    remove = prometheus.install(registry)
    runs = [0]

    async def flaky(ctx: TaskContext) -> None:
        runs[0] += 1
        if runs[0] < 3:
            raise RuntimeError("boom")
        ctx.ready()
        await asyncio.sleep(3600)

    labels = {"pipeline": "tel", "policy": "flaky"}
    try:
        sup = Supervisor("tel", [TaskChild("flaky", flaky, notify=True, backoff_initial=0.0)])
        await sup.start()
        await sup.ready()
        await sup.stop()
        restarting = registry.get_sample_value(
            "buttress_events_total", {**labels, "event": "buttress_supervisor_child_restarting"}
        )
        exited = registry.get_sample_value(
            "buttress_events_total", {**labels, "event": "buttress_supervisor_child_exited"}
        )
    finally:
        remove()  # also unregisters the metrics
    assert (2.0, 2.0) == (restarting, exited)


async def test_a_crash_loop_the_backoff_spreads_out_is_reported_not_hidden() -> None:
    async def broken(ctx: TaskContext) -> None:
        raise RuntimeError("bad config")

    captured = Captured()
    child = TaskChild("broken", broken, backoff_initial=0.1, backoff_cap=0.1)
    # intensity 2 in 0.15 s: restarts 0.1 s apart never make 3 within the period
    sup = Supervisor("s", [child], intensity=2, period=0.15)
    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: "crash_looping" in captured.kinds())
        snapshot = sup.snapshot()["children"][0]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        captured.close()
    assert "gave_up" not in captured.kinds()
    assert snapshot["crash_loop"] and snapshot["failures"] >= 3
    (event,) = [e for e in captured.events if e.kind == "crash_looping"]
    assert 3 == event.failures  # type: ignore[attr-defined]
