"""The outbox table on both databases: enqueue commits or rolls back with the business write,
claims respect keys and leases, fences refuse a stale worker, the admin operations."""

from __future__ import annotations

import math

import pytest

from buttress.outbox import NotInTransaction, NotSerialisable, StoreUnavailable, UnknownQueue

from ._backends import Backend, FakeWallClock

ORDERS = "CREATE TABLE IF NOT EXISTS orders (id INTEGER)"


def _orders(backend: Backend, conn: object) -> int:
    return int(conn.execute("SELECT count(*) FROM orders").fetchone()[0])  # type: ignore[attr-defined]


def test_enqueue_commits_and_rolls_back_with_the_business_write(backend: Backend) -> None:
    outbox = backend.outbox()
    conn = backend.connect()
    conn.execute(ORDERS)
    with backend.transaction(conn):
        conn.execute("INSERT INTO orders VALUES (1)")
        outbox.enqueue(conn, "q", {"order": 1})
    with pytest.raises(RuntimeError), backend.transaction(conn):
        conn.execute("INSERT INTO orders VALUES (2)")
        outbox.enqueue(conn, "q", {"order": 2})
        raise RuntimeError("the business rule failed after the enqueue")
    taken = outbox.claim("q", "w", 10, 30)
    assert [{"order": 1}] == [m.payload for m in taken]
    assert 1 == _orders(backend, conn)
    assert "q" == taken[0].queue and 24 == len(taken[0].uid)


def test_bad_input_is_refused_and_nothing_is_stored(backend: Backend) -> None:
    outbox = backend.outbox()
    conn = backend.connect()
    with backend.transaction(conn):
        with pytest.raises(UnknownQueue, match=r"invalid queue='nope'.*known: q"):
            outbox.enqueue(conn, "nope", {})
        with pytest.raises(NotSerialisable, match="not JSON serializable"):
            outbox.enqueue(conn, "q", {"when": object()})
        with pytest.raises(NotSerialisable, match="Out of range float"):
            outbox.enqueue(conn, "q", {"x": math.nan})
    with pytest.raises(NotInTransaction, match="inside the transaction"):
        outbox.enqueue(conn, "q", {"ok": True})
    assert [] == outbox.claim("q", "w", 10, 30)
    with pytest.raises(UnknownQueue):
        outbox.claim("nope", "w", 10, 30)


def test_one_message_per_key_in_flight_in_id_order(backend: Backend) -> None:
    clock = FakeWallClock()
    outbox = backend.outbox(now=clock)
    conn = backend.connect()
    with backend.transaction(conn):
        for i in range(3):
            outbox.enqueue(conn, "q", i, key="a")
        outbox.enqueue(conn, "q", 10, key="b")
        outbox.enqueue(conn, "q", 20)
        outbox.enqueue(conn, "q", 21)
    first = outbox.claim("q", "w1", 10, 30)
    if backend.kind == "postgres":  # the head of each key
        assert [0, 10, 20, 21] == [m.payload for m in first]
        assert [] == outbox.claim("q", "w2", 10, 30)  # all heads leased, "a" 1 and 2 held back
        head_a = first[0]
        assert [True] == outbox.ack([(head_a.id, head_a.fence)])
        assert [1] == [m.payload for m in outbox.claim("q", "w2", 10, 30)]
    else:  # a run of each key, delivered in order by one relay
        assert [0, 1, 2, 10, 20, 21] == [m.payload for m in first]
        assert [] == outbox.claim("q", "w2", 10, 30)
        a0, a1, a2 = first[:3]
        assert [True, True] == outbox.release([(a1.id, a1.fence), (a2.id, a2.fence)])
        assert [] == outbox.claim("q", "w2", 10, 30)  # a0 still leased: its key stays blocked
        assert [True] == outbox.ack([(a0.id, a0.fence)])
        assert [1, 2] == [m.payload for m in outbox.claim("q", "w2", 10, 30)]


def test_a_stale_worker_is_fenced_off(backend: Backend) -> None:
    clock = FakeWallClock()
    outbox = backend.outbox(now=clock)
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue(conn, "q", "x", key="k")
    (stale,) = outbox.claim("q", "slow", 10, lease=5)
    clock.advance(6)  # the slow worker's lease ran out; nobody took the message yet
    assert [False] == outbox.ack([(stale.id, stale.fence)])
    assert [False] == outbox.renew([(stale.id, stale.fence)], 5)
    (fresh,) = outbox.claim("q", "fast", 10, lease=5)
    assert fresh.id == stale.id and fresh.fence > stale.fence
    # The stale worker can neither acknowledge, reschedule nor dead-letter the new claim's message.
    assert [False] == outbox.ack([(stale.id, stale.fence)])
    assert not outbox.retry_later(stale, 1.0, "late")
    assert not outbox.dead_letter(stale, "late")
    assert [True] == outbox.renew([(fresh.id, fresh.fence)], 5)
    clock.advance(4)
    assert [True] == outbox.ack([(fresh.id, fresh.fence)])
    assert [] == outbox.claim("q", "any", 10, 5)


