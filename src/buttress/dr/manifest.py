"""What a backup promises: its manifest, and the fingerprints that hold a restore to it.

A backup is a directory in the backup target::

    <target>/<database>-<YYYYmmddTHHMMSS.ffffffZ>/
        manifest.json      what the backup holds (written last: a directory without it is partial)
        verify.json        the last verification's outcome (absent: never verified)
        db.sqlite          the data (SQLite), or base/ and wal/ (PostgreSQL)

The manifest records, per table, the row count and a SHA-256 over the rows in key order
(:func:`table_fingerprints`), and the newest sentinel row the backup holds.  ``PRAGMA
integrity_check`` proves the b-trees are well formed; it does not read the bytes of a text or blob
value, so a flipped bit in row data passes it.  The content hashes are what catch that, and they
are computed from the backup itself (not from the live database, which moved on while it was
copied).

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from buttress.errors import ButtressError, ConfigError

from . import events as ev

__all__ = [
    "MANIFEST",
    "SENTINEL_TABLE",
    "VERIFY",
    "BackupInfo",
    "CorruptManifest",
    "Manifest",
    "Sentinel",
    "TableFingerprint",
    "VerifyOutcome",
    "freshness_problems",
    "latest_sentinel",
    "load_backup",
    "record_verify",
    "table_fingerprints",
    "write_json_atomically",
]

MANIFEST = "manifest.json"
VERIFY = "verify.json"
SENTINEL_TABLE = "buttress_sentinel"
"""Default sentinel table: ``(seq INTEGER PRIMARY KEY, at REAL)``, one row per heartbeat write."""

FORMAT = 1


class CorruptManifest(ButtressError):
    """A backup directory whose manifest cannot be read: the backup is unusable."""


@dataclass(frozen=True, slots=True)
class TableFingerprint:
    """Row count and content hash of one table."""

    rows: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Sentinel:
    """The newest sentinel row: its sequence number and its commit time (Unix seconds)."""

    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one backup holds (``manifest.json``)."""

    id: str
    database: str
    engine: str
    source: str
    started_at: float
    finished_at: float
    size: int
    tables: dict[str, TableFingerprint]
    sentinel: Sentinel | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = FORMAT
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        sentinel = d.get("sentinel")
        return cls(
            id=str(d["id"]),
            database=str(d["database"]),
            engine=str(d["engine"]),
            source=str(d["source"]),
            started_at=float(d["started_at"]),
            finished_at=float(d["finished_at"]),
            size=int(d["size"]),
            tables={k: TableFingerprint(**v) for k, v in d["tables"].items()},
            sentinel=None if sentinel is None else Sentinel(**sentinel),
            extra=dict(d.get("extra", {})),
        )


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """The result of restoring a backup into scratch and checking it (``verify.json``).

    ``problems`` is empty exactly when ``ok``; each names what failed (``integrity``,
    ``table orders: content hash differs``, ``sentinel``, ``freshness``).
    """

    ok: bool
    at: float
    duration: float
    problems: tuple[str, ...]
    checks: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at,
            "duration": self.duration,
            "problems": list(self.problems),
            "checks": self.checks,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VerifyOutcome:
        return cls(
            ok=bool(d["ok"]),
            at=float(d["at"]),
            duration=float(d["duration"]),
            problems=tuple(d["problems"]),
            checks=dict(d["checks"]),
        )


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """A backup directory, its manifest and its last verification (``None``: unverified)."""

    path: Path
    manifest: Manifest
    verified: VerifyOutcome | None

    @property
    def status(self) -> str:
        """``verified``, ``failed`` or ``unverified``."""
        if self.verified is None:
            return "unverified"
        return "verified" if self.verified.ok else "failed"


def freshness_problems(
    sentinel: Sentinel | None, checks: dict[str, str], max_age: float | None, now: float | None
) -> list[str]:
    """Judge the age of the newest sentinel a restore holds (at ``now``, default the current
    time) against ``max_age`` (``None``: report the age in ``checks`` without judging it)."""
    if sentinel is None:
        checks["freshness"] = "no sentinel rows"
        return [] if max_age is None else ["freshness: no sentinel to judge the age by"]
    age = (time.time() if now is None else now) - sentinel.at
    checks["freshness"] = f"sentinel {sentinel.seq}, {age:.1f} s old"
    if max_age is not None and age > max_age:
        return [f"freshness: newest sentinel is {age:.1f} s old, more than {max_age:g} s"]
    return []


