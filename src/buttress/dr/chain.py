"""Hash-chained, append-only logs: each record carries the hash of the one before it.

An audit log that must show it was neither edited nor cut keeps its records in a chain (the
linked timestamping of Haber and Stornetta, *How to time-stamp a digital document*, 1991)::

    record n = {"seq": n, "prev": hash(n - 1), "hash": hash(n), "body": {...}}
    hash(n)  = SHA-256( "<n>\\n<hash(n - 1)>\\n<body as canonical JSON>" )   (hex)
    hash(0)  = GENESIS (64 zeros)

Canonical JSON is :func:`json.dumps` with sorted keys, no spaces and ASCII escapes, so any
language can recompute a hash.  Changing a body, removing, reordering or inserting a record breaks
every link after it; only rewriting the whole tail, which copies elsewhere (a replica, a shipped
log) expose, goes unseen.  :func:`verify_chain` checks a sequence of records and says where the
first break is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buttress.errors import ConfigError

__all__ = ["GENESIS", "ChainCheck", "canonical", "link", "make_record", "verify_chain"]

GENESIS = "0" * 64
"""The ``prev`` of the first record."""


def canonical(body: Mapping[str, Any]) -> str:
    """``body`` as canonical JSON: sorted keys, no spaces, ASCII only."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def link(seq: int, prev: str, body: Mapping[str, Any]) -> str:
    """The hash of record ``seq`` whose predecessor's hash is ``prev``."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise ConfigError("seq", seq, "must be an integer >= 1")
    data = f"{seq}\n{prev}\n{canonical(body)}".encode("ascii")
    return hashlib.sha256(data).hexdigest()


def make_record(seq: int, prev: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The record ``seq`` after the one whose hash is ``prev``."""
    return {"seq": seq, "prev": prev, "hash": link(seq, prev, body), "body": dict(body)}


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What :func:`verify_chain` found: ``records`` checked, the ``head`` hash (``GENESIS`` for
    none), and the first ``break_at`` (a sequence number) with its ``reason`` (``None``: intact)."""

    records: int
    head: str
    break_at: int | None = None
    reason: str | None = None

    @property
    def intact(self) -> bool:
        return self.break_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "head": self.head,
            "intact": self.intact,
            "break_at": self.break_at,
            "reason": self.reason,
        }


def verify_chain(records: Sequence[Mapping[str, Any]]) -> ChainCheck:
    """Check ``records`` from the first: sequence numbers 1, 2, 3... with no gap, each ``prev``
    the hash of the record before (``GENESIS`` for the first) and each ``hash`` recomputed from
    the record.  Stops at the first break."""
    prev = GENESIS
    for i, r in enumerate(records, 1):
        seq = r.get("seq")
        body = r.get("body")
        if seq != i:
            return ChainCheck(i - 1, prev, i, f"record {i} has seq {seq!r}: a gap or a reorder")
        if not isinstance(body, Mapping):
            return ChainCheck(i - 1, prev, i, f"record {i} has no body")
        if r.get("prev") != prev:
            return ChainCheck(i - 1, prev, i, f"record {i}'s prev is not record {i - 1}'s hash")
        expected = link(i, prev, body)
        if r.get("hash") != expected:
            return ChainCheck(i - 1, prev, i, f"record {i}'s hash does not match its content")
        prev = expected
    return ChainCheck(len(records), prev)
