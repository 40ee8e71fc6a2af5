"""Reads from standbys that are fresh enough, and read-your-writes by WAL position.

:class:`ReadPool` spreads read-only transactions over the standbys of a multi-host DSN and keeps
two promises:

* **bounded staleness**: a standby is used only while its replay lag is at most ``max_lag``
  seconds.  The lag is ``now() - pg_last_xact_replay_timestamp()`` while the standby has received
  WAL it has not replayed, and 0 when it has replayed everything it received (an idle primary sends
  nothing, and an old replay timestamp alone would read as lag).  It is measured at most every
  ``check_interval`` seconds per standby;
* **read-your-writes**: ``read(fn, after_lsn=lsn)``, with ``lsn`` from
  :meth:`~buttress.db.pool.WritePool.current_lsn` after a write, runs on a standby only if it has
  replayed up to ``lsn`` (``pg_last_wal_replay_lsn() >= lsn``, checked in the read's own
  transaction, so the answer holds for the read).

When no standby qualifies the read goes to the primary through the write pool (``fallback``,
and a ``buttress_db_read_fell_back`` event) or, without a write pool, raises
:class:`NoFreshStandby`.  A standby that fails is skipped until its next check.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from buttress.errors import ButtressError, ConfigError

from .events import ReadFellBack, emitter
from .pool import WritePool, load_psycopg, parse_hosts

__all__ = ["NoFreshStandby", "ReadPool", "StandbyState"]

T = TypeVar("T")

LAG_SQL = (
    "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


class NoFreshStandby(ButtressError):
    """No standby is fresh enough for this read and there is no primary to fall back to."""


@dataclass
class StandbyState:
    """What the pool last learned about one host."""

    host: str
    port: str
    lag: float = float("inf")
    standby: bool = False
    checked: float = float("-inf")
    pool: Any = None


class ReadPool:
    """Read-only transactions on fresh standbys (see the module docstring).

    :param conninfo: a multi-host DSN naming the standbys (the primary may be listed too: it is
        recognised and not used for reads).
    :param max_lag: seconds of replay lag a standby may have and still serve reads.
    :param check_interval: seconds between lag measurements per standby.
    :param fallback: the write pool to read from when no standby qualifies.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_lag: float = 1.0,
        check_interval: float = 0.5,
        fallback: WritePool | None = None,
        max_size: int = 4,
        timeout: float = 5.0,
        name: str = "db",
    ) -> None:
        self._psycopg, self._pool_mod = load_psycopg()
        params, hosts = parse_hosts(conninfo)
        if not max_lag >= 0:
            raise ConfigError("max_lag", max_lag, "must be >= 0 seconds")
        self.params = params
        self.max_lag = max_lag
        self.check_interval = check_interval
        self.fallback = fallback
        self.max_size = max_size
        self.timeout = timeout
        self.name = name
        self.states = [StandbyState(h, p) for h, p in hosts]
        self._next = itertools.count()
        self._lock = threading.Lock()

    def _conninfo(self, s: StandbyState) -> str:
        return str(
            self._psycopg.conninfo.make_conninfo(
                "", **self.params, host=s.host, port=s.port, connect_timeout=2
            )
        )

    def _refresh(self, s: StandbyState, now: float) -> None:
        s.checked = now
        try:
            with self._psycopg.connect(self._conninfo(s), autocommit=True) as conn:
                in_recovery, lag = conn.execute(LAG_SQL).fetchone()
            s.standby, s.lag = bool(in_recovery), float(lag)
        except self._psycopg.Error:
            s.standby, s.lag = False, float("inf")

    def fresh(self) -> list[StandbyState]:
        """The standbys whose last measured lag is within ``max_lag``, measuring the stale ones."""
        now = time.monotonic()
        out = []
        for s in self.states:
            if now - s.checked >= self.check_interval:
                self._refresh(s, now)
            if s.standby and s.lag <= self.max_lag:
                out.append(s)
        return out

    def _pool_of(self, s: StandbyState) -> Any:
        with self._lock:
            if s.pool is None:
                s.pool = self._pool_mod.ConnectionPool(
                    self._conninfo(s),
                    min_size=1,
                    max_size=self.max_size,
                    timeout=self.timeout,
                    name=f"buttress-{self.name}-read-{s.host}:{s.port}",
                    open=True,
                )
            return s.pool

    def read(self, fn: Callable[[Any], T], *, after_lsn: str | None = None) -> T:
        """Run ``fn(conn)`` in a read-only transaction on a fresh standby (one that has replayed
        ``after_lsn`` when given), else on the primary."""
        candidates = self.fresh()
        start = next(self._next)
        for i in range(len(candidates)):
            s = candidates[(start + i) % len(candidates)]
            try:
                with self._pool_of(s).connection() as conn:
                    conn.execute("SET TRANSACTION READ ONLY")
                    if after_lsn is not None:
                        caught_up = conn.execute(
                            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (after_lsn,)
                        ).fetchone()[0]
                        if not caught_up:
                            conn.rollback()
                            continue
                    out = fn(conn)
                    conn.rollback()  # read-only: nothing to commit
                    return out
            except self._psycopg.OperationalError:
                s.checked, s.lag = float("-inf"), float("inf")  # measure again next time
        reason = "no standby has replayed the write" if after_lsn else "every standby lags"
        if self.fallback is None:
            raise NoFreshStandby(f"{reason} (max_lag {self.max_lag:g} s) and no fallback")
        em = emitter()
        if em.active:
            em.emit(ReadFellBack(self.name, "read_pool", time.monotonic(), reason))
        return self.fallback.transaction(fn)

    def close(self) -> None:
        for s in self.states:
            if s.pool is not None:
                s.pool.close()
                s.pool = None

    def __enter__(self) -> ReadPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
