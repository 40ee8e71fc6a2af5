"""The runtime guard: a database file deleted or replaced under a running application."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from buttress.dr.guard import DatabaseFileLost, FileGuard, GuardedConnection
from buttress.errors import ConfigError
from buttress.sqlite import connect
from buttress.testing import FakeClock


def _insert(note: str):  # type: ignore[no-untyped-def]
    return lambda c: c.execute("INSERT INTO orders (note) VALUES (?)", (note,))


def test_without_the_guard_writes_into_a_deleted_file_succeed_and_are_lost(app_db: Path) -> None:
    """The failure the guard exists for, shown on the real thing."""
    conn = connect(app_db)
    os.unlink(app_db)
    conn.execute("INSERT INTO orders (note) VALUES ('acknowledged')")  # no error at all
    conn.close()
    assert not app_db.exists()


def test_a_deleted_file_refuses_the_next_write(app_db: Path) -> None:
    g = GuardedConnection(connect(app_db), FileGuard(app_db, interval=0.0))
    g.write(_insert("before"))
    os.unlink(app_db)
    with pytest.raises(DatabaseFileLost, match="was deleted; writes refused"):
        g.write(_insert("after"))
    assert g.guard.lost == "was deleted"
    g.close()


def test_a_replaced_file_refuses_writes_and_never_acknowledges_the_one_in_flight(
    app_db: Path, tmp_path: Path
) -> None:
    """The file is replaced while a write's transaction is open: its commit goes to the old inode,
    so the write must fail rather than be acknowledged."""
    shutil.copyfile(app_db, tmp_path / "other.db")
    g = GuardedConnection(connect(app_db), FileGuard(app_db, interval=3600.0))

    def replace_mid_write(c):  # type: ignore[no-untyped-def]
        c.execute("INSERT INTO orders (note) VALUES ('in flight')")
        os.replace(tmp_path / "other.db", app_db)

    with pytest.raises(DatabaseFileLost, match=r"replaced by another file \(this write is lost\)"):
        g.write(replace_mid_write)
    with pytest.raises(DatabaseFileLost):
        g.write(_insert("next"))
    g.close()


def test_the_cadence_decides_when_a_write_rechecks(app_db: Path) -> None:
    clock = FakeClock()
    guard = FileGuard(app_db, interval=1.0, clock=clock)
    os.unlink(app_db)
    guard.ensure()  # the last check is fresh: no stat, no refusal yet
    clock.advance(1.0)
    with pytest.raises(DatabaseFileLost):
        guard.ensure()


def test_the_background_check_tells_the_application_once(app_db: Path) -> None:
    told: list[str] = []
    done = threading.Event()

    def on_lost(reason: str) -> None:
        told.append(reason)
        done.set()

    guard = FileGuard(app_db, interval=0.02, on_lost=on_lost).start()
    os.unlink(app_db)
    assert done.wait(5.0)
    guard.check()
    guard.stop()
    assert told == ["was deleted"]


def test_guarding_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file to guard"):
        FileGuard(tmp_path / "nope.db")
