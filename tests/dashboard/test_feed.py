"""The live-state feed: writer, reader, publisher with real policies on a fake clock."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import Pipeline
from buttress.dashboard.feed import FeedReader, FeedWriter, Update
from buttress.dashboard.publish import Publisher, Sample, sample_policy
from buttress.errors import ButtressError, ConfigError, Rejected
from buttress.policies.breaker import CircuitBreaker
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import AIMD, AdaptiveLimit
from buttress.policies.ratelimit import RateLimiter
from buttress.policies.retry import Retry
from buttress.slo.store import SLIStore
from buttress.testing import FakeClock


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def breaker_pipeline(clock: FakeClock, name: str = "payments") -> tuple[Pipeline, CircuitBreaker]:
    b = CircuitBreaker(
        name="brk",
        minimum_calls=4,
        window_size=4,
        failure_rate_threshold=0.5,
        break_duration=10.0,
        permitted_calls_in_half_open=1,
        clock=clock,
    )
    return Pipeline([b], name=name, clock=clock), b


def call(p: Pipeline, fn: object) -> None:
    try:
        p.call(fn)  # type: ignore[arg-type]
    except (Boom, Rejected):
        pass


# -- writer and reader -----------------------------------------------------------------------------


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with FeedWriter(db, source="a") as w:
        n = w.write(
            [
                Update("bulkhead", "p", "bh", "ok", "ok", {"inflight": 1, "x": float("nan")}, 10.0),
                Update(
                    "circuit_breaker", "p", "brk", "open", "bad", {"rate": 0.75}, 11.0, "opened"
                ),
            ]
        )
        assert 1 == n
        with FeedReader(db) as r:
            states = {(s.policy_type, s.name): s for s in r.states()}
            assert {"inflight": 1, "x": None} == states[("bulkhead", "bh")].fields
            assert "open" == states[("circuit_breaker", "brk")].state
            (ev,) = r.events()
            assert ("opened", "open", "bad", 11.0, "a") == (
                ev.kind,
                ev.state,
                ev.level,
                ev.time,
                ev.source,
            )
            assert ev.seq == r.last_seq() == states[("circuit_breaker", "brk")].seq


def test_reader_sees_other_connections_commits(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    w = FeedWriter(db, source="a")
    r = FeedReader(db)
    v0 = r.version()
    assert v0 == r.version()  # nothing happened
    w.write([Update("bulkhead", "p", "bh", "ok", "ok", {}, 1.0, "state")])
    assert v0 != r.version()
    assert 1 == len(r.events())
    w.close()
    r.close()


def test_events_are_trimmed_to_retain(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    w = FeedWriter(db, source="a", retain=100)
    for i in range(300):
        w.write([Update("x", "p", "n", f"s{i}", "ok", {}, float(i), "state")])
    r = FeedReader(db)
    evs = r.events(limit=10_000)
    # trimmed every retain // 10 writes: never more than retain + 10 rows, newest kept
    assert 100 <= len(evs) <= 110
    assert "s299" == evs[-1].state
    assert [e.seq for e in evs] == sorted(e.seq for e in evs)
    w.close()
    r.close()


def test_events_filters(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with FeedWriter(db, source="a") as w:
        for i in range(10):
            w.write([Update("x", "p", "n", f"s{i}", "ok", {}, float(i), "state")])
    with FeedReader(db) as r:
        assert ["s7", "s8", "s9"] == [e.state for e in r.events(since=7.0)]
        assert ["s8", "s9"] == [e.state for e in r.events(limit=2)]
        assert ["s9"] == [e.state for e in r.events(after=r.last_seq() - 1)]


def test_reader_of_a_store_without_feed_tables_is_empty(tmp_path: Path) -> None:
    db = tmp_path / "slo.db"
    SLIStore(db).close()
    with FeedReader(db) as r:
        assert [] == r.states()
        assert [] == r.events()
        assert 0 == r.last_seq()


def test_bad_paths_and_parameters(tmp_path: Path) -> None:
    with pytest.raises(ButtressError, match="no such file"):
        FeedReader(tmp_path / "missing.db")
    with pytest.raises(ButtressError, match="is a directory"):
        FeedReader(tmp_path)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ButtressError, match="not a SQLite database"):
        FeedReader(junk)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        FeedWriter(junk)
    with pytest.raises(ConfigError, match="is a directory"):
        FeedWriter(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        FeedWriter(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(ConfigError, match="retain"):
        FeedWriter(tmp_path / "a.db", retain=10)
    with pytest.raises(ConfigError, match="level"):
        with FeedWriter(tmp_path / "b.db") as w:
            w.write([Update("x", "p", "n", "s", "red", {}, 1.0)])


# -- the publisher with real policies -------------------------------------------------------------


def test_breaker_opening_is_logged_with_its_trigger_and_rejections_counted(tmp_path: Path) -> None:
    clock = FakeClock()
    p, b = breaker_pipeline(clock)
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", clock=clock)
    pub.watch(p)
    pub.publish_now()
    r = FeedReader(db)
    assert ["closed"] == [s.state for s in r.states() if s.policy_type == "circuit_breaker"]
    for _ in range(4):
        call(p, boom)
    assert "open" == b.state.value
    for _ in range(3):
        call(p, boom)  # rejected by the open breaker
    pub.publish_now()
    (row,) = [s for s in r.states() if s.policy_type == "circuit_breaker"]
    assert ("open", "bad") == (row.state, row.level)
    assert 3 == row.fields["rejected"]
    assert 1.0 == row.fields["failure_rate"]
    opened = [e for e in r.events() if e.kind == "opened"]
    assert 1 == len(opened)
    assert ("closed", "threshold", 4) == (
        opened[0].fields["from_state"],
        opened[0].fields["trigger"],
        opened[0].fields["failures"],
    )
    # The transition was logged once: the sample that followed did not log "open" again.
    assert ["closed", "open"] == [e.state for e in r.events() if e.policy_type == "circuit_breaker"]
    clock.advance(10)
    call(p, lambda: None)  # the probe: half-open, then closed
    pub.publish_now()
    kinds = [e.kind for e in r.events() if e.policy_type == "circuit_breaker"]
    assert ["state", "opened", "half_opened", "closed"] == kinds
    pub.close()
    r.close()


def test_bulkhead_limit_and_rate_limiter_states(tmp_path: Path) -> None:
    clock = FakeClock()
    bh = Bulkhead(2, max_queue=0, name="bh", clock=clock)
    lim = AdaptiveLimit(AIMD(initial_limit=3, min_limit=1, max_limit=5), name="lim", clock=clock)
    rl = RateLimiter(1, per=60, burst=1, name="rl", clock=clock)
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", clock=clock)
    pub.watch(Pipeline([bh], name="a", clock=clock))
    pub.watch(Pipeline([lim], name="b", clock=clock))
    p_rl = Pipeline([rl], name="c", clock=clock)
    pub.watch(p_rl)
    r = FeedReader(db)

    def by_name() -> dict[str, tuple[str, str, dict[str, object]]]:
        pub.publish_now()
        return {s.name: (s.state, s.level, s.fields) for s in r.states()}

    s = by_name()
    assert ("ok", "ok") == s["bh"][:2]
    assert {"inflight": 0, "queued": 0, "limit": 2, "max_queue": 0, "rejected": 0} == s["bh"][2]
    assert {"inflight": 0, "limit": 3, "algorithm": "AIMD", "rejected": 0} == s["lim"][2]
    assert 1.0 == s["rl"][2]["rate"]
    assert bh.try_acquire() and bh.try_acquire()
    assert ("saturated", "warn") == by_name()["bh"][:2]
    with pytest.raises(Rejected):
        Pipeline([bh], name="a", clock=clock).call(lambda: None)  # not watched: not counted
    p_bh = Pipeline([bh], name="a2", clock=clock)
    pub.watch(p_bh)
    with pytest.raises(Rejected):
        p_bh.call(lambda: None)
    s = by_name()
    assert ("rejecting", "bad", 1) == (s["bh"][0], s["bh"][1], s["bh"][2]["rejected"])
    assert ("saturated", "warn") == by_name()["bh"][:2]  # no refusal since the last sample
    bh.release()
    bh.release()
    assert ("ok", "ok") == by_name()["bh"][:2]
    p_rl.call(lambda: None)
    with pytest.raises(Rejected):
        p_rl.call(lambda: None)
    assert ("rejecting", "bad") == by_name()["rl"][:2]
    pub.close()
    r.close()


def test_watch_check_component_and_set_state(tmp_path: Path) -> None:
    class Report:
        def __init__(self, status: str) -> None:
            self.status = status
            self.observed_value = 12
            self.observed_unit = "ms"
            self.output = None
            self.duration = 0.01
            self.time = 5.0

    class FakeCheck:  # the duck-typed shape of buttress.health.checks.Check
        name = "db"
        key = "db:connections"

        def __init__(self) -> None:
            self.report: Report | None = None

        def last(self) -> Report | None:
            return self.report

    chk = FakeCheck()
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", clock=FakeClock())
    pub.watch_check(chk)
    members = {"http://a": Sample("healthy"), "http://b": Sample("ejected", "bad", {"times": 2})}
    pub.watch_component("endpoint", "pool", "http://b", lambda: members["http://b"])
    pub.set_state("endpoint", "pool", "http://c", "healthy", "ok", weight=3)
    r = FeedReader(db)
    pub.publish_now()
    s = {x.name: x for x in r.states()}
    assert ("unknown", "warn") == (s["db:connections"].state, s["db:connections"].level)
    assert ("ejected", "bad", {"times": 2}) == (
        s["http://b"].state,
        s["http://b"].level,
        s["http://b"].fields,
    )
    assert {"weight": 3} == s["http://c"].fields
    chk.report = Report("fail")
    pub.publish_now()
    s = {x.name: x for x in r.states()}
    assert ("fail", "bad", 12) == (
        s["db:connections"].state,
        s["db:connections"].level,
        s["db:connections"].fields["observed_value"],
    )
    with pytest.raises(ConfigError, match="level"):
        Sample("weird", "purple")

    def broken() -> Sample:
        raise RuntimeError("sampler bug")

    pub.watch_component("endpoint", "pool", "http://d", broken)
    members["http://b"] = Sample("healthy")
    pub.publish_now()  # the broken sampler is logged and skipped; the others are published
    s = {x.name: x for x in r.states()}
    assert "healthy" == s["http://b"].state
    assert "http://d" not in s
    pub.close()
    r.close()


def test_real_health_check_is_published(tmp_path: Path) -> None:
    import asyncio

    from buttress.health.checks import Check, Result, Status

    chk = Check("cache", lambda: Result(Status.WARN, observed_value=0.9, output="90% full"))
    # In a thread of its own: the check runs on an event loop it owns, whatever the caller has.
    t = threading.Thread(target=lambda: asyncio.run(chk.run()))
    t.start()
    t.join()
    pub = Publisher(tmp_path / "s.db", source="svc")
    pub.watch_check(chk)
    pub.publish_now()
    with FeedReader(tmp_path / "s.db") as r:
        (row,) = [s for s in r.states() if s.policy_type == "health"]
    assert ("cache", "warn", "warn", "90% full") == (
        row.name,
        row.state,
        row.level,
        row.fields["output"],
    )
    pub.close()


def test_close_marks_the_source_stopped(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", interval=0.05)
    pub.start()
    pub.close()
    pub.close()  # idempotent
    with FeedReader(db) as r:
        (hb,) = [s for s in r.states() if s.policy_type == "source"]
    assert ("svc", "stopped", "warn") == (hb.name, hb.state, hb.level)


def test_publisher_thread_pushes_a_transition_at_once(tmp_path: Path) -> None:
    """A breaker opening wakes the publishing thread: it is in the store well before the next
    sample (the interval here is 30 s)."""
    import time

    p, _ = breaker_pipeline(FakeClock())
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", interval=30)
    pub.watch(p)
    pub.start()
    r = FeedReader(db)
    t0 = time.monotonic()
    for _ in range(4):
        call(p, boom)
    while not any(e.kind == "opened" for e in r.events()):
        assert time.monotonic() - t0 < 5
        time.sleep(0.005)
    assert time.monotonic() - t0 < 1.0
    pub.close()
    r.close()


def test_bad_publisher_input(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    for bad in (0, -1, 61, "1", True):
        with pytest.raises(ConfigError, match="interval"):
            Publisher(db, interval=bad)  # type: ignore[arg-type]
    pub = Publisher(db)
    with pytest.raises(ConfigError, match="pipeline"):
        pub.watch("payments")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CircuitBreaker, Bulkhead"):
        pub.watch_policy(Retry(attempts=2), scope="p")
    with pytest.raises(ConfigError, match="level"):
        pub.set_state("endpoint", "pool", "a", "up", "green")
    with pytest.raises(ConfigError, match="scope"):
        pub.watch_component("endpoint", "", "a", lambda: Sample("up"))
    with pytest.raises(ConfigError, match="sampler"):
        pub.watch_component("endpoint", "pool", "a", "up")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'last' report"):
        pub.watch_check(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source"):
        Publisher(db, source="")
    assert sample_policy(Retry(attempts=2)) is None
    pub.close()


# -- a property: what the store says is what the breaker is --------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ok", "fail", "wait", "publish"]), min_size=1, max_size=40))
def test_published_breaker_state_matches_the_breaker(ops: list[str]) -> None:
    import tempfile

    clock = FakeClock()
    p, b = breaker_pipeline(clock)
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "s.db"
        pub = Publisher(db, source="svc", clock=clock)
        pub.watch(p)
        r = FeedReader(db)
        for op in ops:
            if op == "ok":
                call(p, lambda: None)
            elif op == "fail":
                call(p, boom)
            elif op == "wait":
                clock.advance(5)
            else:
                pub.publish_now()
                (row,) = [s for s in r.states() if s.policy_type == "circuit_breaker"]
                assert b.snapshot().state.value == row.state
        pub.publish_now()
        (row,) = [s for s in r.states() if s.policy_type == "circuit_breaker"]
        assert b.snapshot().state.value == row.state
        logged = [e.state for e in r.events() if e.policy_type == "circuit_breaker"]
        # every logged change is a change
        assert all(a != c for a, c in itertools.pairwise(logged))
        pub.close()
        r.close()


def test_feed_lives_beside_the_sli_table(tmp_path: Path) -> None:
    """The feed tables go into the SLI store's file; both keep working side by side."""
    db = tmp_path / "s.db"
    store = SLIStore(db)
    store.add([("checkout", 100, 9, 10)])
    pub = Publisher(db, source="svc")
    pub.set_state("endpoint", "pool", "a", "healthy")
    pub.publish_now()
    store.add([("checkout", 100, 1, 1)])
    assert [(100, 10, 11)] == store.rows("checkout", 0, 1000)
    names = {
        r[0]
        for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    assert {"sli_minutes", "buttress_state", "buttress_events"} <= names
    pub.close()
    store.close()


def test_attach_hears_unwatched_pipelines_once(tmp_path: Path) -> None:
    clock = FakeClock()
    watched, _ = breaker_pipeline(clock, "watched")
    other, _ = breaker_pipeline(clock, "other")
    db = tmp_path / "s.db"
    pub = Publisher(db, source="svc", clock=clock)
    pub.watch(watched)
    detach = pub.attach()
    for _ in range(4):
        call(watched, boom)
        call(other, boom)
    call(watched, boom)  # rejected: counted once, not once per listener
    pub.publish_now()
    with FeedReader(db) as r:
        opened = sorted(e.scope for e in r.events() if e.kind == "opened")
        (row,) = [s for s in r.states() if s.scope == "watched"]
    assert ["other", "watched"] == opened
    assert 1 == row.fields["rejected"]
    detach()
    pub.close()
