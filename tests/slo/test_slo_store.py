"""The SQLite store and the recorder: WAL mode, several writing processes, listener, direct API."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.pipeline import Pipeline
from buttress.slo.recorder import SLIRecorder
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore
from buttress.testing import FakeClock


def test_store_is_in_wal_mode_and_upserts_add_up(tmp_path):
    db = tmp_path / "sli.db"
    with SLIStore(db) as store:
        store.add([("a", 10, 5, 6), ("a", 11, 1, 1)])
        store.add([("a", 10, 2, 3)])
        assert [(10, 7, 9), (11, 1, 1)] == store.rows("a", 0, 100)
        good, total = store.series("a", 9, 13)
        assert ([0, 7, 1, 0], [0, 9, 1, 0]) == (good.tolist(), total.tolist())
        assert (10, 11) == store.bounds("a")
        assert None is store.bounds("b")
    with sqlite3.connect(db) as c:
        assert "wal" == c.execute("PRAGMA journal_mode").fetchone()[0]


def _writer(db: str, worker: int, n: int) -> None:
    clock = FakeClock(wall_start=1_700_000_000.0)
    with SLIStore(db) as store:
        rec = SLIRecorder(store, clock=clock, flush_every=0.0)  # flush on every record
        for i in range(n):
            rec.record("shared", good=1 if i % 4 else 0, total=1, at=1_700_000_000.0 + i * 7)
            rec.record(f"own-{worker}", good=1, total=1, at=1_700_000_000.0)
        rec.close()


def test_several_processes_write_the_same_store(tmp_path):
    db = str(tmp_path / "sli.db")
    SLIStore(db).close()
    ctx = mp.get_context("spawn")
    workers, n = 4, 150
    procs = [ctx.Process(target=_writer, args=(db, w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [0] * workers == [p.exitcode for p in procs]
    with SLIStore(db) as store:
        rows = store.rows("shared", 0, 10**9)
        assert workers * n == sum(r[2] for r in rows)
        assert workers * (n - len(range(0, n, 4))) == sum(r[1] for r in rows)
        for w in range(workers):
            assert [(1_700_000_000 // 60, n, n)] == store.rows(f"own-{w}", 0, 10**9)


def test_recorder_buffers_until_flush(tmp_path):
    clock = FakeClock(wall_start=1_700_000_000.0)
    with SLIStore(tmp_path / "sli.db") as store:
        rec = SLIRecorder(store, clock=clock, flush_every=60.0)
        rec.record("x", 3, 4)
        rec.record("x", 1, 1, at=datetime(2023, 11, 14, 22, 13, 30, tzinfo=UTC))
        assert [] == store.rows("x", 0, 10**9)
        clock.advance(61)
        rec.record("x", 0, 1)  # the interval has passed: this flushes everything
        minute = 1_700_000_000 // 60
        assert [(minute, 4, 5), (minute + 1, 0, 1)] == store.rows("x", 0, 10**9)
        with pytest.raises(ConfigError, match="good <= total"):
            rec.record("x", 5, 4)
        with pytest.raises(ConfigError, match="time zone"):
            rec.record("x", 1, 1, at=datetime(2024, 1, 1))
        rec.close()


def test_listener_counts_pipeline_outcomes_and_latency(tmp_path):
    slos = [
        SLOSpec.model_validate(
            {
                "name": "avail",
                "service": "s",
                "objective": 99,
                "sli": {"kind": "ratio", "pipeline": "pay"},
            }
        ),
        SLOSpec.model_validate(
            {
                "name": "fast",
                "service": "s",
                "objective": 99,
                "sli": {"kind": "latency", "pipeline": "pay", "threshold": "100ms"},
            }
        ),
    ]
    clock = FakeClock()
    pipeline = Pipeline.builder("pay", clock=clock).build()
    other = Pipeline.builder("other", clock=clock).build()
    with SLIStore(tmp_path / "sli.db") as store:
        rec = SLIRecorder(store, slos, clock=clock, flush_every=3600)
        remove = rec.attach()
        try:

            def slow() -> int:
                clock.advance(0.5)
                return 1

            def boom() -> int:
                raise RuntimeError("down")

            for _ in range(3):
                pipeline.call(lambda: 1)
            pipeline.call(slow)
            with pytest.raises(RuntimeError):
                pipeline.call(boom)
            other.call(lambda: 1)
        finally:
            remove()
        pipeline.call(lambda: 1)  # not counted: detached
        rec.close()
        assert (4, 5) == tuple(int(x.sum()) for x in store.series("avail", 0, 10**8))
        assert (3, 5) == tuple(int(x.sum()) for x in store.series("fast", 0, 10**8))
        assert ["avail", "fast"] == store.slis()


def test_background_flusher_thread(tmp_path: Path):
    with SLIStore(tmp_path / "sli.db") as store:
        rec = SLIRecorder(store, flush_every=0.01)
        rec.start()
        rec.record("x", 1, 1, at=120.0)
        rec.close()
        assert [(2, 1, 1)] == store.rows("x", 0, 10)


# -- day blocks: every read agrees with a plain dictionary of the rows written

_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 4 * 1440 - 1),  # four days of minutes
        st.integers(0, 50),
        st.integers(0, 50),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(_rows, min_size=1, max_size=3),
    big=st.booleans(),
    lo=st.integers(0, 4 * 1440),
    length=st.integers(0, 4 * 1440),
)
def test_blocks_read_back_what_was_written(batches, big, lo, length, tmp_path_factory):
    model: dict[tuple[str, int], list[int]] = {}
    db = tmp_path_factory.mktemp("blocks") / "sli.db"
    with SLIStore(db) as store:
        for batch in batches:
            if big:  # counts beyond 32 bits widen their block to 64-bit integers
                batch = [(s, m, g * 10**9, (g + t) * 10**9) for s, m, g, t in batch]
            else:
                batch = [(s, m, g, g + t) for s, m, g, t in batch]
            store.add(batch)
            for s, m, g, t in batch:
                cell = model.setdefault((s, m), [0, 0])
                cell[0] += g
                cell[1] += t
        hi = lo + length
        names = ["b", "a", "zz", "b"]  # unknown and repeated names too
        good, total = store.series_many(names, lo, hi)
        for i, name in enumerate(names):
            expected = [model.get((name, m), [0, 0]) for m in range(lo, hi)]
            assert [e[0] for e in expected] == good[i].tolist()
            assert [e[1] for e in expected] == total[i].tolist()
        sums = store.totals(names, lo, hi)
        assert ([int(x) for x in good.sum(axis=1)], [int(x) for x in total.sum(axis=1)]) == sums
        for name in ("a", "b"):
            # Every recorded minute, zero counts included (dashboard burn-downs start there).
            rows = sorted((m, *v) for (s, m), v in model.items() if s == name)
            assert [r for r in rows if lo <= r[0] < hi] == store.rows(name, lo, hi)
            assert ((rows[0][0], rows[-1][0]) if rows else None) == store.bounds(name)


def test_add_series_is_the_same_as_adding_rows(tmp_path):
    rng = np.random.default_rng(3)
    total = rng.integers(0, 100, 3000)
    good = total - rng.integers(0, 2, 3000) * (total > 0)
    with SLIStore(tmp_path / "a.db") as a, SLIStore(tmp_path / "b.db") as b:
        a.add_series("x", 1000, good, total)
        a.add_series("x", 1500, good[:10], total[:10])  # adds up with what is there
        rows = [("x", 1000 + i, int(g), int(total[i])) for i, g in enumerate(good)]
        b.add(rows)
        b.add(("x", m + 500, g, t) for _, m, g, t in rows[:10])
        assert b.rows("x", 0, 10**6) == a.rows("x", 0, 10**6)
        assert b.totals(["x"], 0, 10**6) == a.totals(["x"], 0, 10**6)
        with pytest.raises(ConfigError, match="one length"):
            a.add_series("x", 0, [1, 2], [1])


def test_a_store_with_rows_per_minute_is_converted_to_blocks(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as c:  # the layout of the first version
        c.execute(
            "CREATE TABLE sli_minutes (sli TEXT NOT NULL, minute INTEGER NOT NULL, "
            "good INTEGER NOT NULL, total INTEGER NOT NULL, PRIMARY KEY (sli, minute)) "
            "WITHOUT ROWID"
        )
        c.executemany(
            "INSERT INTO sli_minutes VALUES (?, ?, ?, ?)",
            [("a", 10, 5, 6), ("a", 2000, 1, 1), ("b", 7, 0, 3)],
        )
    with SLIStore(db) as store:
        assert [(10, 5, 6), (2000, 1, 1)] == store.rows("a", 0, 10**6)
        assert ["a", "b"] == store.slis()
    with sqlite3.connect(db) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = [r[1] for r in c.execute("PRAGMA table_info(sli_minutes)")]
    # The per-minute table is gone; the file holds the blocks and the feed's tables (one schema).
    assert {"sli_minutes", "buttress_state", "buttress_events", "sqlite_sequence"} == tables
    assert ["sli", "day", "good", "total", "width", "counts", "seen"] == columns
