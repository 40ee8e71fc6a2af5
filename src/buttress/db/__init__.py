"""Failover-aware PostgreSQL pools on psycopg 3 and psycopg_pool (the ``db`` extra).

:class:`~buttress.db.pool.WritePool` keeps its connections on the current primary of a multi-host
cluster, notices a demoted or vanished primary (``pg_is_in_recovery()``, read-only and shutdown
errors, lost connections) and moves to the new one; :class:`~buttress.db.reads.ReadPool` reads
from standbys within a lag bound, and after a given WAL position for read-your-writes.  See
``docs/dr.md``.
"""

from __future__ import annotations

from .pool import CommitUnknown, NoPrimary, WritePool, is_failover_error, parse_hosts
from .reads import NoFreshStandby, ReadPool

__all__ = [
    "CommitUnknown",
    "NoFreshStandby",
    "NoPrimary",
    "ReadPool",
    "WritePool",
    "is_failover_error",
    "parse_hosts",
]
