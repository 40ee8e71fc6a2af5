"""The outbox's SQL: its table (SQLite's, and PostgreSQL's with two indexes) and the statements
:mod:`buttress.outbox.store` runs on it.  Every write about a claimed row names its fence and
requires an unexpired lease (:data:`HELD`)."""

from __future__ import annotations

__all__ = [
    "ACK",
    "CLAIM",
    "CLAIM_IDS",
    "COLUMNS",
    "DEAD",
    "HELD",
    "LATER",
    "POSTGRES_SCHEMA",
    "RELEASE",
    "RENEW",
    "SCAN",
    "SQLITE_SCHEMA",
    "STATUS",
]

COLUMNS = "id, uid, queue, key, payload, created, attempts, claims, fence, last_error"
# SQLite: no secondary index and no AUTOINCREMENT, so an enqueue writes one page (the table's last)
# besides the business write's own: in WAL mode every page a commit writes is a frame written and,
# at the next checkpoint, copied and synced, so each index would cost about as much as the
# business row itself.  Claims find the heads of keys by one scan in id order instead (below).
# Row ids grow (a new row's id is above every live row's), but may be reused once the newest rows
# are deleted, hence ``uid``, random, for the consumers' inboxes.
SQLITE_SCHEMA = """
CREATE TABLE buttress_outbox_queues (name TEXT PRIMARY KEY);
CREATE TABLE buttress_outbox (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL,
    queue TEXT NOT NULL,
    key TEXT,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    available REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    fence INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    dead INTEGER NOT NULL DEFAULT 0,
    dead_at REAL,
    last_error TEXT
);
"""
POSTGRES_SCHEMA = (
    SQLITE_SCHEMA.replace(
        "id INTEGER PRIMARY KEY", "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    ).replace(" REAL", " DOUBLE PRECISION")
    + """;
CREATE INDEX buttress_outbox_next ON buttress_outbox (queue, dead, id);
CREATE INDEX buttress_outbox_key ON buttress_outbox (queue, key, id)"""
)

CLAIM = f"""
UPDATE buttress_outbox SET lease_owner = ?, lease_until = ?, fence = fence + 1, claims = claims + 1
WHERE id IN (
    SELECT o.id FROM buttress_outbox o
    WHERE o.queue = ? AND o.dead = 0 AND o.available <= ?
      AND (o.lease_until IS NULL OR o.lease_until < ?)
      AND (o.key IS NULL OR NOT EXISTS (
          SELECT 1 FROM buttress_outbox e
          WHERE e.queue = o.queue AND e.key = o.key AND e.dead = 0 AND e.id < o.id))
    ORDER BY o.id LIMIT ? FOR UPDATE SKIP LOCKED)
RETURNING {COLUMNS}
"""
SCAN = (
    "SELECT id, uid, key, payload, created, attempts, claims, fence, last_error, available, "
    "lease_until FROM buttress_outbox WHERE queue = ? AND dead = 0 ORDER BY id"
)
CLAIM_IDS = (
    "UPDATE buttress_outbox SET lease_owner = ?, lease_until = ?, fence = fence + 1, "
    "claims = claims + 1 WHERE id IN ({ids})"
)
HELD = "id = ? AND fence = ? AND lease_until >= ?"
ACK = f"DELETE FROM buttress_outbox WHERE {HELD}"
RENEW = f"UPDATE buttress_outbox SET lease_until = ? WHERE {HELD}"
RELEASE = f"UPDATE buttress_outbox SET lease_owner = NULL, lease_until = NULL WHERE {HELD}"
LATER = (
    "UPDATE buttress_outbox SET attempts = attempts + ?, available = ?, lease_owner = NULL, "
    f"lease_until = NULL, last_error = ? WHERE {HELD}"
)
DEAD = (
    "UPDATE buttress_outbox SET attempts = attempts + 1, dead = 1, dead_at = ?, "
    f"lease_owner = NULL, lease_until = NULL, last_error = ? WHERE {HELD}"
)
STATUS = (
    "SELECT queue, dead, count(*), min(created), "
    "sum(CASE WHEN lease_until >= ? THEN 1 ELSE 0 END) FROM buttress_outbox GROUP BY queue, dead"
)
