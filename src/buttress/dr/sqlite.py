"""SQLite backups: online copy, verification by restoring into scratch, restore.

**Backup.** A consistent copy at file-copy speed, the way Litestream takes its snapshots: the
backup opens a read transaction on the source and, while holding it, copies the database file
and then its ``-wal`` file with the kernel's ``copy_file_range``.  In WAL mode a reader never
blocks a writer, and an open read transaction pins the WAL: a checkpoint copies into the database
file only frames the reader can already see (and none at all while it reads the file alone), and
the WAL is not restarted under it.  So every page of the file copy is either as of the snapshot
or is overridden by a frame of the WAL copy, and opening the copy replays the WAL up to its last
intact commit (a frame torn by a concurrent append fails its checksum and ends the replay): the
database exactly as of one commit.  The copy is checkpointed into one self-contained file with a
rollback journal, fingerprinted (:func:`~buttress.dr.manifest.table_fingerprints`), fsync'd and
published by renaming its directory: a backup directory either has its manifest or is not listed.
(SQLite's own online backup API gives the same guarantee but copies through the pager, about 5x
slower than the file copy here; a database not in WAL mode is copied under its read lock, which
holds writers back for the length of the copy.)  The application's writers are affected only
while the files are copied (``extra.snapshot_seconds`` in the manifest); hashing reads the copy.

**Verify.** Copies the backup into a scratch directory (a restore, not a read of the backup in
place), runs ``PRAGMA integrity_check``, recomputes every table's row count and content hash and
compares them with the manifest, reads the sentinel, and checks its age when a limit is given.
The outcome is written next to the backup (``verify.json``); a backup without one is reported
unverified.

**Restore.** Refuses to replace an existing database unless forced.  The backup is copied next to
the target, checked (``PRAGMA quick_check``) and fsync'd, the target's ``-wal`` and ``-shm`` are
removed (old WAL frames replayed over the restored file would corrupt it), and the copy is renamed
over the target.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from buttress.errors import ConfigError

from . import events as ev
from .catalog import check_target, list_backups
from .manifest import (
    MANIFEST,
    SENTINEL_TABLE,
    BackupInfo,
    Manifest,
    VerifyOutcome,
    backup_id,
    check_database_name,
    freshness_problems,
    latest_sentinel,
    load_backup,
    record_verify,
    table_fingerprints,
    write_json_atomically,
)

__all__ = ["DATA_FILE", "LiveDatabase", "backup", "open_existing", "restore", "verify"]

DATA_FILE = "db.sqlite"


class LiveDatabase(ConfigError):
    """A restore would replace an existing database and ``force`` was not given."""

    def __init__(self, path: str) -> None:
        super().__init__(
            "database", path, "a database already exists there; pass --force to replace it"
        )


def open_existing(path: str | Path, *, parameter: str = "database") -> sqlite3.Connection:
    """Open an existing SQLite file read-write in autocommit mode, never creating one (a plain
    ``sqlite3.connect`` would silently create an empty database at a mistyped path).  The
    connection may be used from any thread; guard it with a lock."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(parameter, str(path), "no such file")
    try:
        conn = sqlite3.connect(
            f"{p.resolve().as_uri()}?mode=rw",
            uri=True,
            isolation_level=None,
            timeout=10.0,
            check_same_thread=False,  # callers share it under their own lock
        )
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise ConfigError(parameter, str(path), f"not a usable SQLite database ({e})") from None
    return conn


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _copy_prefix(src: Path, dest: Path, length: int | None = None) -> None:
    """Copy the first ``length`` bytes of ``src`` (all when ``None``) in the kernel."""
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        remaining = os.fstat(fin.fileno()).st_size if length is None else length
        offset = 0
        while remaining > 0:
            n = os.copy_file_range(fin.fileno(), fout.fileno(), remaining, offset, offset)
            if n == 0:  # the file is shorter than it was: nothing more to copy
                break
            offset += n
            remaining -= n


