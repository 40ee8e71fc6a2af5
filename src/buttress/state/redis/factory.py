"""The Redis state store itself: :class:`RedisState`, the factory of the shared stores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.policies.budget import RetryBudget, TokenBucketBudget
from buttress.state.base import OnUnavailable, StateStore, resolve_modes
from buttress.state.urls import redact_url

from .breaker import RedisBreakerStore
from .bucket import RedisBucketStore, check_share
from .budget import SharedRetryBudget, SharedTokenBucketBudget
from .clients import MASTER_CHECK_INTERVAL, Built, build_client
from .link import Link, Where, import_redis

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "EPOCH",
    "RedisState",
]

DEFAULT_TIMEOUT = 0.05
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_TTL = 86_400.0
DEFAULT_FLUSH_INTERVAL = 0.1
EPOCH = 1_700_000_000
"""Scripts count time in seconds since this Unix time, so a double keeps microseconds."""


def _seconds(parameter: str, value: object, *, zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero else value > 0)
        or not value < math.inf
    ):
        bound = ">= 0" if zero else "> 0"
        raise ConfigError(parameter, value, f"must be a finite number of seconds {bound}")
    return float(value)


class RedisState(StateStore):
    """State shared through Redis (``pip install 'buttress[redis]'``).

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://...`` (TLS) or
        ``unix:///path.sock``.  Parsed now; the first connection is made by the first decision.
    :param client: instead of ``url``: any redis-py client (``Redis``, ``RedisCluster``, or a
        Sentinel's ``master_for(...)``); its own timeouts and retries apply.
    :param cluster: ``url`` is one node of a Redis Cluster (``redis://`` or ``rediss://``,
        database 0); the slot map is read from it by the first decision.  Default ``False``.
    :param sentinels: instead of ``url``: Redis Sentinel's addresses, ``[("10.0.0.1", 26379),
        ...]`` or ``["10.0.0.1:26379", ...]``; each new connection asks them where ``master`` is,
        so a failover is followed.
    :param master: with ``sentinels``: the name the sentinels monitor the master by.
    :param service: the service name, the first part of every key.  Default ``"default"``.
    :param prefix: the key prefix.  Default ``"buttress"``.
    :param timeout: socket timeout per call, seconds.  Default 0.05.
    :param retry_interval: after a failure, seconds before Redis is tried again.  Default 1.
    :param ttl: seconds an untouched breaker or budget is kept.  Default 86,400 (a day).
    :param on_unavailable: ``local`` (default), ``fail_open`` or ``fail_closed``, or a mapping by
        policy kind (``circuit_breaker``, ``rate_limiter``, ``retry_budget``).
    :param flush_interval: the budgets' batching interval, seconds.  Default 0.1.
    :param local_share: the fraction of a rate limit one process uses while it decides locally
        (``local`` rule); ``1 / replicas`` keeps the fleet at the limit.  Default 1.
    :param server_time: read time from Redis (``TIME``, default).  ``False`` sends the policies'
        clock readings instead: only for tests on a fake clock within one process.
    :param clock: the clock of the outage timers and events.
    """

    backend: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        cluster: bool = False,
        sentinels: Sequence[tuple[str, int] | str] | None = None,
        master: str | None = None,
        service: str = "default",
        prefix: str = "buttress",
        timeout: float = DEFAULT_TIMEOUT,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        ttl: float = DEFAULT_TTL,
        on_unavailable: OnUnavailable | Mapping[str, OnUnavailable] = "local",
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        local_share: float = 1.0,
        server_time: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        redis = import_redis()
        self.local_share = check_share(local_share)
        self.timeout = _seconds("timeout", timeout)
        self.retry_interval = _seconds("retry_interval", retry_interval, zero=True)
        self.ttl = _seconds("ttl", ttl)
        self.flush_interval = _seconds("flush_interval", flush_interval, zero=True)
        self.modes = resolve_modes(on_unavailable)
        for name, value in (("service", service), ("prefix", prefix)):
            if not isinstance(value, str) or not value or "{" in value or "}" in value:
                raise ConfigError(name, value, "must be a non-empty string without '{' or '}'")
        self.service = service
        self.prefix = prefix
        self.server_time = bool(server_time)
        self.clock = clock
        self.url = url
        self.master = master
        self._built: Built | None = None
        if client is None:
            if url is None and sentinels is None:
                raise ConfigError("url", None, "give a Redis URL, sentinels or a client")
            self._built = build_client(
                redis,
                url=url,
                cluster=cluster,
                sentinels=sentinels,
                master=master,
                timeout=self.timeout,
            )
            client, cluster = self._built.client, self._built.cluster
        else:
            if url is not None or sentinels is not None:
                given = "url" if url is not None else "sentinels"
                shown = redact_url(url) if url is not None else sentinels
                raise ConfigError(given, shown, "give a Redis URL, sentinels or a client: one")
            if cluster:
                raise ConfigError("cluster", cluster, "applies to a url, not a client")
            if master is not None:
                raise ConfigError("master", master, "applies to sentinels, not a client")
            cluster = type(client).__name__ == "RedisCluster"
        self.client = client
        self.cluster = cluster
        """Whether the keys are spread over a Redis Cluster."""
        # A client given keeps its own retries; only one built here leaves them to the link.
        own_cluster = cluster and self._built is not None
        self._link = Link(
            client,
            self.retry_interval,
            clock,
            cluster=own_cluster,
            watch=self._built.watch if self._built is not None else _sentinel_watch(client),
            watch_interval=MASTER_CHECK_INTERVAL,
        )

    def __repr__(self) -> str:
        if self.url is not None:
            where = redact_url(self.url) + (" (cluster)" if self.cluster else "")
        elif self.master is not None:
            where = f"sentinel master {self.master}"
        else:
            where = type(self.client).__name__
        return f"RedisState({where!r}, service={self.service!r})"

    @property
    def available(self) -> bool:
        """``False`` while the stores decide without Redis (until the next attempt)."""
        return self._link.down_until <= self._link.mono()

    def ping(self) -> bool:
        """Whether Redis answers ``PING`` now (never raises).  On a cluster it also builds the
        cluster client (the slot map and command table, some 40 ms), which the first decision
        would otherwise do: call it at start to keep that off the first request."""
        try:
            return bool(self.client.ping())
        except self._link.errors:
            return False

    def close(self) -> None:
        if self._built is not None:
            self._built.close()

    def _tagged(self, scope: str) -> str:
        return f"{self.prefix}:{{{self.service}/{scope}}}"

    def _where(self, key: str, scope: str, mode: OnUnavailable) -> Where:
        return Where(self._link, key, scope, mode, self.server_time)

    def make_breaker_store(self, scope: str, mode: OnUnavailable) -> RedisBreakerStore:
        return RedisBreakerStore(self._where(self._tagged(scope), scope, mode), ttl=self.ttl)

    def make_bucket_store(
        self, scope: str, mode: OnUnavailable, max_keys: int, local_share: float | None
    ) -> RedisBucketStore:
        return RedisBucketStore(
            self._where(f"{self.prefix}:{self.service}/{scope}:rl", scope, mode),
            max_keys=max_keys,
            local_share=self.local_share if local_share is None else local_share,
        )

    def make_retry_budget(
        self, scope: str, mode: OnUnavailable, local: RetryBudget, slices: int
    ) -> SharedRetryBudget:
        return SharedRetryBudget(
            self._where(f"{self._tagged(scope)}:rb", scope, mode),
            local=local,
            slices=slices,
            flush_interval=self.flush_interval,
        )

    def make_token_bucket_budget(
        self, scope: str, mode: OnUnavailable, local: TokenBucketBudget
    ) -> SharedTokenBucketBudget:
        return SharedTokenBucketBudget(
            self._where(f"{self._tagged(scope)}:tb", scope, mode),
            local=local,
            flush_interval=self.flush_interval,
            ttl=self.ttl,
        )


def _sentinel_watch(client: Any) -> Any:
    """A Sentinel-managed client given as ``client=`` follows a moved master as ours do (see
    :mod:`.clients`): its pool's master lookup, or ``None`` for any other client."""
    from redis.sentinel import SentinelConnectionPool

    pool = getattr(client, "connection_pool", None)
    return pool.get_master_address if isinstance(pool, SentinelConnectionPool) else None
