"""The live-state feed: two sidecar tables in the SLI store's SQLite file.

A process that wants to be seen on the dashboard *publishes* the states of its policies (breaker
state, bulkhead in flight, limiter limit, health checks, endpoints) into the same SQLite file the
SLI recorder writes (:class:`buttress.slo.SLIStore`), and the dashboard reads them from there. Any
number of processes can publish into one file (the database runs in WAL mode, readers never block
writers, and every write is one short ``BEGIN IMMEDIATE`` transaction); each names itself with a
``source`` (default ``host:pid``).

Tables::

    buttress_state   (source, policy_type, scope, name) -> state, level, fields, updated, seq
                     the latest state of each component, one row each (upserted)
    buttress_events  seq (autoincrement), time, source, policy_type, scope, name, kind, state,
                     level, fields
                     an append-only log of state changes; trimmed to the newest ``retain`` rows

``policy_type`` uses the event names' vocabulary (``circuit_breaker``, ``bulkhead``,
``rate_limiter``, ``adaptive_limit``, ``load_shedder``) plus ``health`` and ``endpoint``; ``scope``
is the pipeline (or service, or pool) and ``name`` the policy instance (or check, or endpoint).
``state`` is a short category (``closed``, ``open``, ``saturated``, ``pass``...) and ``level`` one
of ``ok``, ``warn``, ``bad``, so a reader can colour a state it does not know. ``fields`` is a JSON
object of the figures behind it (rates, in flight, limit, counts of rejections).

A row in ``buttress_events`` is written only when a component's ``state`` or ``level`` changes (or
for a discrete event worth showing, such as a breaker transition), so a busy service does not flood
the log; the figures in ``buttress_state`` are refreshed as often as they change.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from buttress.errors import ButtressError, ConfigError
from buttress.records import fields_of
from buttress.slo.schema import MIGRATIONS
from buttress.sqlite import Database, NotADatabase, check_version, connect, migrate, where

__all__ = [
    "DEFAULT_RETAIN",
    "LEVELS",
    "FeedReader",
    "FeedWriter",
    "StateEvent",
    "StateRow",
    "Update",
    "default_source",
]

Level = Literal["ok", "warn", "bad"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "bad")
"""Severity of a state, for colouring: ``ok`` (green), ``warn`` (amber), ``bad`` (red)."""

DEFAULT_RETAIN = 20_000
"""Rows kept in ``buttress_events`` (default).  A breaker flapping every second for five hours
still fits; older rows are deleted by the writer, at most once per ``retain // 10`` writes."""

