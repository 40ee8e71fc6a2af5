"""Reads from standbys that are fresh enough, and read-your-writes by WAL position.

:class:`ReadPool` spreads read-only transactions over the standbys of a multi-host DSN and keeps
two promises:

* **bounded staleness**: a standby is used only while its replay lag is at most ``max_lag``
  seconds.  The lag is ``now() - pg_last_xact_replay_timestamp()`` while the standby has received
  WAL it has not replayed, and 0 when it has replayed everything it received (an idle primary sends
  nothing, and an old replay timestamp alone would read as lag).  That reasoning holds only while
  the standby streams from a primary: one with no WAL receiver (its primary gone, its
  ``primary_conninfo`` cleared, an old primary restarted as a standby on a diverged timeline) has
  replayed all it received and falls behind unseen, so its lag is unknown and it serves no reads.
  It is measured at most every ``check_interval`` seconds per standby;
* **read-your-writes**: ``read(fn, after_lsn=lsn)``, with ``lsn`` from
  :meth:`~buttress.db.pool.WritePool.current_lsn` after a write, runs on a standby only if it has
  replayed up to ``lsn`` (``pg_last_wal_replay_lsn() >= lsn``, checked in the read's own
  transaction, so the answer holds for the read).

**Choosing a standby** is the endpoint-pool machinery of :mod:`buttress.failover`
(:func:`~buttress.db.hosts.endpoint_pool`): each lag check is an active health result (fresh:
pass; lagging or not a standby: fail; unreachable: error), each read's outcome feeds outlier
detection (a lost connection or an exhausted pool is a ``local_failure``; 3 in a row eject the
standby for 10 s, growing on repeats), and among the healthy standbys the one with fewer reads in
flight of two drawn at random is used.  A read whose connection fails on one standby is tried on
another, and that standby is out of rotation until a lag check reaches it again.

**Each host has a circuit breaker** (:class:`~buttress.db.hosts.HostBreaker`), asked before every
lag check and every read.  Once it is open the host costs nothing: no lag check connects to it, no
read waits on its pool (which is closed, so its workers stop reconnecting), until the break is over
and one probe goes through.  Without it a hung standby would cost a ``connect_timeout`` (libpq
waits at least 2 s) at every lag check, that is every ``check_interval``, paid by a read.

When no standby qualifies the read goes to the primary through the write pool (``fallback``,
and a ``buttress_db_pool_read_fell_back`` event) or, without a write pool, raises
:class:`NoFreshStandby`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from buttress.errors import ButtressError, ConfigError
from buttress.failover import Endpoint, OutlierDetection
from buttress.policies.breaker import BreakerOptions, Permit

from .events import ReadFellBack, emitter
from .hosts import HOST_BREAKER, READ_OUTLIER_DETECTION, HostBreaker, endpoint_pool, host_label
from .pool import ClusterPool, WritePool

__all__ = ["NoFreshStandby", "ReadPool", "StandbyState"]

T = TypeVar("T")

LAG_SQL = (
    "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END, "
    # Without pg_read_all_stats only the receiver's pid is visible: enough to know it exists.
    "EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL)"
)


class NoFreshStandby(ButtressError):
    """No standby is fresh enough for this read and there is no primary to fall back to."""


@dataclass
class StandbyState:
    """What the pool last learned about one host."""

    host: str
    port: str
    endpoint: Endpoint
    breaker: HostBreaker | None = None
    lag: float = math.inf
    standby: bool = False
    checked: float = -math.inf
    pool: Any = None

    @property
    def label(self) -> str:
        return host_label(self.host, self.port)


class ReadPool(ClusterPool):
    """Read-only transactions on fresh standbys (see the module docstring).

    :param conninfo: a multi-host DSN naming the standbys (the primary may be listed too: it is
        recognised and not used for reads).
    :param max_lag: seconds of replay lag a standby may have and still serve reads.
    :param check_interval: seconds between lag measurements per standby.
    :param fallback: the write pool to read from when no standby qualifies.
    :param breaker: the per-host circuit breaker's options
        (:data:`~buttress.db.hosts.HOST_BREAKER`); ``None``: no breakers.
    :param outlier_detection: when failed reads eject a standby
        (:data:`~buttress.db.hosts.READ_OUTLIER_DETECTION`); ``None``: never.
    :param selection: ``"least_request"`` (default) or ``"round_robin"``.
    :param connect_timeout: seconds a connection attempt may take, unless the DSN sets it.
    :param name: the ``pipeline`` label of the events.
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
        breaker: BreakerOptions | None = HOST_BREAKER,
        outlier_detection: OutlierDetection | None = READ_OUTLIER_DETECTION,
        selection: str = "least_request",
        connect_timeout: int = 2,
        name: str = "db",
    ) -> None:
        super().__init__(
            conninfo,
            max_size=max_size,
            timeout=timeout,
            connect_timeout=connect_timeout,
            breaker=breaker,
            name=name,
        )
        if not max_lag >= 0:
            raise ConfigError("max_lag", max_lag, "must be >= 0 seconds")
        self.max_lag = max_lag
        self.check_interval = check_interval
        self.fallback = fallback
        self.endpoints = endpoint_pool(
            self.hosts, outlier_detection=outlier_detection, selection=selection, pool_name=name
        )
        self.states = [
            StandbyState(h, p, ep)
            for (h, p), ep in zip(self.hosts, self.endpoints.endpoints, strict=True)
        ]
        self._by_endpoint = {s.endpoint: s for s in self.states}
        if breaker is not None:
            for s in self.states:
                s.breaker = HostBreaker(
                    s.label,
                    breaker,
                    pool_name=name,
                    policy="read_pool",
                    on_open=lambda s=s: self._drop_pool(s),  # type: ignore[misc]
                )
        self._lock = threading.Lock()

    # --- lag checks: the endpoint pool's active health --------------------------------------------

    def _refresh(self, s: StandbyState, now: float) -> None:
        s.checked = now
        try:
            row = self.query(s.host, s.port, LAG_SQL, s.breaker)
        except self._psycopg.Error:
            s.standby, s.lag = False, math.inf
            self.endpoints.report_probe(s.endpoint, "error", "unreachable")
            return
        if row is None:
            return  # skipped while its breaker is open: selection skips it too
        in_recovery, lag, streaming = row
        s.standby, s.lag = bool(in_recovery), float(lag) if streaming else math.inf
        if not s.standby:
            self.endpoints.report_probe(s.endpoint, "fail", "not a standby")
        elif not streaming:
            self.endpoints.report_probe(s.endpoint, "fail", "not streaming: lag unknown")
        elif s.lag > self.max_lag:
            self.endpoints.report_probe(s.endpoint, "fail", f"lag {s.lag:.3g} s")
        else:
            self.endpoints.report_probe(s.endpoint, "pass", "fresh")

    @staticmethod
    def _record(s: StandbyState, permit: Permit | None, reached: bool | None, t0: float) -> None:
        if s.breaker is not None and permit is not None:
            s.breaker.record(permit, reached, t0)

    def fresh(self) -> list[StandbyState]:
        """The standbys that may serve reads now (last lag within ``max_lag``, not ejected, breaker
        not open), measuring those whose last check is older than ``check_interval``."""
        now = time.monotonic()
        for s in self.states:
            if now - s.checked >= self.check_interval:
                self._refresh(s, now)
        return [
            s
            for s in self.states
            if self.endpoints.is_healthy(s.endpoint)
            and (s.breaker is None or not s.breaker.is_open)
        ]

    # --- reads ------------------------------------------------------------------------------------

    def _pool_of(self, s: StandbyState) -> Any:
        with self._lock:
            if s.pool is None:
                s.pool = self.connection_pool(
                    s.host, s.port, min_size=1, name=f"read-{s.label}", open=True
                )
            return s.pool

    def _drop_pool(self, s: StandbyState) -> None:
        """The host's breaker opened: close its pool (in the background: closing waits for the
        workers, which may be stuck connecting), so nothing reconnects to it during the break."""
        with self._lock:
            pool, s.pool = s.pool, None
        if pool is not None:
            threading.Thread(target=pool.close, kwargs={"timeout": 1.0}, daemon=True).start()

    def _read_on(
        self, s: StandbyState, permit: Permit | None, fn: Callable[[Any], T], after_lsn: str | None
    ) -> tuple[bool, T | None]:
        """``(True, result)``, or ``(False, None)`` when ``s`` could not serve this read (behind
        ``after_lsn``, or its connection failed)."""
        outcome: str | None = "success"
        reached: bool | None = True
        started = time.monotonic()
        try:
            with self._pool_of(s).connection() as conn:
                conn.execute("SET TRANSACTION READ ONLY")
                if after_lsn is not None:
                    caught_up = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (after_lsn,)
                    ).fetchone()[0]
                    if not caught_up:
                        conn.rollback()
                        return False, None
                try:
                    out = fn(conn)
                except self._psycopg.OperationalError:
                    raise
                except BaseException:
                    outcome = reached = None  # the caller's own error: nothing about the host
                    raise
                conn.rollback()  # read-only: nothing to commit
                return True, out
        except self._psycopg.OperationalError:  # lost connection, refused, pool timeout
            outcome, reached = "local_failure", False
            # Out of rotation until a lag check reaches it again (at the next read): other reads
            # would otherwise wait on its connection pool for up to `timeout`.
            self.endpoints.report_probe(s.endpoint, "error", "unreachable")
            s.checked = -math.inf
            return False, None
        finally:
            self.endpoints.release(s.endpoint, outcome)
            self._record(s, permit, reached, started)

    def read(self, fn: Callable[[Any], T], *, after_lsn: str | None = None) -> T:
        """Run ``fn(conn)`` in a read-only transaction on a fresh standby (one that has replayed
        ``after_lsn`` when given), else on the primary."""
        self.fresh()
        pool = self.endpoints
        tried: set[Endpoint] = set()
        while len(tried) < len(self.states):
            ep = pool.acquire(exclude=tried)
            if ep in tried or not pool.is_healthy(ep):
                pool.release(ep, None)  # nothing healthy left to try
                break
            tried.add(ep)
            s = self._by_endpoint[ep]
            permit = None
            if s.breaker is not None:
                permit = s.breaker.permit()
                if permit is None:
                    pool.release(ep, None)
                    continue
            done, out = self._read_on(s, permit, fn, after_lsn)
            if done:
                return out  # type: ignore[return-value]
        reason = self._why(after_lsn)
        if self.fallback is None:
            raise NoFreshStandby(f"{reason} (max_lag {self.max_lag:g} s) and no fallback")
        em = emitter()
        if em.active:
            em.emit(ReadFellBack(self.name, "read_pool", time.monotonic(), reason))
        return self.fallback.transaction(fn)

    def _why(self, after_lsn: str | None) -> str:
        if after_lsn is not None:
            return "no standby has replayed the write"
        if any(s.standby and s.lag > self.max_lag for s in self.states):
            return "every standby lags"
        return "no standby is reachable"

    def close(self) -> None:
        for s in self.states:
            with self._lock:
                pool, s.pool = s.pool, None
            if pool is not None:
                pool.close()
