"""Built-in checks: TCP connect, HTTP GET, Redis ping, SQL query, disk space, event-loop lag and a
circuit breaker's state.

Every factory returns a :class:`~buttress.health.checks.Check` and accepts the keyword options of
:class:`~buttress.health.checks.CheckOptions` (``groups``, ``critical``, ``timeout``, ``ttl``,
``refresh``, ``component_id``, ...).  Outputs are written to be safe to show: a status code, a
threshold, a state name; never a host, a DSN or an exception's message.

=========================  ===================  ============  ====================================
factory                    key                  observed      fails when
=========================  ===================  ============  ====================================
:func:`tcp_check`          ``tcp:connect``      ms            the connection is refused/times out
:func:`http_check`         ``http:responseTime``  ms          status not in ``expect`` (2xx, 3xx)
:func:`redis_check`        ``redis:ping``       ms            PING does not answer PONG
:func:`sqlite_check`       ``sqlite:query``     ms            the query raises
:func:`postgres_check`     ``postgres:query``   ms            connect or the query raises
:func:`disk_space_check`   ``disk:utilization`` percent used  free share < ``fail_below``
:func:`event_loop_lag_check` ``event_loop:lag`` ms (peak)     peak lag >= ``fail_after``
:func:`breaker_check`      ``<breaker>:state``  state name    the breaker is open (non-critical)
=========================  ===================  ============  ====================================
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import sqlite3
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import urlsplit

from buttress.errors import ConfigError, MissingExtra
from buttress.options import check_seconds
from buttress.state.urls import check_redis_url, redact_url

from .checks import Check, CheckFunction, CheckOptions, Result, Status

if TYPE_CHECKING:
    import httpx

__all__ = [
    "LoopLagMonitor",
    "breaker_check",
    "disk_space_check",
    "event_loop_lag_check",
    "http_check",
    "postgres_check",
    "redis_check",
    "sql_check",
    "sqlite_check",
    "tcp_check",
]


def _make(
    name: str,
    fn: CheckFunction,
    defaults: CheckOptions,
    options: CheckOptions,
    *,
    in_thread: bool = True,
) -> Check:
    merged: CheckOptions = {**defaults, **options}
    return Check(name, fn, in_thread=in_thread, **merged)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


# --- TCP ------------------------------------------------------------------------------------------


def tcp_check(host: str, port: int, *, name: str = "tcp", **options: Unpack[CheckOptions]) -> Check:
    """Open (and close) a TCP connection to ``host:port``; observes the connect time in ms.

    Key ``<name>:connect``; componentType ``component``.
    """
    if not isinstance(host, str) or not host:
        raise ConfigError("host", host, "must be a host name or address")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError("port", port, "must be an integer port in 1..65535")

    async def connect() -> Result:
        t0 = time.perf_counter()
        _, writer = await asyncio.open_connection(host, port)
        elapsed = time.perf_counter() - t0
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return Result(Status.PASS, _ms(elapsed), "ms")

    return _make(name, connect, {"measurement": "connect"}, options)


# --- HTTP -----------------------------------------------------------------------------------------


def check_http_url(url: object) -> str:
    """``url`` if it is an ``http://`` or ``https://`` URL with a host and a valid port, else
    :class:`~buttress.errors.ConfigError` (with any password redacted)."""
    if not isinstance(url, str):
        raise ConfigError("url", redact_url(url), "must be an http:// or https:// URL string")
    shown = redact_url(url)  # user:password@ never reaches a message
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed IPv6 bracket, for one
        raise ConfigError("url", shown, f"is not a URL that parses ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("url", shown, "must be an absolute http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ConfigError("url", shown, "has an invalid port (an integer in 1..65535)")
    return url


def http_check(
    url: str,
    *,
    name: str = "http",
    expect: Iterable[int] = range(200, 400),
    client: httpx.AsyncClient | None = None,
    headers: dict[str, str] | None = None,
    **options: Unpack[CheckOptions],
) -> Check:
    """GET ``url`` with httpx; passes when the status is in ``expect`` (default 200-399).

    When the answer is itself ``application/health+json``, its ``warn``/``fail`` carries over.
    Observes the response time in ms; key ``<name>:responseTime``.  ``client``: an
    :class:`httpx.AsyncClient` to reuse (default: a new one per run, closed after it).
    A failure's output is ``"HTTP <status>"`` or the exception's type name, never the URL.
    A URL that does not parse (``http://[::1``), has no host, another scheme or a bad port raises
    :class:`~buttress.errors.ConfigError` for ``url`` now, with ``user:password@`` shown as ``***``.
    """
    check_http_url(url)
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a dependency of the extra
        raise MissingExtra("http_check", "health", "httpx") from None
    expected = frozenset(expect)
    if not expected or not all(isinstance(c, int) and 100 <= c < 600 for c in expected):
        raise ConfigError("expect", expect, "must be HTTP status codes (100..599)")

    async def get() -> Result:
        t0 = time.perf_counter()
        if client is not None:
            resp = await client.get(url, headers=headers)
        else:
            async with httpx.AsyncClient(follow_redirects=False) as c:
                resp = await c.get(url, headers=headers)
        elapsed = _ms(time.perf_counter() - t0)
        if resp.status_code not in expected:
            return Result(Status.FAIL, elapsed, "ms", f"HTTP {resp.status_code}")
        if resp.headers.get("content-type", "").startswith("application/health+json"):
            try:
                reported = resp.json().get("status")
            except ValueError:
                reported = None
            if reported in ("warn", "fail"):
                return Result(Status(reported), elapsed, "ms", f"dependency reports {reported}")
        return Result(Status.PASS, elapsed, "ms")

    return _make(name, get, {"measurement": "responseTime"}, options)


# --- Redis ----------------------------------------------------------------------------------------


def redis_check(
    target: str | Any, *, name: str = "redis", **options: Unpack[CheckOptions]
) -> Check:
    """PING a Redis server (redis-py asyncio); observes the round trip in ms.

    ``target``: a ``redis://`` / ``rediss://`` / ``unix://`` URL (a connection is opened per run
    and closed after it) or a ``redis.asyncio.Redis`` client to reuse (used from one event loop).
    A URL is read part by part now (:func:`buttress.state.urls.check_redis_url`: the port and the
    database are integers, a ``unix://`` URL has a path); a bad one raises
    :class:`~buttress.errors.ConfigError` for ``target`` with the password shown as ``***``.
    Key ``<name>:ping``; componentType ``datastore``.
    """
    try:
        import redis.asyncio as aioredis
        from redis import connection as redis_connection
    except ImportError:
        raise MissingExtra("redis_check", "health", "redis") from None
    if isinstance(target, str):
        check_redis_url(target, "target")
        try:  # what redis-py will connect with, read now rather than at the first probe
            redis_connection.parse_url(target)
        except ValueError:
            raise ConfigError(
                "target", redact_url(target), "is not a Redis URL redis-py accepts"
            ) from None
    elif not hasattr(target, "ping"):
        raise ConfigError("target", type(target).__name__, "must be a URL or a redis client")

    async def ping() -> Result:
        t0 = time.perf_counter()
        if isinstance(target, str):
            client = aioredis.from_url(target)
            try:
                ok = await client.ping()
            finally:
                await getattr(client, "aclose", client.close)()
        else:
            ok = await target.ping()
        elapsed = _ms(time.perf_counter() - t0)
        if ok is not True:
            return Result(Status.FAIL, elapsed, "ms", "PING got no PONG")
        return Result(Status.PASS, elapsed, "ms")

    return _make(name, ping, {"measurement": "ping", "component_type": "datastore"}, options)


# --- SQL ------------------------------------------------------------------------------------------


def sqlite_check(
    path: str | os.PathLike[str],
    *,
    query: str = "SELECT 1",
    name: str = "sqlite",
    **options: Unpack[CheckOptions],
) -> Check:
    """Run ``query`` on the SQLite database at ``path`` (stdlib :mod:`sqlite3`, in a thread).

    The database is opened read-write but never created (a missing file fails the check rather
    than leaving an empty database behind).  Observes the time in ms; key ``<name>:query``.
    """
    p = os.fspath(path)
    if not isinstance(p, str) or not p:
        raise ConfigError("path", path, "must be a database file path")
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query", query, "must be a non-empty SQL statement")
    uri = "file::memory:" if p == ":memory:" else f"file:{p}?mode=rw"

    def run() -> Result:
        t0 = time.perf_counter()
        conn = sqlite3.connect(uri, uri=True, timeout=1.0)
        try:
            conn.execute(query).fetchall()
        finally:
            conn.close()
        return Result(Status.PASS, _ms(time.perf_counter() - t0), "ms")

    return _make(
        name, run, {"measurement": "query", "component_type": "datastore"}, options, in_thread=True
    )


def postgres_check(
    dsn: str, *, query: str = "SELECT 1", name: str = "postgres", **options: Unpack[CheckOptions]
) -> Check:
    """Connect to PostgreSQL with psycopg 3 (async), run ``query``, close; observes ms.

    ``dsn``: a ``postgresql://`` URL or a libpq ``key=value`` string.  The DSN (and its password)
    never appears in a response or in a build error.  Key ``<name>:query``.
    """
    try:
        import psycopg
    except ImportError:
        raise MissingExtra("postgres_check", "health", "psycopg") from None
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError("dsn", "<redacted>", "must be a postgresql:// URL or key=value string")
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ConfigError(
            "dsn", "<redacted>", "is not a valid PostgreSQL connection string"
        ) from None
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query", query, "must be a non-empty SQL statement")
    holder: dict[str, Check] = {}

    async def run() -> Result:
        t0 = time.perf_counter()
        budget = holder["check"].timeout or 1.0
        conn = await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=max(1, math.ceil(budget)), autocommit=True
        )
        try:
            await (await conn.execute(query)).fetchall()
        finally:
            await conn.close()
        return Result(Status.PASS, _ms(time.perf_counter() - t0), "ms")

    check = _make(name, run, {"measurement": "query", "component_type": "datastore"}, options)
    holder["check"] = check
    return check


def sql_check(url: str, *, query: str = "SELECT 1", **options: Unpack[CheckOptions]) -> Check:
    """:func:`sqlite_check` for ``sqlite:///path`` (``sqlite:///:memory:``), :func:`postgres_check`
    for ``postgresql://`` / ``postgres://`` URLs (named ``sqlite`` / ``postgres``)."""
    if not isinstance(url, str):
        raise ConfigError("url", "<redacted>", "must be a sqlite:/// or postgresql:// URL")
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        if not url.startswith("sqlite:///"):
            raise ConfigError("url", url, "must be sqlite:///<path>")
        return sqlite_check(url[len("sqlite:///") :], query=query, **options)
    if scheme in ("postgresql", "postgres"):
        return postgres_check(url, query=query, **options)
    raise ConfigError("url", f"{scheme}://...", "scheme must be sqlite or postgresql")


# --- disk -----------------------------------------------------------------------------------------


def disk_space_check(
    path: str | os.PathLike[str] = "/",
    *,
    warn_below: float = 0.10,
    fail_below: float = 0.05,
    min_free_bytes: int = 0,
    name: str = "disk",
    **options: Unpack[CheckOptions],
) -> Check:
    """Free space of the file system holding ``path`` (:func:`shutil.disk_usage`).

    ``free_share = free / total``; fails when ``free_share < fail_below`` or ``free <
    min_free_bytes``, warns when ``free_share < warn_below``.  Defaults: warn below 10 % free, fail
    below 5 %.  Observes the used share in percent (``100 * used / total``); key
    ``<name>:utilization``; componentType ``system``.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ConfigError("path", path, "does not exist")
    for param, v in (("warn_below", warn_below), ("fail_below", fail_below)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
            raise ConfigError(param, v, "must be a share of the disk in [0, 1)")
    if fail_below > warn_below:
        raise ConfigError("fail_below", fail_below, f"must be <= warn_below ({warn_below})")
    if (
        isinstance(min_free_bytes, bool)
        or not isinstance(min_free_bytes, int)
        or min_free_bytes < 0
    ):
        raise ConfigError("min_free_bytes", min_free_bytes, "must be an integer >= 0")

    def usage() -> Result:
        u = shutil.disk_usage(p)
        used_pct = round(100.0 * u.used / u.total, 2) if u.total else 100.0
        share = u.free / u.total if u.total else 0.0
        if share < fail_below or u.free < min_free_bytes:
            why = (
                f"free {share:.1%} < {fail_below:.1%}"
                if share < fail_below
                else f"free {u.free} bytes < {min_free_bytes}"
            )
            return Result(Status.FAIL, used_pct, "percent", why)
        if share < warn_below:
            return Result(Status.WARN, used_pct, "percent", f"free {share:.1%} < {warn_below:.1%}")
        return Result(Status.PASS, used_pct, "percent")

    return _make(
        name,
        usage,
        {"measurement": "utilization", "component_type": "system"},
        options,
        in_thread=False,
    )


# --- event-loop lag -------------------------------------------------------------------------------


class LoopLagMonitor:
    """Measures how late one event loop runs its timers.

    A task sleeps ``interval`` seconds in a loop; each wake-up's lag is ``actual - interval``
    (clamped at 0): the time the loop spent running other callbacks (or blocked) past the timer.
    :meth:`take_peak` returns the largest lag since the previous call and resets it.
    """

    __slots__ = ("__weakref__", "interval", "last", "peak", "task")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.peak = 0.0
        self.last = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring in the running loop."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = time.monotonic
        interval = self.interval
        while True:
            t0 = clock()
            await asyncio.sleep(interval)
            lag = clock() - t0 - interval
            lag = max(lag, 0.0)
            self.last = lag
            self.peak = max(self.peak, lag)

    def take_peak(self) -> float:
        """The largest lag (seconds) since the last call; resets it."""
        p, self.peak = self.peak, 0.0
        return p


def event_loop_lag_check(
    *,
    warn_after: float = 0.1,
    fail_after: float = 1.0,
    interval: float = 0.05,
    name: str = "event_loop",
    **options: Unpack[CheckOptions],
) -> Check:
    """The peak event-loop lag since the last run (a :class:`LoopLagMonitor` per loop, started on
    the first run).  Warns at ``peak >= warn_after`` (default 0.1 s), fails at ``peak >=
    fail_after`` (default 1 s).  Observes the peak in ms; key ``<name>:lag``.

    A blocked loop is a liveness matter (the process is stuck); put this check in ``liveness``
    with a generous ``fail_after``, or in readiness to shed traffic while the loop is saturated.
    """
    for param, v in (
        ("warn_after", warn_after),
        ("fail_after", fail_after),
        ("interval", interval),
    ):
        check_seconds(param, v, gt=0)
    if warn_after > fail_after:
        raise ConfigError("warn_after", warn_after, f"must be <= fail_after ({fail_after})")
    monitors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLagMonitor] = (
        weakref.WeakKeyDictionary()
    )

    async def lag() -> Result:
        loop = asyncio.get_running_loop()
        mon = monitors.get(loop)
        if mon is None or mon.task is None or mon.task.done():
            mon = LoopLagMonitor(interval)
            mon.start()
            monitors[loop] = mon
        peak = mon.take_peak()
        if peak >= fail_after:
            return Result(Status.FAIL, _ms(peak), "ms", f"loop lag >= {fail_after:g}s")
        if peak >= warn_after:
            return Result(Status.WARN, _ms(peak), "ms", f"loop lag >= {warn_after:g}s")
        return Result(Status.PASS, _ms(peak), "ms")

    return _make(
        name, lag, {"measurement": "lag", "component_type": "system"}, options, in_thread=False
    )


# --- circuit breaker ------------------------------------------------------------------------------

_BREAKER_STATUS = {
    "closed": Status.PASS,
    "disabled": Status.PASS,
    "metrics_only": Status.PASS,
    "half_open": Status.WARN,
    "open": Status.FAIL,
    "forced_open": Status.FAIL,
}


def _breaker_state(breaker: object) -> str:
    state = getattr(breaker, "state", None)
    if state is None:
        state = getattr(breaker, "current_state", None)  # pybreaker's spelling
    if state is None:
        raise AttributeError("state")
    value = getattr(state, "value", state)
    if not isinstance(value, str):
        value = getattr(state, "name", None) or str(state)
    if not isinstance(value, str):
        value = str(getattr(value, "name", value))
    return value.lower().replace("-", "_").replace(" ", "_")


def breaker_check(
    breaker: object, *, name: str | None = None, **options: Unpack[CheckOptions]
) -> Check:
    """A circuit breaker's state, as a **non-critical** check by default.

    Any object with a readable ``state`` (or pybreaker's ``current_state``) whose value or name is
    ``closed`` / ``half_open`` / ``open`` works (Buttress's
    :class:`~buttress.policies.breaker.CircuitBreaker`, pybreaker, your own).  closed (also
    disabled, metrics_only) passes, half_open warns, open (forced_open) fails; an unknown state
    warns.  Because it is not critical, an open breaker makes readiness *warn* (HTTP 200): a
    breaker opens when a dependency fails, and pulling every instance out of the load balancer for
    that would turn a partial outage into a total one.

    Key ``<name>:state`` (``name`` defaults to the breaker's ``name`` attribute, else
    ``"breaker"``); observes the state name.
    """
    try:
        _breaker_state(breaker)
    except Exception:
        raise ConfigError(
            "breaker",
            type(breaker).__name__,
            "must have a readable .state (value or name 'closed', 'half_open' or 'open')",
        ) from None
    if name is None:
        own = getattr(breaker, "name", None)
        name = own if isinstance(own, str) and own and ":" not in own else "breaker"

    def state() -> Result:
        s = _breaker_state(breaker)
        status = _BREAKER_STATUS.get(s)
        if status is None:
            return Result(Status.WARN, s, None, "unknown breaker state")
        return Result(status, s, None, None if status is Status.PASS else f"breaker {s}")

    defaults: CheckOptions = {"measurement": "state", "critical": False}
    return _make(name, state, defaults, options, in_thread=False)
