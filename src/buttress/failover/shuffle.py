"""Shuffle sharding: each tenant gets a small subset of the endpoints, rarely the same as another's.

With ``n`` endpoints and shards of ``k``, plain partitioning makes ``n / k`` shards, and a tenant
that overloads or poisons its shard takes down every tenant of that shard.  Shuffle sharding
(Colm MacCárthaigh, *Workload isolation using shuffle-sharding*, Amazon Builders' Library) gives
each tenant one of the ``C(n, k)`` possible subsets instead: with 8 endpoints in shards of 2 there
are 28 of them against 4 partitions, so another tenant shares *both* of a noisy tenant's endpoints
with probability 1/28, and otherwise keeps at least one endpoint the noisy tenant cannot reach.

**The draw.**  A tenant's shard is the top ``k`` of a rendezvous ranking (highest random weight:
David Thaler and Chinya Ravishankar, *Using name-based mappings to increase hit rates*, IEEE/ACM
Transactions on Networking 6(1), 1998): every endpoint gets the score
``blake2b(salt, tenant NUL endpoint)`` (64 bits), and the ``k`` highest scores win (ties, which
need a 64-bit collision, go to the endpoint listed first).  So:

* it is **deterministic**: the same tenant, endpoints and salt give the same shard in every process,
  with no table to share;
* it is **uniform over the C(n, k) subsets**: the scores are independent and identically
  distributed, so every ``k``-subset is equally likely to hold the ``k`` highest
  (``tests/failover/test_shuffle.py`` checks the frequencies against the combinatorial figures);
* it is **stable**: removing an endpoint outside a tenant's shard leaves the shard unchanged, and
  adding one changes at most one member (the newcomer displaces the lowest-ranked), where
  ``hash mod C(n, k)`` would move almost every tenant whenever ``n`` changes.

**The odds.**  :func:`overlap_odds` gives the chance that two tenants drawn independently share
exactly ``j`` endpoints (hypergeometric: ``C(k, j) C(n - k, k - j) / C(n, k)``); ``j = k`` is
``1 / C(n, k)``.  Endpoints are identified by their names (or by their indices, given a count), so
a shard depends on the tenant's id, the endpoints' names and the salt, nothing else.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Sequence
from typing import TypeVar, overload

from buttress.errors import ConfigError
from buttress.options import check_integer

__all__ = ["overlap_odds", "shard_count", "shuffle_shard"]

T = TypeVar("T", bound=Hashable)


def _score(key: str, endpoint: str, salt: bytes) -> int:
    digest = hashlib.blake2b(f"{key}\0{endpoint}".encode(), digest_size=8, key=salt[:64]).digest()
    return int.from_bytes(digest, "big")


def _check(n: int, size: int) -> None:
    check_integer("size", size, ge=1)
    if size > n:
        raise ConfigError("size", size, f"must not exceed the number of endpoints ({n})")


@overload
def shuffle_shard(key: str, endpoints: int, size: int, *, salt: bytes = b"") -> list[int]: ...
@overload
def shuffle_shard(key: str, endpoints: Sequence[T], size: int, *, salt: bytes = b"") -> list[T]: ...
def shuffle_shard(
    key: str, endpoints: int | Sequence[T], size: int, *, salt: bytes = b""
) -> list[int] | list[T]:
    """The ``size`` endpoints of ``key``'s shuffle shard, in the order ``endpoints`` lists them.

    ``endpoints`` is a sequence of distinct endpoints (each identified by ``str(endpoint)``) or a
    count ``n`` (the indices ``0 .. n - 1``).  ``salt`` (up to 64 bytes) gives an independent
    placement, for a second sharded fleet say.  See the module docstring for the draw."""
    if not isinstance(key, str):
        raise ConfigError("key", key, "must be a string (a tenant id)")
    if not isinstance(salt, bytes) or len(salt) > 64:
        raise ConfigError("salt", salt, "must be at most 64 bytes")
    items: Sequence[int] | Sequence[T]
    if isinstance(endpoints, int):
        items = range(check_integer("endpoints", endpoints, ge=1))
    else:
        items = endpoints
        names = [str(e) for e in items]
        if len(set(names)) != len(names):
            raise ConfigError("endpoints", endpoints, "must be distinct (by name)")
    _check(len(items), size)
    ranked = sorted(range(len(items)), key=lambda i: (-_score(key, str(items[i]), salt), i))
    return [items[i] for i in sorted(ranked[:size])]  # type: ignore[return-value]


def shard_count(endpoints: int, size: int) -> int:
    """``C(endpoints, size)``: how many different shards there are."""
    check_integer("endpoints", endpoints, ge=1)
    _check(endpoints, size)
    return math.comb(endpoints, size)


def overlap_odds(endpoints: int, size: int) -> list[float]:
    """Entry ``j``: the chance that two independently drawn shards share exactly ``j`` endpoints
    (``j = 0 .. size``); the last is ``1 / shard_count(endpoints, size)``."""
    total = shard_count(endpoints, size)
    n, k = endpoints, size
    return [math.comb(k, j) * math.comb(n - k, k - j) / total for j in range(k + 1)]
