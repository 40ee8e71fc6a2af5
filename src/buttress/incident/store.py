"""The incident store: incidents, their logs, deploy markers, action items and rejected payloads,
in one SQLite file with ``synchronous = FULL`` (a notification acknowledged to its sender is on
disk).

Tables (schema version in ``PRAGMA user_version``, see :data:`MIGRATIONS`)::

    incidents      id, group_key, source, title, service, mode, severity, state, started, detected,
                   acknowledged(_by), mitigated(_by), resolved(_by), notifications, last_seen,
                   labels (JSON), seen (JSON: the firing alerts seen), source_resolved
    incident_log   seq, incident, time, kind, actor, detail (JSON)   -- detected, alerts, ...
    deploys        seq, time, service, version, actor, detail (JSON) -- markers posted by CI
    action_items   id, incident, title, owner, risk, status, created, closed
    rejected       seq, time, endpoint, status, reason, body          -- payloads refused (journal)

Deduplication, per alert group (``group_key``): a firing notification joins the group's open
incident; with none open, it opens a new incident unless every firing alert in it (fingerprint and
start) was already seen by the group's last incident and that incident was resolved by a person
while its alerts still fired (Alertmanager's repeats must not reopen what someone closed).  A
resolved notification resolves the open incident (actor ``alertmanager`` or ``webhook``).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ButtressError, ConfigError
from buttress.sqlite import Database, connect, migrate, transaction, where

from .model import Incident, LogEntry, Notification, Record, TransitionRefused, check_transition

__all__ = ["DEFAULT_STORE", "MIGRATIONS", "ActionItem", "Deploy", "IncidentStore", "Outcome"]

DEFAULT_STORE = ".buttress/incidents.db"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE incidents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        group_key TEXT NOT NULL, source TEXT NOT NULL, title TEXT NOT NULL,
        service TEXT NOT NULL, mode TEXT NOT NULL, severity TEXT NOT NULL,
        state TEXT NOT NULL, started REAL NOT NULL, detected REAL NOT NULL,
        acknowledged REAL, acknowledged_by TEXT, mitigated REAL, mitigated_by TEXT,
        resolved REAL, resolved_by TEXT,
        notifications INTEGER NOT NULL DEFAULT 1, last_seen REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}', seen TEXT NOT NULL DEFAULT '[]',
        source_resolved INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX incidents_group ON incidents (group_key, id);
    CREATE INDEX incidents_detected ON incidents (detected);
    CREATE TABLE incident_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, incident INTEGER NOT NULL, time REAL NOT NULL,
        kind TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX incident_log_incident ON incident_log (incident, seq);
    CREATE TABLE deploys (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, service TEXT NOT NULL,
        version TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX deploys_time ON deploys (time);
    CREATE TABLE action_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT, incident INTEGER NOT NULL, title TEXT NOT NULL,
        owner TEXT NOT NULL, risk TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',
        created REAL NOT NULL, closed REAL
    );
    CREATE TABLE rejected (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, endpoint TEXT NOT NULL,
        status INTEGER NOT NULL, reason TEXT NOT NULL, body TEXT NOT NULL
    );
    """
]
"""``MIGRATIONS[i]`` takes the file from schema version ``i`` to ``i + 1``."""

_FIELDS = tuple(f.name for f in dataclasses.fields(Incident))
_COLUMNS = ", ".join(_FIELDS)  # the incidents table has a column per field of Incident
_DECODE: dict[str, Callable[[Any], Any]] = {
    "id": int,
    "started": float,
    "detected": float,
    "notifications": int,
    "labels": json.loads,
}
"""How a column is read back where SQLite's value is not the field's as it is."""
_REJECTED_BODY_MAX = 4096  # bytes of a refused body kept in the journal


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one notification did: ``opened``, ``updated``, ``repeat``, ``resolved`` or
    ``ignored`` (a resolution for a group with no open incident), and to which incident."""

    action: str
    incident: int | None


@dataclass(frozen=True, slots=True)
class Deploy(Record):
    """A deploy marker posted by CI."""

    seq: int
    time: float
    service: str
    version: str
    actor: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActionItem(Record):
    """A postmortem action item, linked to a risk of the assessment's register (its event)."""

    id: int
    incident: int
    title: str
    owner: str
    risk: str
    status: str
    created: float
    closed: float | None


def _incident(row: Sequence[Any]) -> Incident:
    values = zip(_FIELDS, row, strict=True)
    return Incident(**{name: _DECODE[name](v) if name in _DECODE else v for name, v in values})


def _non_empty(**values: object) -> None:
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(name, value, "must be a non-empty string")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