def test_a_batch_with_one_lost_lease_acknowledges_the_others_only(backend: Backend) -> None:
    # One fenced statement per message in one executemany: when one of them matches nothing, the
    # whole batch is rolled back and redone message by message, so the answer is per message and
    # the lost one stays for its new holder.
    clock = FakeWallClock()
    outbox = backend.outbox(now=clock)
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue_many(conn, "q", ["a", "b", "c"])
    first = outbox.claim("q", "slow", 10, lease=5)
    clock.advance(3)
    kept = outbox.renew([(m.id, m.fence) for m in first if m.body != '"b"'], 5)
    assert [True, True] == kept
    clock.advance(3)  # b's lease ran out, the others' were renewed
    (b_again,) = outbox.claim("q", "fast", 10, lease=5)
    assert '"b"' == b_again.body
    assert [True, False, True] == outbox.ack([(m.id, m.fence) for m in first])
    assert [True] == outbox.ack([(b_again.id, b_again.fence)])
    assert [] == outbox.claim("q", "any", 10, 5)
    assert all(s.pending == 0 for s in outbox.status())


def test_the_payload_is_decoded_on_first_access(backend: Backend) -> None:
    outbox = backend.outbox()
    conn = backend.connect()
    with backend.transaction(conn):
        outbox.enqueue(conn, "q", {"order": 7, "lines": [1.5, None, True, "é"]})
    (m,) = outbox.claim("q", "w", 10, 30)
    assert '{"order":7,"lines":[1.5,null,true,"\\u00e9"]}' == m.body  # as stored, compact
    assert {"order": 7, "lines": [1.5, None, True, "é"]} == m.payload
    assert m.payload is m.payload  # decoded once


def test_a_circular_payload_is_refused(backend: Backend) -> None:
    outbox = backend.outbox()
    conn = backend.connect()
    loop: list[object] = []
    loop.append(loop)
    with backend.transaction(conn):
        with pytest.raises(NotSerialisable, match="recursion"):
            outbox.enqueue(conn, "q", {"loop": loop})
        with pytest.raises(NotSerialisable, match="recursion"):
            outbox.enqueue_many(conn, "q", [1, loop])
        outbox.enqueue(conn, "q", {"after": "a refusal"})  # the encoder is still sound
    assert [{"after": "a refusal"}] == [m.payload for m in outbox.claim("q", "w", 10, 30)]


def test_retry_later_and_dead_letters_and_admin(backend: Backend) -> None:
    clock = FakeWallClock()
    outbox = backend.outbox(queues=["q", "other"], now=clock)
    conn = backend.connect()
    with backend.transaction(conn):
        for i in range(3):
            outbox.enqueue(conn, "q", i, key=f"k{i}")
    a, b, c = outbox.claim("q", "w", 10, 30)
    assert outbox.retry_later(a, 2.0, "ConnectionError: down")
    assert outbox.dead_letter(b, "ValueError: bad")
    status = {s.queue: s for s in outbox.status()}
    assert (2, 1, 1) == (status["q"].pending, status["q"].in_flight, status["q"].dead)
    assert (0, 0, 0, None) == (
        status["other"].pending,
        0,
        status["other"].dead,
        status["other"].oldest,
    )
    assert [] == outbox.claim("q", "w", 10, 30)  # a is not due yet, c is leased
    clock.advance(2)
    (again,) = outbox.claim("q", "w", 10, 30)
    assert (a.id, 1, "ConnectionError: down") == (again.id, again.attempts, again.last_error)
    (dead,) = outbox.dead_letters("q")
    assert (b.id, 1, "ValueError: bad") == (dead.id, dead.attempts, dead.last_error)
    assert 1 == outbox.requeue("q")
    assert [] == outbox.dead_letters("q")
    (revived,) = outbox.claim("q", "w", 10, 30)
    assert (b.uid, 0) == (revived.uid, revived.attempts)
    assert revived.id > c.id  # to the back of the line, under a new id
    assert outbox.dead_letter(revived, "again")
    assert 0 == outbox.purge("q", ids=[c.id])  # live messages are never purged
    assert 1 == outbox.purge("q")
    with pytest.raises(UnknownQueue):
        outbox.requeue("missing")


def test_an_unreachable_store_is_a_clear_error(tmp_path: object) -> None:
    from buttress.outbox import PostgresOutbox, SQLiteOutbox

    with pytest.raises(StoreUnavailable, match="during open"):
        PostgresOutbox("host=127.0.0.1 port=1 connect_timeout=1", queues=["q"])
    blocker = tmp_path / "file"  # type: ignore[operator]
    blocker.write_text("")
    with pytest.raises(StoreUnavailable, match="during open"):
        SQLiteOutbox(blocker / "app.db", queues=["q"])


def test_enqueue_many_is_all_or_nothing_and_in_order(backend: Backend) -> None:
    outbox = backend.outbox()
    conn = backend.connect()
    with backend.transaction(conn):
        assert 3 == outbox.enqueue_many(conn, "q", ["a", "b", "c"], key="k")
        with pytest.raises(NotSerialisable):
            outbox.enqueue_many(conn, "q", ["d", {1, 2}])
    with pytest.raises(RuntimeError), backend.transaction(conn):
        outbox.enqueue_many(conn, "q", ["x", "y"])
        raise RuntimeError("rolled back")
    seen = []
    while batch := outbox.claim("q", "w", 10, 30):
        seen += [m.payload for m in batch]
        outbox.ack([(m.id, m.fence) for m in batch])
    assert ["a", "b", "c"] == seen


def test_a_forked_child_does_not_reuse_its_parents_pool_of_uids() -> None:
    import os

    from buttress.outbox.codec import new_uid as _new_uid

    _new_uid()  # the pool is filled: 255 ids wait in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(_new_uid() for _ in range(255)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    got = b""
    while chunk := os.read(read, 65536):
        got += chunk
    os.close(read)
    child = {got[i : i + 24].decode() for i in range(0, len(got), 24)}
    parent = {_new_uid() for _ in range(255)}
    assert 255 == len(child) and not child & parent
