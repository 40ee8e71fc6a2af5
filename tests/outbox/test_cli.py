"""``buttress outbox status|dlq|requeue|purge`` as a subprocess on real stores, the outbox gauges
in a Prometheus registry, and the bad-input lines (exit status 2, no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from buttress.outbox import Message, PermanentError, Relay, SQLiteOutbox
from buttress.outbox.metrics import install

from ._backends import Backend, FakeWallClock


def buttress(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("BUTTRESS_OUTBOX_STORE", None)
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", "outbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _store_arg(backend: Backend) -> str:
    return str(Path(backend.target) / "app.db") if backend.kind == "sqlite" else backend.target


def _two_dead_one_live(backend: Backend) -> list[int]:
    outbox = backend.outbox(queues=["orders", "mail"])
    conn = backend.connect()
    with backend.transaction(conn):
        for i in range(3):
            outbox.enqueue(conn, "orders", {"n": i}, key=f"o{i}")

    def refuse(msg: Message) -> None:
        if msg.payload["n"] < 2:
            raise PermanentError(f"bad order {msg.payload['n']}")
        raise ConnectionError("inventory down")

    Relay(outbox, "orders", refuse).run_once()
    return [m.id for m in outbox.dead_letters("orders")]


def test_status_dlq_requeue_purge(backend: Backend) -> None:
    dead = _two_dead_one_live(backend)
    store = _store_arg(backend)
    status = buttress("status", "--store", store, "--json")
    assert 0 == status.returncode, status.stderr
    doc = {q["queue"]: q for q in json.loads(status.stdout)}
    assert {"orders", "mail"} == set(doc)
    assert (1, 0, 2) == (
        doc["orders"]["pending"],
        doc["orders"]["in_flight"],
        doc["orders"]["dead"],
    )
    table = buttress("status", "--store", store)
    assert table.stdout.splitlines()[0].split() == [
        "queue",
        "pending",
        "in",
        "flight",
        "dead",
        "oldest",
    ]

    lines = [
        json.loads(line)
        for line in buttress("dlq", "orders", "--store", store, "--json").stdout.splitlines()
    ]
    assert [(dead[0], "PermanentError: bad order 0"), (dead[1], "PermanentError: bad order 1")] == [
        (d["id"], d["error"]) for d in lines
    ]
    again = buttress("requeue", "orders", "--id", str(dead[0]), "--store", store)
    assert (0, "requeued 1 message of orders\n") == (again.returncode, again.stdout)
    dry = buttress("purge", "orders", "--store", store)
    assert "would delete 1 dead letter of orders; add --yes\n" == dry.stdout
    gone = buttress("purge", "orders", "--store", store, "--yes")
    assert "purged 1 dead letter of orders\n" == gone.stdout
    after = {
        q["queue"]: q for q in json.loads(buttress("status", "--store", store, "--json").stdout)
    }
    assert (2, 0) == (after["orders"]["pending"], after["orders"]["dead"])


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    SQLiteOutbox(tmp_path / "app.db", queues=["orders"]).close()
    unknown = buttress("dlq", "order", "--store", str(tmp_path / "app.db"))
    assert 2 == unknown.returncode
    assert (
        "error: invalid queue='order': is not a queue of this outbox (known: orders)\n"
        == unknown.stderr
    )
    missing = buttress("status", "--store", str(tmp_path / "nope.db"))
    assert 2 == missing.returncode
    assert (
        f"error: outbox store unavailable during open: {tmp_path}/nope.db does not exist\n"
        == missing.stderr
    )
    assert not (tmp_path / "nope.db").exists()  # nothing created
    plain = tmp_path / "plain.db"
    import sqlite3

    sqlite3.connect(plain).execute("CREATE TABLE t (x)").connection.close()
    empty = buttress("status", "--store", str(plain))
    assert (
        2,
        f"error: outbox store unavailable during open: {plain} holds no outbox (buttress_outbox)\n",
    ) == (empty.returncode, empty.stderr)
    down = buttress("status", "--store", "postgresql://postgres@127.0.0.1:1/x?connect_timeout=1")
    assert 2 == down.returncode
    assert down.stderr.startswith("error: outbox store unavailable during open: ")
    assert "Traceback" not in down.stderr + missing.stderr + empty.stderr


def test_gauges_show_depth_age_and_dead_letters(tmp_path: Path) -> None:
    clock = FakeWallClock()
    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["orders"], now=clock)
    backend = Backend("sqlite", str(tmp_path))
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue(conn, "orders", 1)
        outbox.enqueue(conn, "orders", 2)
    (first, _) = outbox.claim("orders", "w", 10, 100)
    outbox.dead_letter(first, "bad")
    clock.advance(42)
    registry = CollectorRegistry()
    remove = install(outbox, registry)
    text = generate_latest(registry).decode()
    assert 'buttress_outbox_depth{queue="orders"} 1.0' in text
    assert 'buttress_outbox_in_flight{queue="orders"} 1.0' in text
    assert 'buttress_outbox_dead_letters{queue="orders"} 1.0' in text
    assert 'buttress_outbox_oldest_age_seconds{queue="orders"} 42.0' in text
    remove()
    assert "buttress_outbox" not in generate_latest(registry).decode()


@pytest.mark.parametrize("payload", [{1, 2}, b"bytes", float("inf")])
def test_unserialisable_payloads_store_nothing(tmp_path: Path, payload: object) -> None:
    from buttress.outbox import NotSerialisable

    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["orders"])
    backend = Backend("sqlite", str(tmp_path))
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue(conn, "orders", "ok")
        with pytest.raises(
            NotSerialisable, match=r"^invalid payload='orders': cannot be serialised"
        ):
            outbox.enqueue(conn, "orders", payload)
    assert [1] == [s.pending for s in outbox.status()]


def test_delivery_latency_and_dead_letters_reach_prometheus(tmp_path: Path) -> None:
    from buttress.telemetry.prometheus import install as install_events

    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["orders"])
    backend = Backend("sqlite", str(tmp_path))
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue(conn, "orders", "ok")
        outbox.enqueue(conn, "orders", "bad")

    def handler(msg: Message) -> None:
        if msg.payload == "bad":
            raise PermanentError("refused")

    registry = CollectorRegistry()
    remove = install_events(registry)
    relay = Relay(outbox, "orders", handler, name="relay-1")
    try:
        relay.run_once()
        text = generate_latest(registry).decode()
    finally:
        relay.close()
        remove()
    labels = 'event="buttress_outbox_delivered",pipeline="relay-1",policy="orders"'
    assert f"buttress_duration_seconds_count{{{labels}}} 1.0" in text
    dead = 'event="buttress_outbox_dead_lettered",pipeline="relay-1",policy="orders"'
    assert f"buttress_events_total{{{dead}}} 1.0" in text


def test_a_failing_store_refuses_the_enqueue_and_the_business_write_rolls_back(
    tmp_path: Path,
) -> None:
    from buttress.outbox import StoreUnavailable

    outbox = SQLiteOutbox(tmp_path / "app.db", queues=["orders"])
    backend = Backend("sqlite", str(tmp_path))
    conn = backend.connect()
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.execute("ALTER TABLE buttress_outbox RENAME TO moved")  # the outbox table is gone
    with pytest.raises(StoreUnavailable, match="during enqueue: no such table"):
        with backend.transaction(conn):
            conn.execute("INSERT INTO orders VALUES (1)")
            outbox.enqueue(conn, "orders", {"order": 1})
    assert [(0,)] == conn.execute("SELECT count(*) FROM orders").fetchall()
