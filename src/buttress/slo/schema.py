"""The schema of the store file, as ordered migrations (see :mod:`buttress.sqlite`).

One SQLite file holds what a service records: the SLI day blocks (:mod:`buttress.slo.store`) and
the live-state feed's two tables (:mod:`buttress.dashboard.feed`), so the file has one schema and
one version (``PRAGMA user_version``).  ``MIGRATIONS[i]`` takes it from version ``i`` to ``i + 1``;
append a step to change the schema, never edit one that has shipped.

Version 1 is the schema as it stood before versions were kept, so its steps tolerate tables that
already exist (``IF NOT EXISTS``), and a store from before day blocks (one row per minute) is
converted.
"""

from __future__ import annotations

import sqlite3

from buttress.sqlite import Migration

from .blocks import add_rows

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_SLI_TABLES = (
    """CREATE TABLE IF NOT EXISTS sli_minutes (
        sli    TEXT    NOT NULL,
        day    INTEGER NOT NULL,
        good   INTEGER NOT NULL,
        total  INTEGER NOT NULL,
        width  INTEGER NOT NULL,
        counts BLOB    NOT NULL,
        seen   BLOB    NOT NULL,
        PRIMARY KEY (sli, day)
    )""",
    "CREATE INDEX IF NOT EXISTS sli_minutes_sums ON sli_minutes (sli, day, good, total)",
)


def _sli_day_blocks(c: sqlite3.Connection) -> None:
    """Version 1: the SLI store's day blocks (converting a store of one row per minute)."""
    cols = {r[1] for r in c.execute("PRAGMA table_info(sli_minutes)")}
    old = "minute" in cols  # a store from before day blocks: one row per minute
    if old:
        c.execute("ALTER TABLE sli_minutes RENAME TO sli_minutes_v1")
    for stmt in _SLI_TABLES:
        c.execute(stmt)
    if old:
        add_rows(c, c.execute("SELECT sli, minute, good, total FROM sli_minutes_v1"))
        c.execute("DROP TABLE sli_minutes_v1")


_FEED_TABLES = """
CREATE TABLE IF NOT EXISTS buttress_state (
    source      TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    level       TEXT NOT NULL,
    fields      TEXT NOT NULL,
    updated     REAL NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (source, policy_type, scope, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buttress_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    time        REAL NOT NULL,
    source      TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    scope       TEXT NOT NULL,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    state       TEXT NOT NULL,
    level       TEXT NOT NULL,
    fields      TEXT NOT NULL
);
"""
"""Version 2: the live-state feed (:mod:`buttress.dashboard.feed`)."""

MIGRATIONS: tuple[Migration, ...] = (_sli_day_blocks, _FEED_TABLES)
SCHEMA_VERSION = len(MIGRATIONS)
"""The version this code writes."""
