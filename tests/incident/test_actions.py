"""Supervisor and remediation actions on an incident's timeline: the remediation journal written by
the real :class:`~buttress.remediation.engine.Remediator`, a supervisor status file, and supervisor
events in the state feed, each placed event by event; unreadable lines and files are skipped."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.dashboard.feed import FeedWriter, Update
from buttress.dashboard.publish import Publisher
from buttress.errors import ButtressError
from buttress.incident import IncidentStore, parse_generic
from buttress.incident.timeline import build_timeline
from buttress.remediation.core import RuleOptions
from buttress.remediation.engine import Journal, Remediator, Rule, Signal
from buttress.testing import FakeClock

T = 1_767_225_600.0  # 2026-01-01T00:00:00Z
M = 60.0


def _fail(sig: Signal) -> str:
    raise RuntimeError(f"cannot restart {sig.subject}")


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Path]:
    clock = FakeClock(wall_start=T + 12 * M)
    journal = tmp_path / "remediation.jsonl"
    rules = [
        Rule("restart-db", "breaker_open", lambda s: f"restarted {s.subject}", "restart the db",
             options=RuleOptions(cooldown=0)),
        Rule("shed-load", "breaker_open", _fail, "shed load", options=RuleOptions(cooldown=0)),
        Rule("page", "slo_burn", lambda s: "", "page the owner",
             options=RuleOptions(dry_run=True)),
    ]  # fmt: skip
    rem = Remediator(rules, journal=Journal(journal), clock=clock)
    rem.signal(Signal("breaker_open", "db", figures={"failures": 5}))
    clock.advance(3 * M)
    rem.signal(Signal("slo_burn", "checkout", figures={"burn_rate": 14.4}))
    with journal.open("a") as f:
        f.write('{"time": "not a number"}\n{"partial": ')  # skipped: a line being written
    status = tmp_path / "supervise.json"
    tree = {
        "kind": "supervisor", "strategy": "one_for_one", "intensity": 3, "period": 60,
        "children": [
            {"name": "web", "state": "running", "restarts": 0, "failures": 0, "crash_loop": False},
            {"name": "db", "state": "backoff", "restarts": 4, "failures": 5, "crash_loop": True,
             "last_exit": "exit status 1"},
            {"name": "workers", "kind": "supervisor", "state": "running", "restarts": 0,
             "children": [{"name": "relay", "state": "running", "restarts": 1, "failures": 0,
                           "crash_loop": False, "last_exit": "signal 9"}]},
        ],
    }  # fmt: skip
    status.write_text(json.dumps({"name": "shop", "pid": 1, "updated": T + 14 * M, "tree": tree}))
    feed_db = tmp_path / "slo.db"
    with FeedWriter(feed_db, source="supervise:1") as feed:
        feed.write([Update("supervisor", "shop", "db", "exited", "bad", {"reason": "exit 1"},
                           T + 11 * M, log="child_exited")])  # fmt: skip
        feed.write([Update("supervisor", "shop", "db", "restarting", "warn", {"delay": 1.0},
                           T + 11 * M + 1, log="child_restarting")])  # fmt: skip
    inc_db = tmp_path / "inc.db"
    with IncidentStore(inc_db) as store:
        firing = parse_generic({"key": "db", "status": "firing", "title": "db down",
                                "service": "shop", "mode": "db-down",
                                "started_at": T + 10 * M})  # fmt: skip
        store.ingest([firing], received=T + 13 * M)
        store.transition(1, "resolved", actor="carol", at=T + 20 * M)
    return {"journal": journal, "status": status, "feed": feed_db, "inc": inc_db}


def test_actions_on_the_timeline_event_by_event(recorded: dict[str, Path]) -> None:
    with IncidentStore(recorded["inc"]) as store:
        tl = build_timeline(
            store.get(1),
            store.log(1),
            feed=recorded["feed"],
            remediation=[recorded["journal"]],
            supervisor=[recorded["status"]],
        )
    got = [(round(e.time - T), e.source, e.kind, e.text) for e in tl.entries]
    assert got == [
        (660, "supervisor", "supervisor.child_exited", "supervisor shop/db: child exited"),
        (661, "supervisor", "supervisor.child_restarting", "supervisor shop/db: child restarting"),
        (720, "remediation", "acted", "remediation restart-db: restart the db on breaker_open db: "
         "done"),
        (720, "remediation", "failed", "remediation shed-load: shed load on breaker_open db: "
         "failed: RuntimeError: cannot restart db"),
        (780, "incident", "detected", "incident detected (webhook)"),
        (840, "supervisor", "status", "supervisor shop/db: backoff, 4 restart(s), CRASH LOOP "
         "(5 failures in a row); last exit: exit status 1"),
        (840, "supervisor", "status", "supervisor shop/workers/relay: 1 restart(s); "
         "last exit: signal 9"),
        (900, "remediation", "dry_run", "remediation page: page the owner on slo_burn checkout: "
         "dry run"),
        (1200, "incident", "resolved", "resolved by carol"),
    ]  # fmt: skip
    restart = next(e for e in tl.entries if e.kind == "acted")
    assert restart.detail["figures"] == {"failures": 5}
    assert restart.detail["detail"] == "restarted db"


def test_entries_outside_the_window_and_missing_files(recorded: dict[str, Path]) -> None:
    with IncidentStore(recorded["inc"]) as store:
        inc, log = store.get(1), store.log(1)
    # A window that ends before every action: only the incident's own log remains.
    tl = build_timeline(inc, log, remediation=[recorded["journal"]],
                        supervisor=[recorded["status"]], before=0, after=-20 * M)  # fmt: skip
    assert {e.source for e in tl.entries} == {"incident"}
    with pytest.raises(ButtressError, match="no such file"):
        build_timeline(inc, log, remediation=[recorded["journal"].with_name("nope.jsonl")])
    recorded["status"].write_text("{ torn")  # a status file being replaced: skipped
    tl = build_timeline(inc, log, supervisor=[recorded["status"]])
    assert [e.source for e in tl.entries] == ["incident", "incident"]


def test_cli_timeline_reads_journal_and_status(recorded: dict[str, Path]) -> None:
    result = CliRunner().invoke(
        main,
        ["incident", "timeline", "1", "--store", str(recorded["inc"]),
         "--remediation-journal", str(recorded["journal"]),
         "--supervisor-state", str(recorded["status"]), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    sources = [e["source"] for e in json.loads(result.output)["entries"]]
    assert sources.count("remediation") == 3 and sources.count("supervisor") == 2
    missing = CliRunner().invoke(
        main, ["incident", "timeline", "1", "--store", str(recorded["inc"]),
               "--remediation-journal", "/nonexistent/journal.jsonl"],
    )  # fmt: skip
    assert missing.exit_code == 2
    assert "no such file" in missing.output and "Traceback" not in missing.output


async def test_a_real_supervisors_status_file_on_the_timeline(tmp_path: Path) -> None:
    """The status file written by ``buttress supervise run``'s own writer while a real supervisor
    restarts a failing task twice, and a nested supervisor's child that never failed."""
    import asyncio
    import time

    from buttress.supervise import Supervisor, TaskChild, TaskContext
    from buttress.supervise.cli import write_state

    runs = {"flaky": 0}

    async def flaky(ctx: TaskContext) -> None:
        runs["flaky"] += 1
        if runs["flaky"] < 3:
            raise RuntimeError("cannot reach the db")
        await asyncio.sleep(3600)

    async def steady(ctx: TaskContext) -> None:
        await asyncio.sleep(3600)

    status = tmp_path / "supervise.json"
    feed_db = tmp_path / "slo.db"
    publisher = Publisher(feed_db, source="supervise")  # the tree's events into the state feed
    detach = publisher.attach()
    publisher.start()
    holder: list[Supervisor] = []
    inner = Supervisor("workers", [TaskChild("relay", steady)])
    top = Supervisor(
        "shop",
        [TaskChild("flaky", flaky, backoff_initial=0.0), inner],
        on_change=lambda: holder and write_state(status, holder[0]),
    )
    holder.append(top)
    began = time.time()
    task = asyncio.create_task(top.run())
    deadline = time.monotonic() + 10
    while runs["flaky"] < 3 or 'restarts": 2' not in (
        status.read_text() if status.exists() else ""
    ):
        assert time.monotonic() < deadline, "the supervisor did not restart the task twice"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # let the third run settle into "running"
    write_state(status, top)
    running = tmp_path / "running.json"
    running.write_text(status.read_text())  # stopping the tree rewrites the file
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    detach()
    publisher.close()
    inc_db = tmp_path / "inc.db"
    with IncidentStore(inc_db) as store:
        store.ingest([parse_generic({"key": "db", "status": "firing", "title": "db down",
                                     "service": "shop", "mode": "db-down",
                                     "started_at": began})])  # fmt: skip
        tl = build_timeline(store.get(1), store.log(1), supervisor=[running])
        stopped = build_timeline(store.get(1), store.log(1), supervisor=[status])
        events = build_timeline(store.get(1), store.log(1), feed=feed_db)
    [entry] = [e for e in tl.entries if e.source == "supervisor"]  # workers/relay never failed
    assert entry.text.startswith("supervisor shop/flaky: 2 restart(s); last exit: ")
    assert "cannot reach the db" in entry.text
    assert entry.detail == {"state": "running", "restarts": 2, "failures": 2, "crash_loop": False}
    assert entry.time == json.loads(running.read_text())["updated"]
    # Once the tree is stopped, every child is shown as such.
    texts = {e.text.split(":")[0] for e in stopped.entries if e.source == "supervisor"}
    assert texts == {"supervisor shop/flaky", "supervisor shop/workers/relay"}
    # The events, published as they happened: two failed exits of flaky, each then restarted.
    flaky_events = [e for e in events.entries if e.text.startswith("supervisor shop/flaky:")]
    kinds = [e.kind.removeprefix("supervisor.") for e in flaky_events]
    one_run = ["child_started", "child_ready", "child_exited", "child_restarting"]
    assert kinds[:8] == one_run * 2, kinds
    assert kinds[8:] == one_run[:2]  # the third run, up until the tree was stopped
    exited = flaky_events[2]
    assert exited.detail["level"] == "bad" and exited.detail["fields"]["failed"] is True
    assert "cannot reach the db" in exited.detail["fields"]["reason"]
    assert all(e.source == "supervisor" for e in flaky_events)


