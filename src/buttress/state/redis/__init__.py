"""Shared state on Redis: breakers, rate limits and retry budgets that hold fleet-wide.

Every decision is **one round trip**: an ``EVALSHA`` of a Lua script (``scripts/*.lua``) that reads,
decides and writes atomically.  A server that does not know a script answers ``NOSCRIPT`` (a
restart, ``SCRIPT FLUSH``, a replica just promoted): the call is sent once more as ``EVAL`` with the
script's text, which caches it there.  Scripts read the server's ``TIME``, so replicas with
skewed clocks agree on break ends, bucket refills and budget windows.

Keys (``S`` = ``<service>/<scope>``; the braces are a Redis Cluster hash tag, so the keys of one
breaker or one budget live on one node)::

    <prefix>:{S}:b       hash     breaker state, counters and time-window buckets
    <prefix>:{S}:r       string   breaker count window: one byte per call
    <prefix>:S:rl[:key]  string   rate-limit bucket (its TAT); per key, spread over the cluster
    <prefix>:{S}:rb      hash     ratio retry budget: a ring of slices + 2 time slices
    <prefix>:{S}:tb      hash     token-bucket retry budget

Every write sets a TTL: breakers and budgets ``ttl`` (default one day, renewed by each decision),
rate-limit buckets the time until they are full again (after which forgetting them changes nothing).

**Local decisions, shared advice.**  Calls use a short ``timeout`` (default 50 ms).  An error (a
refused or timed-out connection, ``READONLY``, ``OOM``, ``WRONGTYPE``, any Redis error) marks the
connection *down* for ``retry_interval`` (default 1 s): meanwhile each policy decides by its
``on_unavailable`` rule without touching the network; then the next decision tries Redis again.
See :mod:`buttress.state.base` for the rules and the events.  Nothing raises into the caller.

**How long a decision can wait.**  A decision is one ``EVALSHA`` on a pooled connection: it waits
at most ``timeout`` for the answer, plus at most ``timeout`` to connect when it must open a
connection first.  A *stalled* Redis (a stopped process, a full ``SLOWLOG`` of work, a dropped
link) accepts or keeps the connection and never answers, so the decision that finds it costs one
``timeout`` (50 ms by default) and the decisions after it, for ``retry_interval``, none.  A timeout
is never retried (that would double the wait); a *connection* error is retried once at once, since a
pooled connection is stale after a Redis restart and the retry reconnects.

**Blocking.**  Calls use redis-py's synchronous client, also from the policies' asyncio layers
(the store interface is synchronous: a breaker decides under its lock).  In an ``async def``
pipeline a decision therefore blocks the event loop for one round trip: well under a millisecond on
a healthy LAN, and at most the bound above (``timeout``, 50 ms) when Redis stalls, once per
``retry_interval``.  Keep ``timeout`` short for that reason.

**Modules.** :mod:`.link` (the shared connection, the scripts, the outage bookkeeping every store
shares), :mod:`.breaker`, :mod:`.bucket` and :mod:`.budget` (one store each), :mod:`.factory`
(:class:`RedisState`, which hands them out), :mod:`.clients` (the redis-py client for one server, a
Redis Cluster or a Sentinel-managed master).
"""

from __future__ import annotations

from .breaker import BREAKS_PRECOMPUTED, RedisBreakerStore
from .bucket import RedisBucketStore
from .budget import SharedRetryBudget, SharedTokenBucketBudget
from .factory import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_RETRY_INTERVAL,
    DEFAULT_TIMEOUT,
    DEFAULT_TTL,
    EPOCH,
    RedisState,
)

__all__ = [
    "BREAKS_PRECOMPUTED",
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_RETRY_INTERVAL",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TTL",
    "EPOCH",
    "RedisBreakerStore",
    "RedisBucketStore",
    "RedisState",
    "SharedRetryBudget",
    "SharedTokenBucketBudget",
]
