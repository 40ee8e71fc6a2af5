"""The SQLite key store's automatic purge: a sweep in key order, a bounded number of keys at a
time, that deletes only expired keys and passes over the whole table."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from buttress.integrations import idempotency_stores
from buttress.integrations.idempotency_stores import SQLiteIdempotencyStore

T0 = 1_800_000_000.0


def _keys(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {k for (k,) in conn.execute("SELECT key FROM buttress_idempotency")}
    finally:
        conn.close()


def _fill(store: SQLiteIdempotencyStore, n: int) -> tuple[list[str], set[str]]:
    """``n`` keys begun at T0, every third with a 1 s ttl (expired by T0 + 10), the others with a
    day; the keys in key order and the expired ones."""
    keys = [f"k{i:04d}" for i in range(n)]
    short = {k for i, k in enumerate(keys) if i % 3 == 0}

    async def begin_all() -> None:
        for k in keys:
            ttl = 1.0 if k in short else 86_400.0
            await store.begin(k, "fp", "tok", now=T0, ttl=ttl, lock=30.0)

    asyncio.run(begin_all())
    return sorted(keys), short


def test_each_purge_reads_a_bounded_range_and_successive_ones_sweep_the_table(
    tmp_path: Path,
) -> None:
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    keys, short = _fill(store, 100)
    now = T0 + 10
    left = set(keys)
    for start in range(0, 100, 30):
        window = set(keys[start : start + 30])
        assert store.purge_some(now, limit=30) == len(window & short)
        left -= window & short
        # Only the expired keys of this range are gone; unexpired ones and later ranges stay.
        assert _keys(tmp_path / "idem.db") == left
    assert not (left & short)
    # The sweep starts again from the first key; nothing expired is left to delete.
    assert store.purge_some(now, limit=30) == 0
    assert store.purge_some(now + 86_400, limit=30) == 30
    store.close()


def test_an_empty_table_and_a_table_smaller_than_the_range(tmp_path: Path) -> None:
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    assert store.purge_some(T0) == 0
    _, short = _fill(store, 10)
    assert store.purge_some(T0 + 10, limit=1000) == len(short)
    assert len(_keys(tmp_path / "idem.db")) == 10 - len(short)
    store.close()


def test_begin_runs_the_sweep_every_so_many_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency_stores, "_PURGE_EVERY", 20)
    store = SQLiteIdempotencyStore(tmp_path / "idem.db")
    _, short = _fill(store, 19)
    assert len(_keys(tmp_path / "idem.db")) == 19

    async def twentieth() -> None:
        await store.begin("z-last", "fp", "tok", now=T0 + 10, ttl=86_400.0, lock=30.0)

    asyncio.run(twentieth())  # the 20th begin purges what has expired by its time
    assert _keys(tmp_path / "idem.db") == {f"k{i:04d}" for i in range(19)} - short | {"z-last"}
    store.close()
