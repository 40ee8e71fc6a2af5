"""A write pool that follows the primary through a failover (psycopg 3 and psycopg_pool).

Given a multi-host connection string (``host=a,b port=5432,5433`` or
``postgresql://a:5432,b:5433/app``), :class:`WritePool` keeps a ``psycopg_pool.ConnectionPool`` on
the current primary and runs transactions on it.

**Finding the primary.** The hosts are tried in order and the first that answers
``SELECT pg_is_in_recovery()`` with false is the primary.  ``SELECT 1`` is no health check here: it
succeeds on a standby, so a pool that checks with it stays on a demoted primary.  Each host has a
circuit breaker (:class:`~buttress.db.hosts.HostBreaker`, ``breaker=``): a host that failed to
connect at least 2 of its last 3 probes is skipped, with no connection attempt, until its break is
over, so a dead or hung host listed first does not cost a ``connect_timeout`` per round of looking.
When every breaker is open the hosts are probed regardless: there is nothing else to wait for.

**Noticing a failover.** Any of these on a connection of the pool means the primary it points at
may be gone: a lost connection (``OperationalError``), ``admin_shutdown`` / ``crash_shutdown`` /
``cannot_connect_now`` (the server is stopping or starting), ``read_only_sql_transaction`` (the
host is a standby now), or the periodic ``pg_is_in_recovery()`` check answering true (a read-only
transaction on a demoted primary would otherwise succeed and read stale data).

**Moving.** The first thread to notice probes the hosts every ``probe_interval`` (50 ms) until one
accepts writes, then swaps in a fresh ``ConnectionPool`` bound to it; the threads that noticed the
same failure wait for that swap instead of probing too.  A fresh pool rather than the old one
healing itself, because psycopg_pool backs off failed connection attempts from one second upwards:
after a promotion that takes 0.2 s the old pool could sit out seconds.

**What is retried.** A transaction that failed *before* its ``COMMIT`` was sent did not happen:
:meth:`WritePool.transaction` reruns it on the new primary.  A connection lost *during* the
``COMMIT`` leaves the outcome unknown (the commit may have reached the server and its synchronous
standby): :class:`CommitUnknown` is raised, unless the caller declared the transaction idempotent
(``idempotent=True``), in which case it is rerun.  Nothing acknowledged is lost as long as the
primary waits for a synchronous standby (``synchronous_commit = on`` with
``synchronous_standby_names``), which is the server's promise, not the pool's.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from buttress.errors import ButtressError, ConfigError, MissingExtra
from buttress.options import check_order
from buttress.policies.breaker import BreakerOptions, Permit

from .events import PrimaryDemoted, PrimaryFound, PrimaryLost, emitter
from .hosts import HOST_BREAKER, HostBreaker, host_label

__all__ = [
    "ClusterPool",
    "CommitUnknown",
    "NoPrimary",
    "WritePool",
    "is_failover_error",
    "load_psycopg",
    "parse_hosts",
]

T = TypeVar("T")


def load_psycopg() -> tuple[Any, Any]:
    """``(psycopg, psycopg_pool)``, or :class:`~buttress.errors.MissingExtra` naming ``db``."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as e:
        raise MissingExtra("buttress.db", "db", e.name or "psycopg_pool") from None
    return psycopg, psycopg_pool


class NoPrimary(ButtressError):
    """No host accepted writes within the failover timeout."""


class CommitUnknown(ButtressError):
    """The connection was lost while ``COMMIT`` was in flight: the transaction may or may not have
    been committed.  Retry only what is safe to apply twice."""


SKIPPED = "skipped: its breaker is open"

_FAILOVER_SQLSTATES = frozenset({"25006", "57P01", "57P02", "57P03"})


def is_failover_error(error: BaseException) -> bool:
    """Whether ``error`` says the primary this connection points at may be gone or demoted."""
    psycopg, _ = load_psycopg()
    if getattr(error, "sqlstate", None) in _FAILOVER_SQLSTATES:
        return True
    return isinstance(error, psycopg.OperationalError)