def record_verify(
    info: BackupInfo, started: float, problems: list[str], checks: dict[str, str]
) -> VerifyOutcome:
    """The outcome of a verification that began at ``started`` (monotonic clock), written to the
    backup's ``verify.json`` and emitted as :class:`~.events.BackupVerified` or
    :class:`~.events.VerifyFailed`."""
    outcome = VerifyOutcome(
        ok=not problems,
        at=time.time(),
        duration=time.monotonic() - started,
        problems=tuple(problems),
        checks=checks,
    )
    write_json_atomically(info.path / VERIFY, outcome.to_json())
    em = ev.emitter()
    if em.active:
        m = info.manifest
        em.emit(
            ev.BackupVerified("dr", m.database, time.monotonic(), m.id, outcome.duration)
            if outcome.ok
            else ev.VerifyFailed(
                "dr", m.database, time.monotonic(), m.id, outcome.duration, outcome.problems
            )
        )
    return outcome


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync'd and renamed: a reader sees the
    old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_backup(path: Path) -> BackupInfo:
    """Read a backup directory; :class:`CorruptManifest` when its manifest is missing or bad."""
    try:
        manifest = Manifest.from_json(json.loads((path / MANIFEST).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise CorruptManifest(f"{path}: no {MANIFEST} (an interrupted backup)") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptManifest(f"{path}/{MANIFEST}: unreadable ({e})") from None
    verified = None
    vpath = path / VERIFY
    if vpath.exists():
        try:
            verified = VerifyOutcome.from_json(json.loads(vpath.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError):
            verified = None  # an unreadable verdict is no verdict: report unverified
    return BackupInfo(path=path, manifest=manifest, verified=verified)


# --- fingerprints ---------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _user_tables(conn: sqlite3.Connection) -> list[tuple[str, bool]]:
    """(name, without_rowid) of every user table, sorted by name."""
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name"
    ).fetchall()
    return [(str(n), "WITHOUT ROWID" in str(sql or "").upper()) for n, sql in rows]


def _order_by(conn: sqlite3.Connection, table: str, without_rowid: bool) -> str:
    if not without_rowid:
        return "rowid"
    pk = [
        (int(r[5]), str(r[1]))
        for r in conn.execute(f"PRAGMA table_info({_quote(table)})")
        if int(r[5]) > 0
    ]
    return ", ".join(_quote(name) for _, name in sorted(pk))


def table_fingerprints(conn: sqlite3.Connection) -> dict[str, TableFingerprint]:
    """Row count and SHA-256 of every user table, rows in key order (rowid, or the primary key of
    a ``WITHOUT ROWID`` table), the rowid itself included so a moved row counts as a change."""
    out: dict[str, TableFingerprint] = {}
    for table, without_rowid in _user_tables(conn):
        h = hashlib.sha256()
        order = _order_by(conn, table, without_rowid)
        cols = "*" if without_rowid else "rowid, *"
        n = 0
        cur = conn.execute(f"SELECT {cols} FROM {_quote(table)} ORDER BY {order}")
        while rows := cur.fetchmany(1024):
            n += len(rows)
            # repr of a row of SQLite values (None, int, float, str, bytes) is unambiguous: strings
            # and bytes are quoted and escaped, 1 and 1.0 and '1' differ, floats round-trip.  One
            # repr per batch keeps the hashing in C (about 3x faster than encoding each value).
            h.update(repr(rows).encode("utf-8", "surrogatepass"))
        out[table] = TableFingerprint(rows=n, sha256=h.hexdigest())
    return out


def latest_sentinel(conn: sqlite3.Connection, table: str = SENTINEL_TABLE) -> Sentinel | None:
    """The sentinel row with the highest ``seq``; ``None`` when the table is absent or empty."""
    try:
        row = conn.execute(
            f"SELECT seq, at FROM {_quote(table)} ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else Sentinel(seq=int(row[0]), at=float(row[1]))


def backup_id(database: str, at: float) -> str:
    """``<database>-<UTC time to the microsecond>Z``: sorts by time, readable in ``ls``."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"
    return f"{database}-{stamp}"


def check_database_name(name: str) -> str:
    """A database name usable in a directory name: letters, digits, ``-``, ``_``, ``.``."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError("--name", name, "use letters, digits, '-', '_' and '.' only")
    return name