class IncidentStore(Database):
    """The incident store at ``path`` (created if missing, its directory too).

    :param clock: the wall clock for times not given explicitly (default the system clock).
    :param busy_timeout: seconds to wait for another process's write.

    Every write is one ``BEGIN IMMEDIATE`` transaction, committed with ``synchronous = FULL``.
    Thread-safe (one connection, one lock).
    """

    def __init__(
        self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK, busy_timeout: float = 10.0
    ) -> None:
        if busy_timeout < 0:
            raise ConfigError("busy_timeout", busy_timeout, "must be >= 0")
        self.path = str(path)
        self.clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._open(connect(self.path, busy_timeout=busy_timeout), self._prepare)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA synchronous = FULL")  # an acknowledged notification is on disk
        migrate(conn, MIGRATIONS, self.path)

    # -- notifications -----------------------------------------------------------------------------

    def ingest(
        self, notifications: Iterable[Notification], *, received: float | None = None
    ) -> list[Outcome]:
        """Apply ``notifications`` in order, in one transaction (one fsync for the batch)."""
        batch = list(notifications)
        if not batch:
            return []
        now = self.clock.wall() if received is None else received
        out: list[Outcome] = []
        with self._lock, transaction(self._conn) as c:
            for n in batch:
                out.append(self._ingest_one(c, n, now))
        return out

    def _ingest_one(self, c: sqlite3.Connection, n: Notification, now: float) -> Outcome:
        row = c.execute(
            "SELECT id, state, seen, source_resolved FROM incidents WHERE group_key = ? "
            "ORDER BY id DESC LIMIT 1",
            (n.group_key,),
        ).fetchone()
        firing = n.firing_ids
        if row is not None and row[1] != "resolved":
            return self._update_open(c, n, now, int(row[0]), seen_json=row[2], firing=firing)
        if not n.firing or not firing:
            return Outcome("ignored", int(row[0]) if row else None)
        if row is not None and not row[3] and firing <= {tuple(x) for x in json.loads(row[2])}:
            c.execute(
                "UPDATE incidents SET notifications = notifications + 1, last_seen = ? "
                "WHERE id = ?",
                (now, row[0]),
            )
            return Outcome("repeat", int(row[0]))
        started = n.started if n.started is not None and n.started <= now else now
        cur = c.execute(
            "INSERT INTO incidents (group_key, source, title, service, mode, severity, state, "
            "started, detected, last_seen, labels, seen) "
            "VALUES (?, ?, ?, ?, ?, ?, 'detected', ?, ?, ?, ?, ?)",
            (
                n.group_key, n.source, n.title, n.service, n.mode, n.severity,
                started, now, now, _dumps(dict(n.labels)), _dumps(sorted(firing, key=str)),
            ),
        )  # fmt: skip
        incident = int(cur.lastrowid or 0)
        self._log(
            c,
            incident,
            now,
            "detected",
            actor=n.source,
            detail={"alerts": len(firing), "title": n.title}
            | ({"truncated": n.truncated} if n.truncated else {}),
        )
        return Outcome("opened", incident)

    def _update_open(
        self,
        c: sqlite3.Connection,
        n: Notification,
        now: float,
        incident: int,
        *,
        seen_json: str,
        firing: frozenset[tuple[str, float | None]],
    ) -> Outcome:
        if not n.firing:
            c.execute(
                "UPDATE incidents SET state = 'resolved', resolved = ?, resolved_by = ?, "
                "source_resolved = 1, notifications = notifications + 1, last_seen = ? "
                "WHERE id = ?",
                (now, n.source, now, incident),
            )
            self._log(
                c, incident, now, "resolved", actor=n.source, detail={"alerts": len(n.alerts)}
            )
            return Outcome("resolved", incident)
        seen = {tuple(x) for x in json.loads(seen_json)}
        new = firing - seen
        if not new:
            c.execute(
                "UPDATE incidents SET notifications = notifications + 1, last_seen = ? "
                "WHERE id = ?",
                (now, incident),
            )
            return Outcome("repeat", incident)
        merged = sorted(seen | firing, key=str)
        c.execute(
            "UPDATE incidents SET notifications = notifications + 1, last_seen = ?, seen = ? "
            "WHERE id = ?",
            (now, _dumps(merged), incident),
        )
        self._log(
            c,
            incident,
            now,
            "alerts",
            actor=n.source,
            detail={"new": len(new), "firing": len(firing)},
        )
        return Outcome("updated", incident)

    @staticmethod
    def _log(
        c: sqlite3.Connection, incident: int, at: float, kind: str, *, actor: str, detail: Any
    ) -> None:
        c.execute(
            "INSERT INTO incident_log (incident, time, kind, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (incident, at, kind, actor, _dumps(detail)),
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def transition(
        self, incident: int, target: str, *, actor: str, at: float | None = None, note: str = ""
    ) -> Incident:
        """Move ``incident`` to ``target`` (``acknowledged``, ``mitigated``, ``resolved``), saying
        who and when; :class:`~buttress.incident.model.TransitionRefused` when out of order."""
        if not actor:
            raise TransitionRefused("say who: the actor must not be empty")
        when = self.clock.wall() if at is None else at
        with self._lock, transaction(self._conn) as c:
            row = c.execute(
                "SELECT state, detected FROM incidents WHERE id = ?", (incident,)
            ).fetchone()
            state, detected = row or (None, None)
            check_transition(incident, state, target, when=when, detected=detected)
            column = {"acknowledged": "acknowledged", "mitigated": "mitigated"}.get(
                target, "resolved"
            )
            c.execute(
                f"UPDATE incidents SET state = ?, {column} = ?, {column}_by = ? WHERE id = ?",
                (target, when, actor, incident),
            )
            self._log(c, incident, when, target, actor=actor, detail={"note": note} if note else {})
            found = c.execute(
                f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident,)
            ).fetchone()
        return _incident(found)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, incident: int) -> Incident:
        """The incident ``incident``; :class:`~buttress.errors.ButtressError` when there is none."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident,)
            ).fetchone()
        if row is None:
            raise ButtressError(f"no incident {incident} in {self.path}")
        return _incident(row)

    def incidents(
        self,
        *,
        state: str | None = None,
        open_only: bool = False,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[Incident]:
        """Incidents detected in ``[since, until)``, newest first, at most ``limit``."""
        q, args = where(
            f"SELECT {_COLUMNS} FROM incidents",
            ("state = ?", state),
            ("state != 'resolved'", open_only),
            ("detected >= ?", since),
            ("detected < ?", until),
        )
        rows = self._rows(f"{q} ORDER BY id DESC LIMIT ?", [*args, max(0, int(limit))])
        return [_incident(r) for r in rows]

    def log(self, incident: int) -> list[LogEntry]:
        """``incident``'s own log, oldest first."""
        rows = self._rows(
            "SELECT seq, incident, time, kind, actor, detail FROM incident_log "
            "WHERE incident = ? ORDER BY seq",
            (incident,),
        )
        return [LogEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # -- the journal of refused payloads -----------------------------------------------------------

    def reject(self, endpoint: str, status: int, reason: str, body: bytes) -> None:
        """Journal a refused payload (its first 4 KiB, decoded leniently)."""
        text = body[:_REJECTED_BODY_MAX].decode("utf-8", errors="replace")
        with self._lock:
            self._write(
                lambda c: c.execute(
                    "INSERT INTO rejected (time, endpoint, status, reason, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (self.clock.wall(), endpoint, status, reason, text),
                )
            )

    def rejected(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest refused payloads, newest first."""
        rows = self._rows(
            "SELECT seq, time, endpoint, status, reason, body FROM rejected "
            "ORDER BY seq DESC LIMIT ?",
            (limit,),
        )
        keys = ("seq", "time", "endpoint", "status", "reason", "body")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- deploy markers and action items -----------------------------------------------------------

    def add_deploy(
        self,
        service: str,
        version: str,
        *,
        actor: str = "ci",
        at: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Deploy:
        """Record a deploy marker (``service`` at ``version``, by ``actor``)."""
        _non_empty(service=service, version=version, actor=actor)
        when = self.clock.wall() if at is None else float(at)
        extra = dict(detail or {})
        seq = self._insert(
            "deploys",
            time=when,
            service=service,
            version=version,
            actor=actor,
            detail=_dumps(extra),
        )
        return Deploy(seq, when, service, version, actor, extra)

    def deploys(self, *, since: float | None = None, until: float | None = None) -> list[Deploy]:
        """Deploy markers in ``[since, until)``, oldest first."""
        q, args = where(
            "SELECT seq, time, service, version, actor, detail FROM deploys",
            ("time >= ?", since),
            ("time < ?", until),
        )
        rows = self._rows(f"{q} ORDER BY time, seq", args)
        return [Deploy(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def add_action_item(
        self, incident: int, title: str, *, owner: str, risk: str, at: float | None = None
    ) -> ActionItem:
        """An action item for ``incident``, linked to ``risk`` (an event of the risk register)."""
        self.get(incident)
        _non_empty(title=title, owner=owner, risk=risk)
        when = self.clock.wall() if at is None else at
        new_id = self._insert(
            "action_items", incident=incident, title=title, owner=owner, risk=risk, created=when
        )
        return ActionItem(new_id, incident, title, owner, risk, "open", when, None)

    def _insert(self, table: str, **row: Any) -> int:
        """Insert ``row`` (column=value) into ``table`` in one write transaction; its rowid."""
        sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        with self._lock, transaction(self._conn) as c:
            cur = c.execute(sql, tuple(row.values()))
            return int(cur.lastrowid or 0)

    def close_action_item(self, item: int, *, at: float | None = None) -> None:
        """Mark action item ``item`` done."""
        when = self.clock.wall() if at is None else at
        with self._lock, transaction(self._conn) as c:
            cur = c.execute(
                "UPDATE action_items SET status = 'done', closed = ? WHERE id = ? "
                "AND status = 'open'",
                (when, item),
            )
            if cur.rowcount == 0:
                raise ButtressError(f"no open action item {item}")

    def action_items(
        self, *, incident: int | None = None, open_only: bool = False
    ) -> list[ActionItem]:
        """Action items (of ``incident``, or all), oldest first."""
        q, args = where(
            "SELECT id, incident, title, owner, risk, status, created, closed FROM action_items",
            ("incident = ?", incident),
            ("status = 'open'", open_only),
        )
        return [ActionItem(*r) for r in self._rows(f"{q} ORDER BY id", args)]

    def __repr__(self) -> str:
        return f"IncidentStore({self.path!r})"
