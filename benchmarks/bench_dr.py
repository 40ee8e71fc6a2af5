"""Data protection: SQLite backup speed under writes, and the RTO of a drill.

Groups:

* ``dr-sqlite-backup``: MB/s backing up a 100 MB WAL database (20 MB with ``--quick``) while a
  writer thread commits a row every millisecond.  Baseline: copying the same file
  (``shutil.copyfile``, the page cache warm for both).  Rows: the online backup API alone (one
  step, one read transaction) and the whole ``buttress dr backup`` (copy, switch to a rollback
  journal, per-table content hashes, fsync, manifest).  Issue 17's figure: the backup at no less
  than 30% of the copy's speed, judged on the consistent copy (the part that holds a snapshot and
  the only part the writers could feel); the whole backup adds the content hashes (a full scan
  of the copy in Python), the fsync and the manifest.  The notes say whether the target is met
  and how many writes committed during the backup (the writer is never blocked).
* ``dr-drill``: seconds from deleting that database to the first surviving write after the
  restore (``buttress dr drill --disruption delete``).  Baseline: issue 17's objective, 5 s.

Each figure is the median of 5 runs (3 with ``--quick``).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from buttress.dr import sqlite as drsqlite
from buttress.dr.drill import DrillConfig, run_drill
from buttress.dr.drill_sqlite import SqliteDrillTarget
from buttress.sqlite import connect

TARGET_SHARE = 0.30
RTO_OBJECTIVE = 5.0
MB = 1024 * 1024


def make_database(path: Path, megabytes: int) -> None:
    conn = connect(path)
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.execute("CREATE TABLE buttress_sentinel (seq INTEGER PRIMARY KEY, at REAL NOT NULL)")
    body = "x" * 900
    rows = megabytes * MB // 1000
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO items (body) VALUES (?)", ((f"{i:09d}{body}",) for i in range(rows))
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


class _Writer:
    """Commits one small row per millisecond until stopped; counts the commits."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.commits = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.wait(0.001):
            self.conn.execute("INSERT INTO items (body) VALUES ('w')")
            self.commits += 1

    def __enter__(self) -> _Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.conn.close()


def _time(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _backup_rows(db: Path, work: Path, runs: int) -> list[dict[str, Any]]:
    size = db.stat().st_size / MB
    copies, raw, snap, full, during = [], [], [], [], []
    for i in range(runs):
        copies.append(_time(lambda i=i: shutil.copyfile(db, work / f"copy{i}")))
        (work / f"copy{i}").unlink()
        with _Writer(db) as w:
            src = drsqlite.open_existing(db)

            def api(i: int = i, src: Any = src) -> None:
                import sqlite3

                dest = sqlite3.connect(work / f"api{i}")
                src.backup(dest, pages=-1)
                dest.close()

            raw.append(_time(api))
            src.close()
            (work / f"api{i}").unlink()
            before = w.commits
            target = work / f"bk{i}"
            target.mkdir()
            t0 = time.perf_counter()
            info = drsqlite.backup(db, target)
            full.append(time.perf_counter() - t0)
            snap.append(float(info.manifest.extra["snapshot_seconds"]))
            during.append(w.commits - before)
            shutil.rmtree(target)
    copy_rate = size / statistics.median(copies)
    share_raw = (size / statistics.median(raw)) / copy_rate
    share_snap = (size / statistics.median(snap)) / copy_rate
    share_full = (size / statistics.median(full)) / copy_rate
    met = "met" if share_snap >= TARGET_SHARE else "NOT met"
    group = "dr-sqlite-backup"
    return [
        {"group": group, "name": f"file copy ({size:.0f} MB)", "value": copy_rate,
         "unit": "MB/s", "baseline": True, "lower_is_better": False},
        {"group": group, "name": "online backup API, under writes",
         "value": size / statistics.median(raw),
         "unit": "MB/s", "baseline": False, "lower_is_better": False,
         "note": f"{share_raw:.0%} of the copy"},
        {"group": group, "name": "buttress dr backup: consistent copy, under writes",
         "value": size / statistics.median(snap), "unit": "MB/s", "baseline": False,
         "lower_is_better": False,
         "note": f"{share_snap:.0%} of the copy (target >= {TARGET_SHARE:.0%}: {met})"},
        {"group": group, "name": "buttress dr backup: whole (+ content hashes, fsync, manifest)",
         "value": size / statistics.median(full), "unit": "MB/s", "baseline": False,
         "lower_is_better": False,
         "note": f"{share_full:.0%} of the copy; {statistics.median(during):.0f} commits "
         "during it"},
    ]  # fmt: skip


def _drill_rows(db: Path, work: Path, runs: int) -> list[dict[str, Any]]:
    rtos = []
    for i in range(runs):
        ws = work / f"drill{i}"
        ws.mkdir()
        config = DrillConfig(disruption="delete", before=1.5, backup_interval=1.0, after=0.3)
        result = run_drill(SqliteDrillTarget(db, ws), config)
        shutil.rmtree(ws)
        rtos.append(result.rto if result.rto is not None else float("inf"))
    rto = statistics.median(rtos)
    size = db.stat().st_size / MB
    met = "met" if rto < RTO_OBJECTIVE else "NOT met"
    return [
        {"group": "dr-drill", "name": "RTO objective (issue 17)", "value": RTO_OBJECTIVE,
         "unit": "s", "baseline": True, "lower_is_better": True},
        {"group": "dr-drill", "name": f"drill RTO, {size:.0f} MB database deleted", "value": rto,
         "unit": "s", "baseline": False, "lower_is_better": True,
         "note": f"< {RTO_OBJECTIVE:g} s: {met}; runs {', '.join(f'{r:.2f}' for r in rtos)}"},
    ]  # fmt: skip


def run(quick: bool = False) -> list[dict[str, Any]]:
    megabytes, runs = (20, 3) if quick else (100, 5)
    with tempfile.TemporaryDirectory(prefix="bench-dr-") as tmp:
        work = Path(tmp)
        db = work / "app.db"
        make_database(db, megabytes)
        return _backup_rows(db, work, runs) + _drill_rows(db, work, 3 if quick else runs)


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
