"""The redis-py clients :class:`~buttress.state.redis.RedisState` builds for itself: one server
(``url``), a Redis Cluster (``url`` of any node with ``cluster=True``) or a master found through
Redis Sentinel (``sentinels`` and ``master``).  Every part of the configuration is checked here,
before anything connects, and a bad one is a :class:`~buttress.errors.ConfigError` naming the
parameter.

All three are set up for *short* decisions that fail fast, since a failure only means the policy
decides by its ``on_unavailable`` rule until the next attempt:

* one server: one immediate retry on a connection error (a pooled connection is stale after a
  restart), never on a timeout (that would double a stalled server's cost);
* Sentinel: the same, and every new connection asks the sentinels for the master's address, so
  after a failover the first reconnect finds the new master; the sentinels themselves are asked
  with the same ``timeout``;
* Cluster: no retry inside redis-py (its retries also cover timeouts and ``CLUSTERDOWN``, each
  with a wait); :class:`~buttress.state.redis.link.Link` retries a connection error once, which
  runs the slot-map refresh redis-py asked for, so a decision after a completed failover goes to
  the new master without a fallback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from buttress.errors import ConfigError
from buttress.state.urls import check_redis_url, redact_url

__all__ = ["MASTER_CHECK_INTERVAL", "Built", "LazyCluster", "build_client", "check_sentinels"]


MASTER_CHECK_INTERVAL = 1.0
"""Seconds between two questions to the sentinels, on a decision's path, about where the master is
now (see :func:`_sentinel_client`)."""


class Built:
    """A client built from configuration, and what closing it closes."""

    __slots__ = ("client", "cluster", "extra", "watch")

    def __init__(
        self,
        client: Any,
        *,
        cluster: bool = False,
        extra: Any = None,
        watch: Callable[[], object] | None = None,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.extra = extra
        """A :class:`redis.sentinel.Sentinel` whose own clients are closed with ``client``."""
        self.watch = watch
        """Called every :data:`MASTER_CHECK_INTERVAL` by the link: follows a master that moved
        while the old one still answers."""

    def close(self) -> None:
        self.client.close()
        if self.extra is not None:
            self.extra.close()


def _host_port(entry: object) -> tuple[str, int]:
    """``("host", port)`` from a ``(host, port)`` pair or a ``"host:port"`` string."""
    if isinstance(entry, str):
        host, sep, port_text = entry.rpartition(":")
        if not sep or not port_text.isascii() or not port_text.isdigit():
            raise ValueError("a sentinel is 'host:port'")
        port: object = int(port_text)
        host = host.removeprefix("[").removesuffix("]")  # [::1]:26379
    elif isinstance(entry, tuple | list) and len(entry) == 2:
        host, port = entry[0], entry[1]
    else:
        raise ValueError("a sentinel is a (host, port) pair or a 'host:port' string")
    if not isinstance(host, str) or not host.strip():
        raise ValueError("a sentinel's host must be a non-empty string")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("a sentinel's port must be an integer in 1..65535")
    return host, port


def check_sentinels(sentinels: object) -> list[tuple[str, int]]:
    """The sentinels as ``(host, port)`` pairs, or :class:`~buttress.errors.ConfigError` for
    ``sentinels``."""
    if isinstance(sentinels, str | bytes) or not isinstance(sentinels, Sequence) or not sentinels:
        raise ConfigError(
            "sentinels",
            sentinels,
            "must be a non-empty list of (host, port) pairs or 'host:port' strings",
        )
    nodes: list[tuple[str, int]] = []
    for i, entry in enumerate(sentinels):
        try:
            nodes.append(_host_port(entry))
        except ValueError as exc:
            raise ConfigError("sentinels", sentinels, f"entry {i} ({entry!r}): {exc}") from None
    return nodes


def build_client(
    redis: Any, *, url: str | None, cluster: bool, sentinels: object, master: object, timeout: float
) -> Built:
    """The client the configuration names (``url`` alone, ``url`` with ``cluster``, or
    ``sentinels`` with ``master``), checked first: no connection is made here."""
    if not isinstance(cluster, bool):
        raise ConfigError("cluster", cluster, "must be true or false")
    if sentinels is None:
        if master is not None:
            raise ConfigError("master", master, "applies only with sentinels")
        if cluster:
            return _cluster_client(redis, url, timeout)
        return Built(_url_client(redis, url, timeout))
    if url is not None:
        raise ConfigError(
            "url",
            redact_url(url),
            "give url or sentinels, not both (the sentinels say where the master is)",
        )
    if cluster:
        raise ConfigError("cluster", cluster, "a Redis Cluster is not reached through sentinels")
    nodes = check_sentinels(sentinels)
    if not isinstance(master, str) or not master.strip():
        raise ConfigError(
            "master", master, "sentinels need the master's name as they monitor it (mymaster)"
        )
    return _sentinel_client(redis, nodes, master, timeout)


def _connection_retry(redis: Any) -> Any:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One immediate retry, on a *connection* error only: a pooled connection may be stale after a
    # Redis restart or a failover (the retry reconnects).  Never on a timeout: a stalled server
    # would cost two timeouts per decision instead of one.
    return Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,))


def _url_client(redis: Any, url: object, timeout: float) -> Any:
    url = check_redis_url(url)  # port, db and socket path read now; ConfigError shows no secret
    try:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=_connection_retry(redis),
            health_check_interval=0,
        )
        # from_url parses lazily in places (the port); make every part of the URL be read now.
        kw = client.connection_pool.connection_kwargs
        if "path" not in kw:
            int(kw.get("port", 6379))
            str(kw.get("host", ""))
    except (ValueError, TypeError):
        raise ConfigError("url", redact_url(url), "is not a Redis URL redis-py accepts") from None
    return client


def _cluster_client(redis: Any, url: object, timeout: float) -> Built:
    url = check_redis_url(url)
    shown = redact_url(url)
    if url.startswith("unix:"):
        raise ConfigError("url", shown, "a Redis Cluster is reached over TCP (redis://host:port)")
    probe = redis.Redis.from_url(url)  # parses only: the database, wherever the URL gives it
    if probe.connection_pool.connection_kwargs.get("db", 0) not in (0, "0"):
        raise ConfigError("url", shown, "a Redis Cluster has database 0 only")
    return Built(LazyCluster(redis, url, timeout), cluster=True)


class LazyCluster:
    """A :class:`redis.cluster.RedisCluster` made on first use.  redis-py's cluster client reads
    the slot map as it is built, so building it at once would make a service that starts while
    the cluster is down fail at start; instead the first decision builds it, and a failure is one
    more error the store falls back on (and the next attempt builds it again)."""

    __slots__ = ("_redis", "_timeout", "_url", "real")

    def __init__(self, redis: Any, url: str, timeout: float) -> None:
        self._redis = redis
        self._url = url
        self._timeout = timeout
        self.real: Any = None
        """The :class:`redis.cluster.RedisCluster`, once built."""

    def __repr__(self) -> str:
        return f"LazyCluster({redact_url(self._url)!r})"

    def connect(self) -> Any:
        """The cluster client, built now if need be (raises a redis-py error if no node
        answers)."""
        timeout = self._timeout
        if self.real is None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            redis = self._redis
            options: dict[str, Any] = {}
            if "topology_refresh_min_interval" in _cluster_parameters(redis):
                # redis-py paces the slot-map refreshes that errors ask for (1 s by default),
                # which would delay the first decision on a promoted replica by up to that much;
                # the link already paces attempts (one per retry_interval while Redis is down).
                options["topology_refresh_min_interval"] = 0
            try:
                self.real = redis.RedisCluster.from_url(
                    self._url,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                    health_check_interval=0,
                    **options,
                )
            except redis.exceptions.RedisClusterException as exc:
                # Not a RedisError: say it as one, so that it is a fallback like any other; and
                # not a ConnectionError, which the link retries at once (no node answered: the
                # retry would only wait for them again).
                raise redis.exceptions.RedisError(f"no cluster node answered: {exc}") from None
        return self.real

    def execute_command(self, *args: Any) -> Any:
        return self.connect().execute_command(*args)

    def ping(self) -> bool:
        return bool(self.connect().ping())

    def close(self) -> None:
        if self.real is not None:
            self.real.close()
            self.real = None


def _cluster_parameters(redis: Any) -> frozenset[str]:
    """The keyword parameters of this redis-py's ``RedisCluster`` (they vary by version)."""
    import inspect

    return frozenset(inspect.signature(redis.RedisCluster.__init__).parameters)


def _sentinel_client(
    redis: Any, nodes: list[tuple[str, int]], master: str, timeout: float
) -> Built:
    from redis.sentinel import Sentinel

    socket: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = Sentinel(nodes, sentinel_kwargs=dict(socket), **socket)
    client = sentinel.master_for(
        master, retry=_connection_retry(redis), health_check_interval=0, **socket
    )
    # redis-py asks the sentinels where the master is when it opens a connection, and a failed
    # call reconnects; but after a switchover (SENTINEL FAILOVER, or a partition that heals) the
    # old master keeps answering as a master until the sentinels demote it, some 10 s later, and
    # pooled connections would keep deciding there, apart from the processes that connected
    # since.  Asking again every second closes the idle connections once the address changed.
    return Built(client, extra=sentinel, watch=client.connection_pool.get_master_address)