def parse_hosts(conninfo: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The connection parameters without host and port, and the ``(host, port)`` list; a string
    that does not parse raises :class:`~buttress.errors.ConfigError` naming ``conninfo``."""
    psycopg, _ = load_psycopg()
    try:
        params = {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(conninfo).items()}
    except psycopg.Error as e:
        raise ConfigError("conninfo", conninfo, f"does not parse ({e})") from None
    hosts = params.pop("host", "").split(",")
    ports = params.pop("port", "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts) or not any(hosts):
        raise ConfigError("conninfo", conninfo, "give one port, or one port per host")
    return params, list(zip(hosts, ports, strict=True))


class ClusterPool(abc.ABC):
    """What the write and the read pool share: the hosts and connection parameters of one
    multi-host DSN, and connections to one host (a probe's, or a ``psycopg_pool`` pool's).  Used as
    a context manager, it is closed on leaving.

    :param max_size: connections per ``psycopg_pool`` pool, at most.
    :param timeout: seconds to wait for a free connection.
    :param connect_timeout: seconds a connection attempt may take, unless the DSN sets it.
    :param breaker: checked here (:func:`check_host_options`); each pool builds its breakers.
    :param name: the ``pipeline`` label of the events, and part of the pools' names.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        max_size: int,
        timeout: float,
        connect_timeout: int,
        breaker: object,
        name: str,
    ) -> None:
        self._psycopg, self._pool_mod = load_psycopg()
        self.params, self.hosts = parse_hosts(conninfo)
        self.connect_timeout = check_host_options(connect_timeout, breaker)
        self.conninfo = conninfo
        self.max_size = max_size
        self.timeout = timeout
        self.name = name

    def query(self, host: str, port: str, sql: str, breaker: HostBreaker | None) -> Any:
        """The row ``sql`` returns on a fresh autocommit connection to ``host``, or ``None`` when
        its breaker is open (no connection is attempted).  Whether the host was reached is recorded
        on the breaker; a ``psycopg.Error`` propagates (an ``OperationalError`` counts against the
        host, any other, an SQL error, says nothing about it)."""
        permit: Permit | None = None
        if breaker is not None:
            permit = breaker.permit()
            if permit is None:
                return None
        psycopg = self._psycopg
        started = time.monotonic()
        try:
            with psycopg.connect(
                conninfo_for(self.params, host, port, self.connect_timeout), autocommit=True
            ) as conn:
                row = conn.execute(sql).fetchone()
        except psycopg.Error as e:
            if breaker is not None and permit is not None:
                reached = None if not isinstance(e, psycopg.OperationalError) else False
                breaker.record(permit, reached, started)
            raise
        if breaker is not None and permit is not None:
            breaker.record(permit, True, started)
        return row

    def connection_pool(self, host: str, port: str, *, min_size: int, name: str, open: bool) -> Any:
        """A ``psycopg_pool.ConnectionPool`` on ``host``, named ``buttress-<pool name>-<name>``."""
        return self._pool_mod.ConnectionPool(
            conninfo_for(self.params, host, port, self.connect_timeout),
            min_size=min_size,
            max_size=self.max_size,
            timeout=self.timeout,
            name=f"buttress-{self.name}-{name}",
            open=open,
        )

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection pool."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WritePool(ClusterPool):
    """Transactions on the current primary of a multi-host PostgreSQL cluster (see the module
    docstring).

    :param conninfo: a libpq connection string or URL naming every host that may become primary.
    :param min_size: connections kept open; :param max_size: at most.
    :param timeout: seconds to wait for a free connection.
    :param failover_timeout: seconds to look for a new primary before :class:`NoPrimary`.
    :param probe_interval: seconds between rounds of looking.
    :param check_interval: seconds between ``pg_is_in_recovery()`` checks on checkout (``0``:
        every checkout; a round trip each).
    :param max_attempts: runs of one transaction across failovers before the error is raised.
    :param breaker: the per-host circuit breaker's options
        (:data:`~buttress.db.hosts.HOST_BREAKER` by default); ``None``: no breakers.
    :param connect_timeout: seconds a connection attempt may take, unless the DSN sets it (libpq
        waits at least 2).
    :param name: the ``pipeline`` label of the events.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        timeout: float = 5.0,
        failover_timeout: float = 30.0,
        probe_interval: float = 0.05,
        check_interval: float = 1.0,
        max_attempts: int = 5,
        breaker: BreakerOptions | None = HOST_BREAKER,
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
        for param, value in (("min_size", min_size), ("max_size", max_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(param, value, "must be an integer >= 1")
        check_order("min_size", min_size, "max_size", max_size)
        self.min_size = min_size
        self.failover_timeout = failover_timeout
        self.probe_interval = probe_interval
        self.check_interval = check_interval
        self.max_attempts = max_attempts
        self.breakers: dict[tuple[str, str], HostBreaker] = (
            {}
            if breaker is None
            else {
                (h, p): HostBreaker(host_label(h, p), breaker, pool_name=name, policy="write_pool")
                for h, p in self.hosts
            }
        )
        self.failovers = 0
        self._lock = threading.Lock()
        self._demoted_seen = -1
        self._generation = 0
        self._last_check = 0.0
        self._pool: Any = None
        self.primary: tuple[str, str] | None = None
        self._move(None, reason="opening")

    # --- finding the primary ---------------------------------------------------------------------

    def find_primary(self, deadline: float) -> tuple[str, str]:
        """Probe the hosts, in order, until one accepts writes and is not in recovery; its
        (host, port).  A host whose breaker is open is skipped without a connection attempt."""
        last = "no host tried"
        while True:
            attempted = False
            for host, port in self.hosts:
                writable, seen = self._probe(host, port)
                if writable:
                    return host, port
                attempted = attempted or seen != SKIPPED
                last = f"{host_label(host, port)}: {seen}"
            if not attempted:
                # Every breaker is open: nothing else could answer, so try them all regardless
                # (uncounted) rather than sit out the breaks.
                for host, port in self.hosts:
                    if self._probe(host, port, force=True)[0]:
                        return host, port
            if time.monotonic() >= deadline:
                raise NoPrimary(f"no host of {self.conninfo!r} accepts writes ({last})")
            time.sleep(self.probe_interval)

    def _probe(self, host: str, port: str, *, force: bool = False) -> tuple[bool, str]:
        """Whether ``host`` accepts writes now, and what was seen; fed to the host's breaker
        (``force``: probe even if it is open, and count nothing)."""
        breaker = None if force else self.breakers.get((host, port))
        try:
            row = self.query(host, port, "SELECT pg_is_in_recovery()", breaker)
        except self._psycopg.Error as e:
            return False, str(e).strip()[:200]
        if row is None:
            return False, SKIPPED
        if row[0]:
            if (host, port) == self.primary and self._demoted_seen != self._generation:
                self._demoted(host, port, "pg_is_in_recovery() is true")
            return False, "in recovery"
        return True, "accepts writes"

    def _demoted(self, host: str, port: str, detail: str) -> None:
        """Say once per primary that it answers as a standby now."""
        self._demoted_seen = self._generation
        em = emitter()
        if em.active:
            em.emit(
                PrimaryDemoted(
                    self.name, "write_pool", time.monotonic(), host_label(host, port), detail
                )
            )

    def _move(self, seen_generation: int | None, *, reason: str) -> None:
        """Swap in a pool on the current primary, once per failure however many threads saw it."""
        with self._lock:
            if seen_generation is not None and seen_generation != self._generation:
                return  # another thread already moved
            started = time.monotonic()
            em = emitter()
            old, old_primary = self._pool, self.primary
            if old is not None and old_primary is not None and em.active:
                em.emit(
                    PrimaryLost(self.name, "write_pool", started, host_label(*old_primary), reason)
                )
            host, port = self.find_primary(started + self.failover_timeout)
            pool = self.connection_pool(
                host, port, min_size=self.min_size, name=str(self._generation + 1), open=False
            )
            pool.open(wait=True, timeout=self.timeout)
            self._pool, self.primary = pool, (host, port)
            self._generation += 1
            self._last_check = time.monotonic()
            if old is not None:
                self.failovers += 1
            duration = time.monotonic() - started
            previous = "" if old_primary is None else host_label(*old_primary)
        if old is not None:
            # Closing waits for connections in use; never on the caller's time.
            threading.Thread(target=old.close, kwargs={"timeout": 1.0}, daemon=True).start()
        if em.active:
            em.emit(
                PrimaryFound(
                    self.name,
                    "write_pool",
                    time.monotonic(),
                    host_label(host, port),
                    previous,
                    duration,
                )
            )

    # --- using it ---------------------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection to the primary, checked with ``pg_is_in_recovery()`` at most every
        ``check_interval`` seconds.  Failover errors raised inside propagate unchanged; call
        :meth:`notice` with them (:meth:`transaction` does)."""
        generation, pool = self._generation, self._pool
        with pool.connection() as conn:
            now = time.monotonic()
            if now - self._last_check >= self.check_interval:
                self._last_check = now
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
                conn.rollback()
                if in_recovery:
                    if self.primary is not None and self._demoted_seen != generation:
                        self._demoted(*self.primary, "pg_is_in_recovery() is true on checkout")
                    self._move(generation, reason="pg_is_in_recovery() is true: demoted")
                    raise self._psycopg.errors.ReadOnlySqlTransaction("the primary was demoted")
            yield conn

    def notice(self, error: BaseException, generation: int) -> bool:
        """Move to a new primary when ``error`` is a failover error; whether it was one."""
        if not is_failover_error(error):
            return False
        primary = self.primary
        if (
            getattr(error, "sqlstate", None) == "25006"
            and primary is not None
            and generation == self._generation
            and self._demoted_seen != generation
        ):
            self._demoted(*primary, "read_only_sql_transaction")
        self._move(generation, reason=f"{type(error).__name__}: {str(error).strip()[:200]}")
        return True

    def transaction(self, fn: Callable[[Any], T], *, idempotent: bool = False) -> T:
        """Run ``fn(conn)`` in one transaction on the primary and commit; rerun it on the new
        primary after a failover (see the module docstring for what is rerun)."""
        attempt = 0
        while True:
            attempt += 1
            generation = self._generation
            committing = False
            try:
                with self.connection() as conn:
                    try:
                        out = fn(conn)
                    except BaseException:
                        try:
                            conn.rollback()
                        except Exception:  # a broken connection: the pool discards it
                            pass
                        raise
                    committing = True
                    conn.commit()
                    return out
            except Exception as e:
                if attempt >= self.max_attempts or not self.notice(e, generation):
                    raise
                if committing and not idempotent:
                    raise CommitUnknown(f"connection lost during COMMIT ({e})") from e

    def current_lsn(self) -> str:
        """The primary's current WAL insert position: pass it to
        :meth:`~buttress.db.reads.ReadPool.read` (``after_lsn``) to read your own writes."""
        return str(
            self.transaction(
                lambda c: c.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
            )
        )

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


def check_host_options(connect_timeout: object, breaker: object) -> int:
    """Validate the per-host options both pools take; the connect timeout."""
    if (
        isinstance(connect_timeout, bool)
        or not isinstance(connect_timeout, int)
        or connect_timeout < 1
    ):
        raise ConfigError("connect_timeout", connect_timeout, "must be whole seconds >= 1")
    if breaker is not None and not isinstance(breaker, BreakerOptions):
        raise ConfigError("breaker", breaker, "must be a BreakerOptions or None")
    return connect_timeout


def conninfo_for(params: dict[str, str], host: str, port: str, connect_timeout: int) -> str:
    """A connection string for one host; the DSN's own ``connect_timeout`` wins over the
    default given here."""
    psycopg, _ = load_psycopg()
    merged = {"connect_timeout": str(connect_timeout), **params, "host": host, "port": port}
    return str(psycopg.conninfo.make_conninfo("", **merged))
