"""The SQLite store and the recorder: WAL mode, several writing processes, listener, direct API."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

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
