"""The default state store: everything in this process.

Each scope gets the policies' own in-memory stores (the breaker's
:class:`~buttress.policies.breaker.MemoryBreakerStore`, a
:class:`~buttress.policies.ratelimit.MemoryBucketStore`, a
:class:`~buttress.policies.budget.RetryBudget` or
:class:`~buttress.policies.budget.TokenBucketBudget`), so choosing ``MemoryState`` costs nothing on
any path: the policies' lock-free fast paths stay in place.  Nothing can be unavailable, so
``on_unavailable`` is accepted and checked but never used.
"""

from __future__ import annotations

from typing import ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.policies.breaker import BreakerStore
from buttress.policies.budget import Budget, RetryBudget, TokenBucketBudget
from buttress.policies.ratelimit import BucketStore, MemoryBucketStore

from .base import OnUnavailable, StateStore, check_on_unavailable, check_scope

__all__ = ["MemoryState"]


class MemoryState(StateStore):
    """State kept in this process (the default): per-process breakers, buckets and budgets."""

    backend: ClassVar[str] = "memory"

    def __repr__(self) -> str:
        return "MemoryState()"

    def breaker_store(
        self, scope: str, *, on_unavailable: OnUnavailable | None = None
    ) -> BreakerStore | None:
        _check(scope, on_unavailable)
        return None  # the breaker builds its MemoryBreakerStore around its own window

    def bucket_store(
        self,
        scope: str,
        *,
        max_keys: int = 10_000,
        local_share: float | None = None,
        on_unavailable: OnUnavailable | None = None,
    ) -> BucketStore:
        _check(scope, on_unavailable)
        return MemoryBucketStore(max_keys)

    def retry_budget(
        self,
        scope: str,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        slices: int = 10,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> Budget:
        _check(scope, on_unavailable)
        return RetryBudget(
            ratio=ratio, min_per_second=min_per_second, ttl=ttl, slices=slices, clock=clock
        )

    def token_bucket_budget(
        self,
        scope: str,
        *,
        max_tokens: float = 10.0,
        token_ratio: float = 0.1,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> Budget:
        _check(scope, on_unavailable)
        return TokenBucketBudget(max_tokens=max_tokens, token_ratio=token_ratio)


def _check(scope: str, on_unavailable: OnUnavailable | None) -> None:
    check_scope(scope)
    if on_unavailable is not None:
        check_on_unavailable("on_unavailable", on_unavailable)
