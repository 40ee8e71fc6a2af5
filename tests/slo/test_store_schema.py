"""The store file's schema: versions in ``PRAGMA user_version``, migrations applied on open
(:mod:`buttress.sqlite`, :mod:`buttress.slo.schema`), on real SQLite files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from buttress.dashboard.feed import FeedReader, FeedWriter, Update
from buttress.errors import ConfigError
from buttress.slo.schema import MIGRATIONS, SCHEMA_VERSION
from buttress.slo.store import SLIStore
from buttress.sqlite import NewerSchema, connect, migrate, schema_version


def _tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _version(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return int(c.execute("PRAGMA user_version").fetchone()[0])


def test_a_fresh_store_gets_every_table_and_the_latest_version(tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"
    with SLIStore(db) as store:
        store.add([("a", 10, 1, 2)])
    assert SCHEMA_VERSION == _version(db)
    assert {"sli_minutes", "buttress_state", "buttress_events"} <= _tables(db)
    with sqlite3.connect(db) as c:
        assert "wal" == c.execute("PRAGMA journal_mode").fetchone()[0]
        assert 16384 == c.execute("PRAGMA page_size").fetchone()[0]


def test_the_feed_writer_alone_makes_the_same_file(tmp_path: Path) -> None:
    db = tmp_path / "feed.db"
    FeedWriter(db).close()
    assert SCHEMA_VERSION == _version(db)
    with SLIStore(db) as store:
        assert [] == store.slis()


def test_a_store_one_version_behind_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with SLIStore(db) as store:
        store.add([("a", 10, 5, 6), ("a", 2000, 1, 1)])
    # Wind the file back to version N-1, as the previous release left it: without the last step's
    # tables (the feed's, today).
    with sqlite3.connect(db) as c:
        c.execute("DROP TABLE buttress_state")
        c.execute("DROP TABLE buttress_events")
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    with FeedWriter(db, source="s") as w:
        w.write([Update("bulkhead", "p", "b", "ok", "ok", {"in_flight": 1}, 1.0, log="state")])
    assert SCHEMA_VERSION == _version(db)
    with SLIStore(db) as store:
        assert [(10, 5, 6), (2000, 1, 1)] == store.rows("a", 0, 10**6)
    with FeedReader(db) as r:
        assert ["ok"] == [s.state for s in r.states()]


def test_a_store_from_before_versions_is_adopted_as_it_is(tmp_path: Path) -> None:
    """Files written before the schema was versioned have ``user_version`` 0 and tables already:
    the first steps tolerate them."""
    db = tmp_path / "v0.db"
    with SLIStore(db) as store, FeedWriter(db, source="s") as w:
        store.add([("a", 10, 5, 6)])
        w.write([Update("bulkhead", "p", "b", "ok", "ok", {}, 1.0, log="state")])
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA user_version = 0")
    with SLIStore(db) as store:
        assert [(10, 5, 6)] == store.rows("a", 0, 10**6)
    assert SCHEMA_VERSION == _version(db)
    with FeedReader(db) as r:
        assert 1 == r.last_seq()


@pytest.mark.parametrize("opener", [SLIStore, FeedWriter, FeedReader])
def test_a_file_from_a_newer_buttress_is_refused(tmp_path: Path, opener: type) -> None:
    db = tmp_path / "new.db"
    SLIStore(db).close()
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(NewerSchema) as info:
        opener(db)
    assert isinstance(info.value, ConfigError)
    assert str(db) in str(info.value)
    assert f"schema version is {SCHEMA_VERSION + 1}" in str(info.value)
    assert f"knows ({SCHEMA_VERSION})" in str(info.value)
    assert SCHEMA_VERSION + 1 == _version(db)  # left as it was


def test_the_store_creates_its_folder(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "slo.db"
    with SLIStore(db) as store:
        store.add([("a", 1, 1, 1)])
    assert db.exists()


def test_migrations_apply_in_order_once_and_all_or_none(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    ran: list[int] = []

    def second(c: sqlite3.Connection) -> None:
        ran.append(2)
        c.execute("INSERT INTO t VALUES (2)")

    steps = ["CREATE TABLE t (v INTEGER);\nINSERT INTO t VALUES (1);", second]
    conn = connect(db)
    assert 2 == migrate(conn, steps, str(db))
    assert 0 == migrate(conn, steps, str(db))
    assert [2] == ran
    assert 2 == schema_version(conn)

    def broken(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES (3)")
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        migrate(conn, [*steps, "INSERT INTO t VALUES (4)", broken], str(db))
    assert 2 == schema_version(conn)  # neither step 3 nor step 4 stayed
    assert [(1,), (2,)] == conn.execute("SELECT v FROM t ORDER BY v").fetchall()
    conn.close()


def test_the_store_schema_list_is_what_the_version_counts() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION
