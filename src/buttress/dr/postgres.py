"""PostgreSQL backups: base backup plus WAL archive, verified by a test restore.

**Backup** runs ``pg_basebackup`` (plain format, the WAL it needs streamed in, a ``backup_manifest``
with SHA-256 checksums) into a new directory under the target and records, as for SQLite, a
manifest: the server's sentinel as read just *before* the backup began (a lower bound: the
restored copy must hold at least that), the backup's WAL range, and where the server archives its
WAL (``archive_command``), which point-in-time restores replay from.

**Verify** is three checks, because each misses what the others see:

1. ``pg_verifybackup``: every file against the manifest's checksums, and the WAL parsed through the
   backup's range.  Its documentation says it is no substitute for a test restore;
2. a test restore: the backup copied into scratch and started as a server on a Unix socket in
   that directory (no TCP port), recovering to a consistent state, then ``pg_amcheck`` over every
   database (heap and B-tree structure);
3. per-table row counts and content hashes (``md5`` over the rows' text in order) of the backed-up
   database, and its sentinel.  A base backup is taken from a running server, so the only
   consistent place to fingerprint it is a restore of it: the first verification records the
   fingerprints in the manifest (``tables_recorded_at``), later ones compare with them, so bit rot
   or tampering after the first verification is caught by the hashes.

The server binaries refuse to run as root: when Buttress runs as root, every PostgreSQL program is
run through ``runuser -u <os_user>`` (default ``postgres``) and the directories it writes are
handed to that user.

**Restore** copies the base backup into a new data directory and, for a point in time, writes
``recovery.signal`` with ``restore_command`` reading the WAL archive and ``recovery_target_time``;
the server then replays to the target and promotes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.errors import ConfigError, MissingExtra
from buttress.ports import free_port

from . import events as ev
from .catalog import check_target
from .manifest import (
    MANIFEST,
    SENTINEL_TABLE,
    BackupInfo,
    Manifest,
    Sentinel,
    TableFingerprint,
    VerifyOutcome,
    backup_id,
    check_database_name,
    freshness_problems,
    load_backup,
    record_verify,
    write_json_atomically,
)

__all__ = [
    "PgTools",
    "ScratchServer",
    "is_postgres_dsn",
    "pg_backup",
    "pg_restore",
    "pg_verify",
    "psycopg_module",
]

BASE = "base"


def is_postgres_dsn(text: str) -> bool:
    """Whether a DATABASE argument names a PostgreSQL server rather than a SQLite file."""
    return text.startswith(("postgresql://", "postgres://")) or "host=" in text


def psycopg_module() -> Any:
    """psycopg, or :class:`~buttress.errors.MissingExtra` naming the ``db`` extra."""
    try:
        import psycopg
    except ImportError:
        raise MissingExtra("PostgreSQL backups", "db", "psycopg") from None
    return psycopg


@dataclass(frozen=True, slots=True)
class PgTools:
    """Where PostgreSQL's programs are, and which OS user runs them when we are root."""

    bin_dir: Path
    os_user: str = "postgres"

    @classmethod
    def find(cls, bin_dir: str | Path | None = None, os_user: str = "postgres") -> PgTools:
        """``bin_dir``, else the newest ``/usr/lib/postgresql/<version>/bin`` (Debian keeps the
        server programs off ``PATH``), else the directory of ``pg_basebackup`` on ``PATH``."""
        if bin_dir is not None:
            d = Path(bin_dir)
            if not (d / "pg_basebackup").is_file():
                raise ConfigError("--pg-bin", str(bin_dir), "holds no pg_basebackup")
            return cls(d, os_user)
        versions = sorted(
            (d for d in Path("/usr/lib/postgresql").glob("*/bin") if (d / "postgres").is_file()),
            key=lambda d: [int(p) if p.isdigit() else -1 for p in d.parent.name.split(".")],
        )
        if not versions:
            # Debian's /usr/bin holds wrappers for the client programs only: accept PATH when
            # the server and pg_ctl sit next to pg_basebackup.
            found = shutil.which("pg_basebackup")
            here = Path(found).parent if found else None
            if here is not None and (here / "postgres").is_file() and (here / "pg_ctl").is_file():
                return cls(here, os_user)
            raise ConfigError("--pg-bin", None, "no PostgreSQL programs found; install postgresql")
        return cls(versions[-1], os_user)

    def cmd(self, program: str, *args: str) -> list[str]:
        full = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", self.os_user, "--", *full] if os.geteuid() == 0 else full

    def run(self, program: str, *args: str, timeout: float = 600.0) -> str:
        """Run a program; :class:`~buttress.errors.ButtressError` with its last words on failure."""
        done = subprocess.run(
            self.cmd(program, *args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            words = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(program, " ".join(args[:2]), words[-1] if words else "failed")
        return done.stdout

    def check_reachable(self, parameter: str, path: Path) -> None:
        """Refuse ``path`` when the server's user cannot write there (as root, a directory under
        a parent only root may enter, such as ``/root`` or pytest's ``/tmp/pytest-of-root``)."""
        if os.geteuid() != 0:
            return
        done = subprocess.run(
            ["runuser", "-u", self.os_user, "--", "test", "-w", str(path)], check=False
        )
        if done.returncode != 0:
            raise ConfigError(
                parameter,
                str(path),
                f"the {self.os_user} user that runs PostgreSQL's programs cannot write there "
                "(every parent directory must be enterable)",
            )

    def hand_over(self, path: Path) -> None:
        """Give ``path`` (recursively) to the user that runs the server."""
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", self.os_user, str(path)], check=True)


def _sentinel(conn: Any, table: str) -> Sentinel | None:
    psycopg = psycopg_module()
    try:
        row = conn.execute(
            f'SELECT seq, extract(epoch FROM at)::float8 FROM "{table}" ORDER BY seq DESC LIMIT 1'
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    return None if row is None else Sentinel(seq=int(row[0]), at=float(row[1]))


def _wal_range(base: Path) -> dict[str, str]:
    manifest = json.loads((base / "backup_manifest").read_text(encoding="utf-8"))
    ranges = manifest.get("WAL-Ranges", [{}])
    return {"start_lsn": ranges[0].get("Start-LSN", ""), "end_lsn": ranges[-1].get("End-LSN", "")}


def pg_backup(
    dsn: str,
    target: str | Path,
    *,
    tools: PgTools,
    name: str | None = None,
    wal_archive: str | Path | None = None,
    sentinel_table: str = SENTINEL_TABLE,
) -> BackupInfo:
    """Take a base backup of the server at ``dsn`` into a new directory under ``target``."""
    psycopg = psycopg_module()
    tdir = check_target(target)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
            dbname = str(conn.info.dbname)
            sentinel = _sentinel(conn, sentinel_table)
    except psycopg.Error as e:
        raise ConfigError("database", dsn, f"cannot connect ({str(e).strip()})") from None
    db_name = check_database_name(name if name is not None else dbname)
    started = time.time()
    bid = backup_id(db_name, started)
    partial = Path(tempfile.mkdtemp(prefix=f".partial-{bid}-", dir=tdir))
    try:
        tools.hand_over(partial)
        tools.check_reachable("target", partial)
        base = partial / BASE
        tools.run(
            "pg_basebackup", "-d", dsn, "-D", str(base), "-X", "stream", "-c", "fast",
            "--manifest-checksums=SHA256", "-l", bid,
        )  # fmt: skip
        size = sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
        finished = time.time()
        manifest = Manifest(
            id=bid,
            database=db_name,
            engine="postgresql",
            source=dsn,
            started_at=started,
            finished_at=finished,
            size=size,
            tables={},
            sentinel=sentinel,
            extra={
                "dbname": dbname,
                "sentinel_table": sentinel_table,
                "wal_archive": None if wal_archive is None else str(Path(wal_archive).resolve()),
                **_wal_range(base),
            },
        )
        write_json_atomically(partial / MANIFEST, manifest.to_json())
        final = tdir / bid
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    em = ev.emitter()
    if em.active:
        em.emit(ev.BackupCompleted("dr", db_name, time.monotonic(), bid, finished - started, size))
    return BackupInfo(path=final, manifest=manifest, verified=None)


class ScratchServer:
    """A server started on a copy of a data directory, listening only on a Unix socket inside
    its scratch directory; always stopped by :meth:`stop`."""

    def __init__(self, tools: PgTools, data: Path, socket_dir: Path) -> None:
        self.tools = tools
        self.data = data
        self.socket_dir = socket_dir
        self.port = free_port()  # a port number for the socket's name; nothing listens on TCP

    def start(self, timeout: float = 120.0, settings: str | None = None) -> None:
        """Start it; ``settings`` (``-c name=value ...``) replace the defaults of a test restore
        (no archiving, no synchronous standby, no fsync)."""
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nlocal replication all trust\n", encoding="utf-8"
        )
        if settings is None:
            settings = "-c archive_mode=off -c fsync=off -c synchronous_standby_names=''"
        opts = f"-p {self.port} -k {self.socket_dir} -c listen_addresses='' {settings}"
        self.tools.hand_over(self.data)
        self.tools.run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-t", str(int(timeout)),
            "-l", str(self.socket_dir / "server.log"), "start", timeout=timeout + 10,
        )  # fmt: skip

    def dsn(self, dbname: str, user: str) -> str:
        return f"host={self.socket_dir} port={self.port} dbname={dbname} user={user}"

    def stop(self) -> None:
        subprocess.run(
            self.tools.cmd("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
            capture_output=True,
            check=False,
        )


def _fingerprints(conn: Any) -> dict[str, TableFingerprint]:
    tables = conn.execute(
        "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
    ).fetchall()
    out = {}
    for (qualified,) in tables:
        rows, digest = conn.execute(
            f"SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
            f"FROM {qualified} AS t"
        ).fetchone()
        out[str(qualified)] = TableFingerprint(rows=int(rows), sha256=f"md5:{digest}")
    return out


def _user_of(dsn: str) -> str:
    psycopg = psycopg_module()
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    return str(params.get("user") or os.environ.get("PGUSER") or "postgres")


def _restored_checks(
    tools: PgTools, info: BackupInfo, scratch: Path, problems: list[str], checks: dict[str, str]
) -> tuple[dict[str, TableFingerprint], Sentinel | None]:
    m = info.manifest
    data = scratch / "data"
    shutil.copytree(info.path / BASE, data)
    (data / "postmaster.pid").unlink(missing_ok=True)
    tools.hand_over(scratch)
    server = ScratchServer(tools, data, scratch)
    try:
        server.start()
        checks["restore"] = "started and recovered"
        user = _user_of(m.source)
        try:
            tools.run(
                "pg_amcheck",
                "--all",
                "--install-missing",
                "-h",
                str(scratch),
                "-p",
                str(server.port),
                "-U",
                user,
            )
            checks["pg_amcheck"] = "ok"
        except ConfigError as e:
            checks["pg_amcheck"] = e.reason
            problems.append(f"pg_amcheck: {e.reason}")
        psycopg = psycopg_module()
        with psycopg.connect(server.dsn(str(m.extra["dbname"]), user), autocommit=True) as conn:
            found = _fingerprints(conn)
            sentinel = _sentinel(conn, str(m.extra.get("sentinel_table", SENTINEL_TABLE)))
        return found, sentinel
    finally:
        server.stop()


def pg_verify(
    backup_dir: str | Path,
    *,
    tools: PgTools,
    max_age: float | None = None,
    scratch: str | Path | None = None,
    now: float | None = None,
) -> VerifyOutcome:
    """Verify a PostgreSQL backup (see the module docstring); the outcome goes to
    ``verify.json`` and, at the first verification, the fingerprints into the manifest."""
    info = load_backup(Path(backup_dir))
    m = info.manifest
    started = time.monotonic()
    problems: list[str] = []
    checks: dict[str, str] = {}
    try:
        tools.run("pg_verifybackup", "-q", str(info.path / BASE))
        checks["pg_verifybackup"] = "ok"
    except ConfigError as e:
        checks["pg_verifybackup"] = e.reason
        problems.append(f"pg_verifybackup: {e.reason}")
    with tempfile.TemporaryDirectory(prefix="buttress-pgverify-", dir=scratch) as tmp:
        try:
            found, sentinel = _restored_checks(tools, info, Path(tmp), problems, checks)
        except ConfigError as e:
            problems.append(f"restore: {e.reason}")
            found, sentinel = {}, None
    if found and not m.tables:
        recorded = Manifest(
            **{
                **_fields(m),
                "tables": found,
                "extra": {**m.extra, "tables_recorded_at": time.time()},
            }
        )
        write_json_atomically(info.path / MANIFEST, recorded.to_json())
        checks["tables"] = f"{len(found)} tables recorded (first verification)"
    elif found:
        problems += _compare_tables(m.tables, found)
        checks["tables"] = f"{len(found)} tables, {sum(t.rows for t in found.values())} rows"
    problems += _sentinel_problems(m, sentinel, checks, max_age, now)
    return record_verify(info, started, problems, checks)


def _fields(m: Manifest) -> dict[str, Any]:
    return {f: getattr(m, f) for f in Manifest.__dataclass_fields__}


def _compare_tables(
    want: dict[str, TableFingerprint], got: dict[str, TableFingerprint]
) -> list[str]:
    out = []
    for table in sorted(set(want) | set(got)):
        w, g = want.get(table), got.get(table)
        if w is None or g is None:
            out.append(f"table {table}: {'missing' if g is None else 'not in the manifest'}")
        elif w.rows != g.rows:
            out.append(f"table {table}: {g.rows} rows, the manifest says {w.rows}")
        elif w.sha256 != g.sha256:
            out.append(f"table {table}: content hash differs from the manifest")
    return out


def _sentinel_problems(
    m: Manifest,
    sentinel: Sentinel | None,
    checks: dict[str, str],
    max_age: float | None,
    now: float | None,
) -> list[str]:
    if m.sentinel is not None and (sentinel is None or sentinel.seq < m.sentinel.seq):
        return [f"sentinel: restored {sentinel}, older than {m.sentinel} read before the backup"]
    return freshness_problems(sentinel, checks, max_age, now)


def pg_restore(
    backup_dir: str | Path,
    data_dir: str | Path,
    *,
    tools: PgTools,
    target_time: float | None = None,
    replay_archive: bool = False,
    force: bool = False,
) -> Manifest:
    """Copy the base backup into ``data_dir`` (refused when it exists, unless ``force``) and
    configure recovery from the WAL archive, up to ``target_time`` (Unix seconds) when given, or
    to its end with ``replay_archive``, followed by promotion.  Without either the server starts
    as of the end of the base backup.  Start the server on ``data_dir`` to complete the
    restore."""
    info = load_backup(Path(backup_dir))
    dest = Path(data_dir)
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ConfigError(
            "data_dir",
            str(dest),
            "a data directory already exists there; pass --force to replace it",
        )
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(info.path / BASE, dest)
    (dest / "postmaster.pid").unlink(missing_ok=True)
    if target_time is not None or replay_archive:
        archive = info.manifest.extra.get("wal_archive")
        if not archive:
            raise ConfigError("--at", target_time, "this backup records no WAL archive to replay")
        settings = f"\nrestore_command = 'cp {archive}/%f %p'\nrecovery_target_action = 'promote'\n"
        if target_time is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(target_time))
            settings += f"recovery_target_time = '{stamp}.{int(target_time % 1 * 1e6):06d}+00'\n"
        with open(dest / "postgresql.auto.conf", "a", encoding="utf-8") as f:
            f.write(settings)
        (dest / "recovery.signal").touch()
    os.chmod(dest, 0o700)
    tools.hand_over(dest)
    return info.manifest
