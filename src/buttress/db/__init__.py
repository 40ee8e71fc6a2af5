"""Failover-aware PostgreSQL pools on psycopg 3 and psycopg_pool (the ``db`` extra).

:class:`~buttress.db.pool.WritePool` keeps its connections on the current primary of a multi-host
cluster, notices a demoted or vanished primary (``pg_is_in_recovery()``, read-only and shutdown
errors, lost connections) and moves to the new one; :class:`~buttress.db.reads.ReadPool` reads
from standbys within a lag bound, and after a given WAL position for read-your-writes, choosing
among them with the endpoint pools of :mod:`buttress.failover`.  Every host has a circuit breaker
(:mod:`buttress.db.hosts`), so a dead or hung host is skipped instead of costing a connect timeout
per attempt.  Events: :mod:`buttress.db.events`.  See ``docs/dr.md``.
"""

from __future__ import annotations

from .hosts import HOST_BREAKER, READ_OUTLIER_DETECTION, HostBreaker
from .pool import CommitUnknown, NoPrimary, WritePool, is_failover_error, parse_hosts
from .reads import NoFreshStandby, ReadPool

__all__ = [
    "HOST_BREAKER",
    "READ_OUTLIER_DETECTION",
    "CommitUnknown",
    "HostBreaker",
    "NoFreshStandby",
    "NoPrimary",
    "ReadPool",
    "WritePool",
    "is_failover_error",
    "parse_hosts",
]
