"""SQLite backups: consistent under concurrent writers, verified by restoring them, restored."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from buttress.dr import sqlite as drsqlite
from buttress.dr.catalog import list_backups
from buttress.dr.manifest import load_backup
from buttress.errors import ConfigError
from buttress.sqlite import connect, transaction

from .conftest import read_all


def test_backup_under_concurrent_writers_is_one_consistent_snapshot(
    app_db: Path, target: Path
) -> None:
    """Two writers move money between accounts and append sentinels while backups run (and
    checkpoints move WAL frames into the file under the copy): every backup holds the invariant
    total and a gap-free prefix of the sentinels, passes the integrity check, and verifies."""
    stop = threading.Event()
    committed: list[int] = []

    def writer(first: int) -> None:
        conn = connect(app_db)
        conn.execute("PRAGMA wal_autocheckpoint = 5")  # checkpoints race every backup's copy
        seq = first
        while not stop.is_set():
            with transaction(conn):
                conn.execute("UPDATE accounts SET balance = balance - 7 WHERE name = 'a'")
                conn.execute("UPDATE accounts SET balance = balance + 7 WHERE name = 'b'")
                conn.execute("INSERT INTO orders (note) VALUES (?)", (f"w{seq}",))
                conn.execute(
                    "INSERT INTO buttress_sentinel VALUES "
                    "((SELECT max(seq) + 1 FROM buttress_sentinel), ?)",
                    (float(seq),),
                )
            committed.append(seq)
            seq += 1
        conn.close()

    threads = [threading.Thread(target=writer, args=(k * 1_000_000,)) for k in (1, 2)]
    for t in threads:
        t.start()
    try:
        infos = []
        while len(infos) < 8:
            infos.append(drsqlite.backup(app_db, target))
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert len(committed) > 10  # the writers really wrote during the backups
    seqs = []
    for info in infos:
        data = info.path / drsqlite.DATA_FILE
        assert read_all(data, "PRAGMA integrity_check") == [("ok",)]
        assert read_all(data, "SELECT sum(balance) FROM accounts") == [(2000,)]
        n, top = read_all(data, "SELECT count(*), max(seq) FROM buttress_sentinel")[0]
        assert n == top  # no gap: the snapshot is one transaction boundary
        seqs.append(top)
        outcome = drsqlite.verify(info.path)
        assert outcome.ok, outcome.problems
        assert info.manifest.sentinel is not None and info.manifest.sentinel.seq == top
    assert seqs == sorted(seqs)
    assert [b.status for b in list_backups(target)] == ["verified"] * 8


def _flip_bit_in(path: Path, needle: bytes) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.index(needle) + len(needle) - 1
    raw[at] ^= 0x01  # '7' -> '6': still valid UTF-8 text, still a well-formed page
    path.write_bytes(bytes(raw))


def test_bit_flip_in_row_data_passes_integrity_check_but_not_the_content_hash(
    app_db: Path, target: Path
) -> None:
    info = drsqlite.backup(app_db, target)
    _flip_bit_in(info.path / drsqlite.DATA_FILE, b"payload-000257")
    outcome = drsqlite.verify(info.path)
    assert outcome.checks["integrity"] == "ok"  # SQLite's own check does not see it
    assert not outcome.ok
    assert outcome.problems == ("table orders: content hash differs from the manifest",)
    assert load_backup(info.path).status == "failed"


def test_a_backup_nobody_verified_is_reported_unverified(app_db: Path, target: Path) -> None:
    drsqlite.backup(app_db, target)
    (b,) = list_backups(target)
    assert b.status == "unverified"
    assert b.verified is None


def test_deleted_rows_change_the_count_and_freshness_is_judged_by_the_sentinel(
    app_db: Path, target: Path
) -> None:
    info = drsqlite.backup(app_db, target)
    assert drsqlite.verify(info.path, max_age=10.0, now=1005.0).ok  # sentinel at 1000.0
    stale = drsqlite.verify(info.path, max_age=10.0, now=1011.0)
    assert stale.problems == ("freshness: newest sentinel is 11.0 s old, more than 10 s",)
    conn = connect(info.path / drsqlite.DATA_FILE)
    conn.execute("DELETE FROM orders WHERE id = 3")
    conn.close()
    outcome = drsqlite.verify(info.path)
    assert outcome.problems == ("table orders: 499 rows, the manifest says 500",)


def test_restore_refuses_a_live_database_without_force_and_replaces_it_with_force(
    app_db: Path, target: Path
) -> None:
    info = drsqlite.backup(app_db, target)
    conn = connect(app_db)
    conn.execute("INSERT INTO orders (note) VALUES ('after the backup')")  # sits in the WAL
    before = app_db.read_bytes()
    with pytest.raises(drsqlite.LiveDatabase):
        drsqlite.restore(info.path, app_db)
    assert app_db.read_bytes() == before
    conn.close()
    drsqlite.restore(info.path, app_db, force=True)
    assert not Path(f"{app_db}-wal").exists()
    assert read_all(app_db, "SELECT count(*) FROM orders") == [(500,)]
    assert read_all(app_db, "PRAGMA integrity_check") == [("ok",)]


def test_point_in_time_picks_the_newest_backup_finished_before(app_db: Path, target: Path) -> None:
    first = drsqlite.backup(app_db, target)
    conn = connect(app_db)
    conn.execute("INSERT INTO buttress_sentinel VALUES (2, 2000.0)")
    conn.close()
    second = drsqlite.backup(app_db, target)
    assert drsqlite.pick_backup(target, "app").manifest.id == second.manifest.id
    at = first.manifest.finished_at + (second.manifest.started_at - first.manifest.finished_at) / 2
    assert drsqlite.pick_backup(target, "app", at=at).manifest.id == first.manifest.id
    with pytest.raises(ConfigError, match="no backup finished by"):
        drsqlite.pick_backup(target, "app", at=first.manifest.started_at)


def test_bad_targets_are_refused_and_leave_nothing(app_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        drsqlite.backup(app_db, tmp_path / "missing")
    with pytest.raises(ConfigError, match="is not a directory"):
        drsqlite.backup(app_db, app_db)
    with pytest.raises(ConfigError, match="no such file"):
        drsqlite.backup(tmp_path / "nope.db", tmp_path)
    assert not (tmp_path / "nope.db").exists()  # never silently created
    assert {p.name for p in tmp_path.iterdir()} <= {"app.db", "app.db-wal", "app.db-shm"}