_UPSERT_STATE = (
    "INSERT INTO buttress_state (source, policy_type, scope, name, state, level, fields, updated, "
    "seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, policy_type, scope, name) DO "
    "UPDATE SET state = excluded.state, level = excluded.level, fields = excluded.fields, "
    "updated = excluded.updated, seq = MAX(buttress_state.seq, excluded.seq)"
)
_INSERT_EVENT = (
    "INSERT INTO buttress_events (time, source, policy_type, scope, name, kind, state, level, "
    "fields) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def default_source() -> str:
    """``host:pid`` of this process: the default ``source`` of a publisher."""
    return f"{socket.gethostname()}:{os.getpid()}"


def clean_value(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_value(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def dumps_fields(fields: Mapping[str, Any]) -> str:
    return json.dumps(clean_value(fields), separators=(",", ":"), sort_keys=True, allow_nan=False)


@dataclass(frozen=True, slots=True)
class StateRow:
    """The latest state of one component, as stored in ``buttress_state``."""

    source: str
    policy_type: str
    scope: str
    name: str
    state: str
    level: str
    fields: dict[str, Any]
    updated: float
    seq: int

    def to_json(self) -> dict[str, Any]:
        return fields_of(self)


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One row of ``buttress_events``: a change of state (or a discrete event) at ``time``."""

    seq: int
    time: float
    source: str
    policy_type: str
    scope: str
    name: str
    kind: str
    state: str
    level: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return fields_of(self)


@dataclass(frozen=True, slots=True)
class Update:
    """A write for :meth:`FeedWriter.write`: a new state for one component, and whether to log it.

    ``log`` is the ``kind`` of the ``buttress_events`` row to append (``None``: update the state
    row only).
    """

    policy_type: str
    scope: str
    name: str
    state: str
    level: str
    fields: Mapping[str, Any]
    time: float
    log: str | None = None


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ConfigError("level", level, "must be one of 'ok', 'warn', 'bad'")


class FeedWriter(Database):
    """Writes state rows and change events into the feed tables of the store at ``path``.

    :param path: the SQLite file (created if missing; usually the SLI store).
    :param source: the name of this process in the feed (default :func:`default_source`).
    :param retain: rows kept in ``buttress_events`` (``>= 100``; default :data:`DEFAULT_RETAIN`).
    :param busy_timeout: seconds to wait for another process's write (default 10).

    Thread-safe (one connection, one lock).  Raises :class:`~buttress.errors.ConfigError` for a path
    that is a directory, in a missing directory, or not a SQLite database.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        source: str | None = None,
        retain: int = DEFAULT_RETAIN,
        busy_timeout: float = 10.0,
    ) -> None:
        if isinstance(retain, bool) or not isinstance(retain, int) or retain < 100:
            raise ConfigError("retain", retain, "must be an integer >= 100")
        if not busy_timeout >= 0:
            raise ConfigError("busy_timeout", busy_timeout, "must be >= 0")
        if source is not None and (not isinstance(source, str) or not source):
            raise ConfigError("source", source, "must be a non-empty string")
        self.path = str(path)
        self.source = source or default_source()
        self.retain = retain
        self._writes = 0
        p = Path(self.path)
        if not p.is_dir() and not p.parent.exists():
            raise ConfigError("path", self.path, f"directory {str(p.parent)!r} does not exist")
        conn = connect(self.path, busy_timeout=busy_timeout)
        self._open(conn, lambda c: migrate(c, MIGRATIONS, self.path))

    def write(self, updates: Iterable[Update]) -> int:
        """Apply ``updates`` in one transaction; returns the number of events logged."""
        batch = list(updates)
        if not batch:
            return 0
        for u in batch:
            _check_level(u.level)
        src = self.source
        logged = 0

        def apply(c: sqlite3.Connection) -> None:
            nonlocal logged
            for u in batch:
                fields = dumps_fields(u.fields)
                seq = 0
                if u.log is not None:
                    cur = c.execute(
                        _INSERT_EVENT,
                        (
                            u.time,
                            src,
                            u.policy_type,
                            u.scope,
                            u.name,
                            u.log,
                            u.state,
                            u.level,
                            fields,
                        ),
                    )
                    seq = int(cur.lastrowid or 0)
                    logged += 1
                c.execute(
                    _UPSERT_STATE,
                    (src, u.policy_type, u.scope, u.name, u.state, u.level, fields, u.time, seq),
                )
            self._writes += 1
            if logged and self._writes % max(1, self.retain // 10) == 0:
                c.execute(
                    "DELETE FROM buttress_events WHERE seq <= "
                    "(SELECT MAX(seq) FROM buttress_events) - ?",
                    (self.retain,),
                )

        with self._lock:
            self._write(apply)
        return logged

    def forget(self) -> None:
        """Delete this source's state rows (a process leaving says so; its events stay)."""
        with self._lock:
            self._write(
                lambda c: c.execute("DELETE FROM buttress_state WHERE source = ?", (self.source,))
            )

    def __repr__(self) -> str:
        return f"FeedWriter({self.path!r}, source={self.source!r})"


class FeedReader(Database):
    """Reads the feed (and notices changes) without writing anything.

    :param path: the SQLite store; it must exist (raises :class:`~buttress.errors.ButtressError`).

    A store without feed tables (a service that records SLIs but publishes no states) reads as
    empty.  :meth:`version` is cheap and changes whenever *another* connection commits to the file
    (``PRAGMA data_version``), so a poller can skip work while nothing happens.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = str(path)
        p = Path(self.path)
        if not p.exists():
            raise ButtressError(f"store {self.path}: no such file")
        if p.is_dir():
            raise ButtressError(f"store {self.path}: is a directory, expected a SQLite file")
        try:
            conn = connect(self.path, busy_timeout=busy_timeout, read_only=True)
        except NotADatabase as e:
            raise ButtressError(f"store {self.path}: not a SQLite database ({e.detail})") from None
        self._open(conn, lambda c: check_version(c, MIGRATIONS, self.path))
        self._has_tables = False

    def _tables(self) -> bool:
        if not self._has_tables:
            names = {
                r[0]
                for r in self._conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name IN ('buttress_state', 'buttress_events')"
                )
            }
            self._has_tables = len(names) == 2
        return self._has_tables

    def version(self) -> int:
        """A number that changes when another connection commits to the store."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def last_seq(self) -> int:
        """The newest event's ``seq`` (0 when there is none)."""
        with self._lock:
            if not self._tables():
                return 0
            row = self._conn.execute("SELECT MAX(seq) FROM buttress_events").fetchone()
        return int(row[0] or 0)

    def states(self) -> list[StateRow]:
        """Every component's latest state, ordered by type, scope, name and source."""
        with self._lock:
            if not self._tables():
                return []
            rows = self._conn.execute(
                "SELECT source, policy_type, scope, name, state, level, fields, updated, seq "
                "FROM buttress_state ORDER BY policy_type, scope, name, source"
            ).fetchall()
        return [
            StateRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), float(r[7]), int(r[8]))
            for r in rows
        ]

    def events(
        self, *, after: int = 0, since: float | None = None, limit: int = 1000
    ) -> list[StateEvent]:
        """Events with ``seq > after`` (and ``time >= since``), oldest first, at most ``limit``
        (the newest ones when more match)."""
        q, args = where(
            "SELECT seq, time, source, policy_type, scope, name, kind, state, level, fields "
            "FROM buttress_events",
            ("seq > ?", after),
            ("time >= ?", since),
        )
        with self._lock:
            if not self._tables():
                return []
            rows = self._conn.execute(
                f"{q} ORDER BY seq DESC LIMIT ?", [*args, max(0, int(limit))]
            ).fetchall()
        rows.reverse()
        return [
            StateEvent(
                int(r[0]), float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9])
            )
            for r in rows
        ]
