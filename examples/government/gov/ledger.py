"""A site's store: the hash-chained audit log, the claims it records, and the site's role.

One SQLite file per site (``site.db`` in its data directory), in WAL mode with
``synchronous=FULL``: a commit returns once the WAL is fsynced, so a record the site has committed
survives a crash of its process.  Three tables:

* ``audit (seq, prev, hash, body, claim_id)``: the chain (:mod:`buttress.dr.chain`), appended to and
  never updated; an append checks that each record links to the head;
* ``claims (id, seq, status)``: each claim filed, with the audit record that filed it (a
  projection of the log, written in the same transaction);
* ``meta``: the site's role (``active`` or ``standby``) and term, so a restarted site knows what it
  was (and a site restored from a backup, what it was then).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from buttress.dr.chain import GENESIS, link

__all__ = ["ChainError", "Ledger"]


class ChainError(Exception):
    """Records that do not extend this site's chain."""


class Ledger:
    """The site's SQLite store (thread-safe; every method is one short transaction)."""

    def __init__(self, path: Path, *, role: str, term: int = 1) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, prev TEXT NOT NULL, "
            "hash TEXT NOT NULL, body TEXT NOT NULL, claim_id TEXT);"
            "CREATE INDEX IF NOT EXISTS audit_claim ON audit (claim_id);"
            "CREATE TABLE IF NOT EXISTS claims (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
            "status TEXT NOT NULL);"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        )
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('role', ?)", (role,))
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('term', ?)", (str(term),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- role --------------------------------------------------------------------------------------

    def role(self) -> tuple[str, int]:
        with self._lock:
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return str(rows["role"]), int(rows["term"])

    def set_role(self, role: str, term: int) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'role'", (role,))
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'term'", (str(term),))
            self._db.execute("COMMIT")

    # -- the chain ---------------------------------------------------------------------------------

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest record (``(0, GENESIS)`` for none)."""
        with self._lock:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            found = row.fetchone()
        return (0, GENESIS) if found is None else (int(found[0]), str(found[1]))

    def hash_at(self, seq: int) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def receipt(self, claim_id: str) -> dict[str, Any] | None:
        """The audit record that filed ``claim_id``: ``{"seq", "hash"}``, or ``None``."""
        with self._lock:
            row = self._db.execute(
                "SELECT a.seq, a.hash FROM claims c JOIN audit a ON a.seq = c.seq WHERE c.id = ?",
                (claim_id,),
            ).fetchone()
        return None if row is None else {"seq": int(row[0]), "hash": str(row[1])}

    def records(self, after: int = 0) -> list[dict[str, Any]]:
        """Every record after ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, prev, hash, body FROM audit WHERE seq > ? ORDER BY seq", (after,)
            ).fetchall()
        return [{"seq": s, "prev": p, "hash": h, "body": json.loads(b)} for s, p, h, b in rows]

    def append(self, records: list[dict[str, Any]]) -> int:
        """Append ``records`` (each the next of the chain: its seq, its prev the head's hash, its
        hash recomputed) in one transaction, with the claims they file; returns the new head's
        seq.  Raises :class:`ChainError`, appending nothing, when one does not link."""
        with self._lock:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            found = row.fetchone()
            seq, head = (0, GENESIS) if found is None else (int(found[0]), str(found[1]))
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for r in records:
                    if r["seq"] != seq + 1 or r["prev"] != head:
                        raise ChainError(f"record {r['seq']} does not follow {seq}")
                    if link(r["seq"], r["prev"], r["body"]) != r["hash"]:
                        raise ChainError(f"record {r['seq']}: hash does not match its content")
                    claim = r["body"].get("claim_id")
                    self._db.execute(
                        "INSERT INTO audit VALUES (?, ?, ?, ?, ?)",
                        (r["seq"], r["prev"], r["hash"], json.dumps(r["body"]), claim),
                    )
                    if claim is not None:
                        self._db.execute(
                            "INSERT OR IGNORE INTO claims VALUES (?, ?, 'filed')", (claim, r["seq"])
                        )
                    seq, head = r["seq"], r["hash"]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seq

    # -- reads for the lab and the lookup ----------------------------------------------------------

    def claim_ids(self) -> list[str]:
        with self._lock:
            return [str(r[0]) for r in self._db.execute("SELECT id FROM claims ORDER BY id")]

    def counts(self) -> dict[str, int]:
        """Claim id -> audit records naming it (1 for every claim filed once)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT claim_id, count(*) FROM audit WHERE claim_id IS NOT NULL GROUP BY claim_id"
            ).fetchall()
        return {str(c): int(n) for c, n in rows}

    def latest(self) -> dict[str, Any] | None:
        """The newest claim filed: ``{"claim_id", "seq", "status"}``."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, seq, status FROM claims ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else {"claim_id": row[0], "seq": row[1], "status": row[2]}