def snapshot_copy(source: sqlite3.Connection, path: Path, dest: Path) -> float:
    """Copy the database at ``path`` (opened as ``source``) to ``dest`` as of one commit, under a
    read transaction (see the module docstring); returns the seconds the snapshot was held."""
    page_size = int(source.execute("PRAGMA page_size").fetchone()[0])
    wal_mode = str(source.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
    t0 = time.perf_counter()
    source.execute("BEGIN")
    try:
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the read lock
        # Whole pages only: a page the file grows by during the copy is in the WAL copy anyway.
        whole = os.stat(path).st_size // page_size * page_size
        _copy_prefix(path, dest, whole)
        wal = Path(f"{path}-wal")
        if wal_mode and wal.exists():
            _copy_prefix(wal, Path(f"{dest}-wal"))
    finally:
        source.execute("COMMIT")
    return time.perf_counter() - t0


def backup(
    database: str | Path,
    target: str | Path,
    *,
    name: str | None = None,
    sentinel_table: str = SENTINEL_TABLE,
) -> BackupInfo:
    """Back up the SQLite file ``database`` into a new directory under ``target``.

    :param name: the database's name in the catalog (default: the file's stem).
    :param sentinel_table: the table whose newest row is recorded as the backup's sentinel.

    Safe while other processes write to ``database`` (see the module docstring).  Raises
    :class:`~buttress.errors.ConfigError` naming the parameter for a missing database, a missing
    or unwritable target; nothing is left behind in ``target`` when it fails.
    """
    tdir = check_target(target)
    db_name = check_database_name(name if name is not None else Path(database).stem)
    source = open_existing(database)
    started = time.time()
    bid = backup_id(db_name, started)
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{bid}-", dir=tdir))
    try:
        data = partial / DATA_FILE
        try:
            held = snapshot_copy(source, Path(database), data)
        finally:
            source.close()
        dest = sqlite3.connect(data, isolation_level=None)
        try:
            dest.execute("PRAGMA journal_mode = DELETE")  # replays and folds in the WAL copy
            tables = table_fingerprints(dest)
            sentinel = latest_sentinel(dest, sentinel_table)
        finally:
            dest.close()
        _fsync_file(data)
        finished = time.time()
        manifest = Manifest(
            id=bid,
            database=db_name,
            engine="sqlite",
            source=str(Path(database).resolve()),
            started_at=started,
            finished_at=finished,
            size=data.stat().st_size,
            tables=tables,
            sentinel=sentinel,
            extra={"sentinel_table": sentinel_table, "snapshot_seconds": held},
        )
        write_json_atomically(partial / MANIFEST, manifest.to_json())
        final = tdir / bid
        os.rename(partial, final)
        _fsync_dir(tdir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    em = ev.emitter()
    if em.active:
        em.emit(
            ev.BackupCompleted(
                "dr",
                db_name,
                time.monotonic(),
                backup=bid,
                duration=finished - started,
                size=manifest.size,
            )
        )
    return BackupInfo(path=final, manifest=manifest, verified=None)


def _compare(manifest: Manifest, conn: sqlite3.Connection) -> tuple[list[str], dict[str, str]]:
    problems: list[str] = []
    checks: dict[str, str] = {}
    integrity = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    checks["integrity"] = "ok" if integrity == ["ok"] else "; ".join(integrity[:5])
    if integrity != ["ok"]:
        problems.append(f"integrity: {checks['integrity']}")
    found = table_fingerprints(conn)
    for table in sorted(set(manifest.tables) | set(found)):
        want, got = manifest.tables.get(table), found.get(table)
        if want is None:
            problems.append(f"table {table}: not in the manifest")
        elif got is None:
            problems.append(f"table {table}: missing")
        elif want.rows != got.rows:
            problems.append(f"table {table}: {got.rows} rows, the manifest says {want.rows}")
        elif want.sha256 != got.sha256:
            problems.append(f"table {table}: content hash differs from the manifest")
    checks["tables"] = f"{len(found)} tables, {sum(t.rows for t in found.values())} rows"
    return problems, checks


def verify(
    backup_dir: str | Path,
    *,
    max_age: float | None = None,
    scratch: str | Path | None = None,
    now: float | None = None,
) -> VerifyOutcome:
    """Restore the backup at ``backup_dir`` into scratch and check it; record the outcome.

    :param max_age: fail when the backup's newest sentinel is older than this many seconds
        (at ``now``, default the current time); ``None`` reports the age without judging it.
    :param scratch: where to restore (default: the system's temporary directory).
    """
    info = load_backup(Path(backup_dir))
    m = info.manifest
    started = time.monotonic()
    problems: list[str] = []
    checks: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="buttress-verify-", dir=scratch) as tmp:
        copy = Path(tmp) / DATA_FILE
        try:
            shutil.copyfile(info.path / DATA_FILE, copy)
            conn = sqlite3.connect(f"{copy.as_uri()}?mode=rw", uri=True, isolation_level=None)
        except (OSError, sqlite3.DatabaseError) as e:
            problems.append(f"restore: {e}")
        else:
            try:
                found, checks = _compare(m, conn)
                problems += found
                sentinel = latest_sentinel(conn, str(m.extra.get("sentinel_table", SENTINEL_TABLE)))
            except sqlite3.DatabaseError as e:
                problems.append(f"integrity: {e}")
                sentinel = None
            finally:
                conn.close()
            problems += _check_sentinel(m, sentinel, checks, max_age, now)
    return record_verify(info, started, problems, checks)


def _check_sentinel(
    m: Manifest, sentinel: object, checks: dict[str, str], max_age: float | None, now: float | None
) -> list[str]:
    if sentinel != m.sentinel:
        return [f"sentinel: restored {sentinel}, the manifest says {m.sentinel}"]
    return freshness_problems(m.sentinel, checks, max_age, now)


def restore(backup_dir: str | Path, target: str | Path, *, force: bool = False) -> Manifest:
    """Restore the backup at ``backup_dir`` as the database file ``target``.

    Raises :class:`LiveDatabase` when ``target`` exists and ``force`` is false, and
    :class:`~buttress.errors.ConfigError` when the copy fails its quick check; in both cases the
    target is untouched.
    """
    started = time.monotonic()
    info = load_backup(Path(backup_dir))
    dest = Path(target)
    if dest.is_dir():
        raise ConfigError("database", str(target), "is a directory; give the database file")
    if dest.exists() and not force:
        raise LiveDatabase(str(target))
    if not dest.parent.is_dir():
        raise ConfigError("database", str(target), "its directory does not exist")
    tmp = dest.with_name(f".{dest.name}.restoring")
    try:
        shutil.copyfile(info.path / DATA_FILE, tmp)
        conn = sqlite3.connect(f"{tmp.resolve().as_uri()}?mode=rw", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            conn.close()
        if check != "ok":
            raise ConfigError("backup", str(backup_dir), f"fails its quick check ({check})")
        _fsync_file(tmp)
        for suffix in ("-wal", "-shm"):
            Path(f"{dest}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)
    em = ev.emitter()
    if em.active:
        em.emit(
            ev.RestoreCompleted(
                "dr",
                info.manifest.database,
                time.monotonic(),
                backup=info.manifest.id,
                duration=time.monotonic() - started,
                target=str(dest),
            )
        )
    return info.manifest


def pick_backup(
    target: str | Path, database: str, *, at: float | None = None, verified_only: bool = False
) -> BackupInfo:
    """The newest backup of ``database`` in ``target`` (finished at or before ``at`` when given:
    every row it holds was committed before ``at``)."""
    candidates = [
        b
        for b in list_backups(target, database)
        if (at is None or b.manifest.finished_at <= at)
        and (not verified_only or b.status == "verified")
    ]
    if not candidates:
        when = "" if at is None else f" finished by {at}"
        raise ConfigError("database", database, f"no backup{when} in {target}")
    return candidates[-1]
