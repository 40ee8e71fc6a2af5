"""The claim rules as properties, checked by hypothesis against a model of the table, on SQLite
(every example) and PostgreSQL (fewer): whatever the interleaving of enqueues, claims,
acknowledgements, reschedules, dead letters, requeues and time,

* a claimed message was live, due and not under a live lease, and the oldest live message of
  its key (PostgreSQL), or in a run of claimable messages from it (SQLite);
* the live leases on one key all come from one claim (PostgreSQL: at most one lease per key);
* a claim takes everything claimable up to its limit (it never leaves a claimable message behind
  while returning fewer);
* an acknowledgement succeeds exactly when its fence is the latest and its lease unexpired.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from buttress.outbox import Message

from ._backends import Backend, FakeWallClock

KEYS = st.sampled_from([None, "a", "b", "c"])
_dirs = itertools.count()


@dataclass
class Row:
    id: int
    key: str | None
    available: float
    dead: bool = False
    lease_until: float | None = None
    fence: int = 0
    claim: int = 0


class ClaimMachine(RuleBasedStateMachine):
    backend: Backend

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeWallClock()
        self.outbox = self.backend.outbox(queues=["q"], now=self.clock)
        self.conn = self.backend.connect()
        self.rows: dict[int, Row] = {}
        self.held: list[tuple[int, int]] = []
        self.claims = 0
        self.runs = self.backend.kind == "sqlite"  # SQLite claims runs of a key, PostgreSQL heads

    @initialize()
    def empty(self) -> None:
        for s in self.outbox.status():
            assert 0 == s.pending + s.dead  # each run starts from an empty queue

    def _live(self) -> list[Row]:
        return sorted((r for r in self.rows.values() if not r.dead), key=lambda r: r.id)

    def _leased(self, r: Row) -> bool:
        return r.lease_until is not None and r.lease_until >= self.clock()

    def _claimable(self) -> list[Row]:
        blocked: set[str] = set()
        out = []
        for r in self._live():
            if r.key is not None and r.key in blocked:
                continue
            if r.available <= self.clock() and not self._leased(r):
                out.append(r)
                if r.key is not None and not self.runs:
                    blocked.add(r.key)  # PostgreSQL: the head alone
            elif r.key is not None:
                blocked.add(r.key)
        return out

    @rule(key=KEYS, delay=st.sampled_from([0.0, 0.0, 5.0]))
    def enqueue(self, key: str | None, delay: float) -> None:
        with self.backend.transaction(self.conn):
            mid = self.outbox.enqueue(self.conn, "q", {"k": key}, key=key, delay=delay)
        self.rows[mid] = Row(mid, key, self.clock() + delay)

    @rule(limit=st.integers(1, 4), lease=st.sampled_from([3.0, 10.0]))
    def claim(self, limit: int, lease: float) -> None:
        claimable = {r.id for r in self._claimable()}
        taken = self.outbox.claim("q", "w", limit, lease)
        self.claims += 1
        ids = [m.id for m in taken]
        assert set(ids) <= claimable
        assert len(ids) == min(limit, len(claimable))
        assert sorted(claimable)[: len(ids)] == ids  # the oldest first
        for m in taken:
            r = self.rows[m.id]
            assert m.fence > r.fence
            r.fence, r.lease_until, r.claim = m.fence, self.clock() + lease, self.claims
            self.held.append((m.id, m.fence))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def ack(self, data: Any) -> None:
        mid, fence = data.draw(st.sampled_from(self.held))
        r = self.rows.get(mid)
        expected = r is not None and r.fence == fence and self._leased(r)
        assert [expected] == self.outbox.ack([(mid, fence)])
        if expected:
            del self.rows[mid]
        self.held.remove((mid, fence))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), dead=st.booleans())
    def give_back(self, data: Any, dead: bool) -> None:
        mid, fence = data.draw(st.sampled_from(self.held))
        r = self.rows.get(mid)
        expected = r is not None and r.fence == fence and self._leased(r)
        msg = Message(mid, "", "q", None, None, 0.0, 0, 0, fence)
        done = self.outbox.dead_letter(msg, "x") if dead else self.outbox.retry_later(msg, 2.0, "x")
        assert expected == done
        if done and r is not None:
            r.lease_until = None
            if dead:
                r.dead = True
            else:
                r.available = self.clock() + 2.0

    @rule()
    def requeue(self) -> None:
        dead = sorted((r for r in self.rows.values() if r.dead), key=lambda r: r.id)
        assert len(dead) == self.outbox.requeue("q")
        ids = [row[0] for row in self.conn.execute("SELECT id FROM buttress_outbox ORDER BY id")]
        fresh = [i for i in ids if i not in self.rows]  # the revived rows' new ids, in order
        assert len(fresh) == len(dead) and all(i > max(self.rows) for i in fresh)
        for r, new_id in zip(dead, fresh, strict=True):
            del self.rows[r.id]
            self.rows[new_id] = Row(new_id, r.key, self.clock())

    @rule(seconds=st.sampled_from([1.0, 4.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def one_claim_per_key(self) -> None:
        leased = [(r.key, r.claim) for r in self._live() if r.key is not None and self._leased(r)]
        by_key: dict[str, set[int]] = {}
        for key, claim in leased:
            by_key.setdefault(key, set()).add(claim)
        assert all(len(claims) == 1 for claims in by_key.values())
        if not self.runs:
            assert len(leased) == len(by_key)

    @invariant()
    def counts_agree(self) -> None:
        (s,) = self.outbox.status()
        live = self._live()
        assert (len(live), len(self.rows) - len(live)) == (s.pending, s.dead)

    def teardown(self) -> None:
        self.conn.close()
        self.outbox.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_claims_follow_the_rules(kind: str, tmp_path_factory: Any, request: Any) -> None:
    examples = 60 if kind == "sqlite" else 12

    def fresh_target() -> str:
        if kind == "sqlite":
            return str(tmp_path_factory.mktemp(f"claims{next(_dirs)}"))
        return _pg_fresh(request)

    class Machine(ClaimMachine):
        def __init__(self) -> None:
            self.backend = Backend(kind, fresh_target())  # each example on an empty database
            super().__init__()

    Machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    Machine.TestCase().runTest()


def _pg_fresh(request: Any) -> str:
    import uuid

    import psycopg

    base = request.getfixturevalue("postgres")
    name = f"m{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return str(base).replace("dbname=postgres", f"dbname={name}")
