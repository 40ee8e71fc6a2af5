"""Relays: deliveries through a Retry policy and its budget, the dead-letter queue, heartbeats,
events, and the drivers (thread, asyncio task)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from buttress import Retry
from buttress.errors import ConfigError
from buttress.events import Event
from buttress.outbox import (
    Message,
    MessageDeadLettered,
    MessageDelivered,
    MessageFenced,
    MessageRetryScheduled,
    PermanentError,
    Relay,
    SQLiteOutbox,
)
from buttress.policies.backoff import Backoff
from buttress.policies.budget import TokenBucketBudget
from buttress.testing import FakeClock

from ._backends import Backend


def _fill(outbox: SQLiteOutbox, payloads: list[Any], key: str | None = None) -> None:
    conn = Backend("sqlite", str(Path(outbox.path).parent)).connect()
    conn.execute("BEGIN")
    for p in payloads:
        outbox.enqueue(conn, "q", p, key=key)
    conn.execute("COMMIT")
    conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> SQLiteOutbox:
    return SQLiteOutbox(tmp_path / "app.db", queues=["q"], now=clock.wall)


def _listen(relay: Relay) -> list[Event]:
    seen: list[Event] = []
    relay.emitter.add_listener(seen.append)
    return seen


def test_failed_deliveries_follow_the_retry_policy_then_succeed(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    calls: list[int] = []

    def flaky(msg: Message) -> None:
        calls.append(msg.attempts)
        if len(calls) < 3:
            raise ConnectionError("down")

    retry = Retry(attempts=5, backoff=Backoff(kind="constant", base=2.0), budget=None, clock=clock)
    relay = Relay(outbox, "q", flaky, retry=retry, name="r1")
    events = _listen(relay)
    _fill(outbox, ["a"])
    assert 1 == relay.run_once()
    assert 0 == relay.run_once()  # not due for 2 s
    clock.advance(2)
    assert 1 == relay.run_once()
    clock.advance(2)
    assert 1 == relay.run_once()
    assert [0, 1, 2] == calls  # the attempt count survives in the row
    kinds = [type(e) for e in events]
    assert [MessageRetryScheduled, MessageRetryScheduled, MessageDelivered] == kinds
    delivered = events[-1]
    assert isinstance(delivered, MessageDelivered)
    assert (4.0, 3) == (delivered.duration, delivered.attempts)
    assert "buttress_outbox_delivered" == delivered.name and "q" == delivered.policy
    assert [] == [s for s in outbox.status() if s.pending or s.dead]


def test_dead_letter_after_the_attempts_and_at_once_on_permanent_errors(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    def handler(msg: Message) -> None:
        if msg.payload == "poison":
            raise PermanentError("malformed order")
        raise ConnectionError("down")

    retry = Retry(attempts=3, backoff=Backoff(kind="constant", base=1.0), budget=None, clock=clock)
    relay = Relay(outbox, "q", handler, retry=retry)
    events = _listen(relay)
    _fill(outbox, ["poison", "flaky"])
    for _ in range(3):
        relay.run_once()
        clock.advance(1)
    dead = {m.payload: m for m in outbox.dead_letters("q")}
    assert {"poison", "flaky"} == set(dead)
    assert (1, "PermanentError: malformed order") == (
        dead["poison"].attempts,
        dead["poison"].last_error,
    )
    assert 3 == dead["flaky"].attempts
    reasons = {e.reason for e in events if isinstance(e, MessageDeadLettered)}
    assert {"permanent", "attempts"} == reasons
    assert 0 == relay.run_once()


def test_errors_the_policy_does_not_retry_go_to_the_dead_letters(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    def handler(msg: Message) -> None:
        raise KeyError("no such sku")

    retry = Retry(attempts=5, on=ConnectionError, budget=None, clock=clock)
    _fill(outbox, ["x"])
    Relay(outbox, "q", handler, retry=retry).run_once()
    (dead,) = outbox.dead_letters("q")
    assert "KeyError: 'no such sku'" == dead.last_error


def test_an_empty_budget_postpones_instead_of_dead_lettering(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    budget = TokenBucketBudget(max_tokens=1, token_ratio=0.1)
    for _ in range(10):
        budget.on_failure()  # empty it
    assert not budget.try_withdraw(clock.monotonic())

    def handler(msg: Message) -> None:
        raise ConnectionError("down")

    retry = Retry(
        attempts=2, backoff=Backoff(kind="constant", base=1.0), budget=budget, clock=clock
    )
    relay = Relay(outbox, "q", handler, retry=retry, lease=10)
    events = _listen(relay)
    _fill(outbox, ["x"])
    relay.run_once()
    (scheduled,) = events
    assert isinstance(scheduled, MessageRetryScheduled) and 10.0 == scheduled.delay
    clock.advance(10)
    relay.run_once()
    assert [] == outbox.dead_letters("q")  # the budget never turns a retry into a dead letter
    (status,) = outbox.status()
    assert 1 == status.pending


def test_heartbeats_keep_a_slow_delivery_leased(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["q"])
    second = SQLiteOutbox(tmp_path / "app.db", queues=["q"])
    taken_meanwhile: list[int] = []

    def slow(msg: Message) -> None:
        time.sleep(0.35)  # longer than the lease: only the heartbeats keep it
        taken_meanwhile.extend(m.id for m in second.claim("q", "other", 10, 0.2))

    _fill(outbox, ["x"])
    relay = Relay(outbox, "q", slow, lease=0.2, heartbeat=0.05)
    events = _listen(relay)
    assert 1 == relay.run_once()
    assert [] == taken_meanwhile
    assert [MessageDelivered] == [type(e) for e in events]


def test_a_relay_that_lost_its_lease_is_fenced(outbox: SQLiteOutbox, clock: FakeClock) -> None:
    delivered: list[str] = []

    def stalls(msg: Message) -> None:
        clock.advance(60)  # a GC pause or SIGSTOP longer than the lease
        delivered.append(f"stale:{msg.payload}")

    stale = Relay(outbox, "q", stalls, lease=30, heartbeat=20, name="stale")
    events = _listen(stale)
    _fill(outbox, ["x"])
    stale.run_once()
    assert [MessageFenced] == [type(e) for e in events]
    assert "ack" == events[0].operation  # type: ignore[attr-defined]
    fresh = Relay(outbox, "q", lambda m: delivered.append(f"fresh:{m.payload}"), name="fresh")
    assert 1 == fresh.run_once()
    assert ["stale:x", "fresh:x"] == delivered  # delivered twice: the inbox makes it count once
    assert 0 == fresh.run_once()


def test_thread_and_asyncio_drivers_deliver_in_key_order(tmp_path: Path) -> None:
    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["q"])
    got: list[int] = []
    lock = threading.Lock()

    def record(msg: Message) -> None:
        with lock:
            got.append(msg.payload)

    _fill(outbox, list(range(30)), key="k")
    relays = [Relay(outbox, "q", record, poll=0.01).start() for _ in range(2)]

    async def drive() -> None:
        task = asyncio.create_task(Relay(outbox, "q", record, poll=0.01).run_async())
        end = time.monotonic() + 10
        while len(got) < 30 and time.monotonic() < end:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(drive())
    for r in relays:
        r.stop()
    assert list(range(30)) == got


def test_relay_options_are_checked(outbox: SQLiteOutbox) -> None:
    with pytest.raises(
        ConfigError, match=r"invalid heartbeat=5\.0: must be shorter than the lease"
    ):
        Relay(outbox, "q", print, lease=5, heartbeat=5)
    with pytest.raises(ConfigError, match="invalid batch=0"):
        Relay(outbox, "q", print, batch=0)
    with pytest.raises(ConfigError, match="invalid queue='nope'"):
        Relay(outbox, "nope", print)


def test_a_failure_in_a_run_gives_the_rest_of_its_key_back_untried(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    calls: list[str] = []

    def handler(msg: Message) -> None:
        calls.append(msg.payload)
        if msg.payload == "a2" and calls.count("a2") == 1:
            raise ConnectionError("down once")

    retry = Retry(attempts=3, backoff=Backoff(kind="constant", base=1.0), budget=None, clock=clock)
    relay = Relay(outbox, "q", handler, retry=retry)
    _fill(outbox, ["a1", "a2", "a3"], key="a")
    _fill(outbox, ["b1"], key="b")
    assert 4 == relay.run_once()  # SQLite claims the runs: a1 a2 a3, b1
    assert ["a1", "a2", "b1"] == calls  # a3 was not tried after a2 failed
    assert 0 == relay.run_once()  # a2 is due in 1 s and holds a3 back
    clock.advance(1)
    assert 2 == relay.run_once()
    assert ["a1", "a2", "b1", "a2", "a3"] == calls
    relay.close()
    (status,) = outbox.status()
    assert (0, 0) == (status.pending, status.dead)


class _Unasync(ast.NodeTransformer):
    """An async twin as its sync body: ``await asyncio.to_thread(f, *a)`` -> ``f(*a)``, ``await
    x`` -> ``x``, ``async def`` -> ``def``, and names lose their ``_async`` suffix."""

    def visit_Await(self, node: ast.Await) -> ast.AST:
        inner = node.value
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "to_thread"
        ):
            inner = ast.Call(func=inner.args[0], args=inner.args[1:], keywords=inner.keywords)
        return self.visit(inner)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        sync = ast.FunctionDef(**{f: getattr(node, f) for f in node._fields})
        sync.name = node.name.removesuffix("_async")
        return self.generic_visit(sync)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        node.attr = node.attr.removesuffix("_async")
        return self.generic_visit(node)


@pytest.mark.parametrize("name", ["_deliver_batch", "_deliver_one"])
def test_the_async_twins_are_the_sync_code(name: str) -> None:
    def tree(fn: Any, unasync: bool) -> str:
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
        node.body = [s for s in node.body if not isinstance(s, ast.Expr)]  # docstrings
        if unasync:
            node = _Unasync().visit(node)
        return ast.dump(ast.fix_missing_locations(node), include_attributes=False)

    sync, twin = getattr(Relay, name), getattr(Relay, name + "_async")
    assert tree(sync, False) == tree(twin, True)


def test_an_async_handler_runs_on_the_loop_with_the_same_rules(
    outbox: SQLiteOutbox, clock: FakeClock
) -> None:
    calls: list[str] = []

    async def handler(msg: Message) -> None:
        await asyncio.sleep(0)
        calls.append(msg.payload)
        if msg.payload == "a2" and calls.count("a2") == 1:
            raise ConnectionError("down once")

    retry = Retry(attempts=3, backoff=Backoff(kind="constant", base=1.0), budget=None, clock=clock)
    relay = Relay(outbox, "q", handler, retry=retry)
    events = _listen(relay)
    _fill(outbox, ["a1", "a2", "a3"], key="a")
    with pytest.raises(ConfigError, match="is async: use run_once_async or run_async"):
        relay.run_once()

    async def rounds() -> list[int]:
        first = await relay.run_once_async()
        clock.advance(1)
        return [first, await relay.run_once_async(), await relay.run_once_async()]

    assert [3, 2, 0] == asyncio.run(rounds())
    relay.close()
    assert ["a1", "a2", "a2", "a3"] == calls
    kinds = sorted(type(e).__name__ for e in events)
    assert ["MessageDelivered"] * 3 + ["MessageRetryScheduled"] == kinds