def test_remediation_events_published_into_the_feed(tmp_path: Path) -> None:
    """A publisher attached to every event records the remediator's actions as they happen: on
    the timeline from the feed alone, without the journal."""
    feed_db = tmp_path / "slo.db"
    publisher = Publisher(feed_db, source="remediation")
    detach = publisher.attach()
    publisher.start()
    began = time.time()
    rules = [
        Rule("restart-db", "breaker_open", lambda s: "restarted", "restart the db"),
        Rule("shed-load", "breaker_open", _fail, "shed load"),
        Rule("page", "breaker_open", lambda s: "", "page", options=RuleOptions(dry_run=True)),
    ]
    Remediator(rules).signal(Signal("breaker_open", "db"))
    detach()
    publisher.close()
    with IncidentStore(tmp_path / "inc.db") as store:
        store.ingest([parse_generic({"key": "db", "status": "firing", "title": "db down",
                                     "service": "shop", "started_at": began})])  # fmt: skip
        tl = build_timeline(store.get(1), store.log(1), feed=feed_db)
    got = [(e.kind, e.text, e.detail["level"]) for e in tl.entries if e.source == "remediation"]
    assert got == [
        (
            "remediation.acted",
            "remediation remediation/restart-db: restart the db on db: done",
            "warn",
        ),
        (
            "remediation.acted",
            "remediation remediation/shed-load: shed load on db: failed: "
            "RuntimeError: cannot restart db",
            "bad",
        ),
        (
            "remediation.escalated",
            "remediation remediation/shed-load: escalated (failed: "
            "RuntimeError: cannot restart db)",
            "bad",
        ),
        ("remediation.acted", "remediation remediation/page: page on db: dry run", "warn"),
    ]
