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

from buttress.policies.breaker import BreakerStore
from buttress.policies.budget import Budget, RetryBudget, TokenBucketBudget
from buttress.policies.ratelimit import BucketStore, MemoryBucketStore

from .base import OnUnavailable, StateStore

__all__ = ["MemoryState"]


class MemoryState(StateStore):
    """State kept in this process (the default): per-process breakers, buckets and budgets."""

    backend: ClassVar[str] = "memory"

    def __repr__(self) -> str:
        return "MemoryState()"

    def make_breaker_store(self, scope: str, mode: OnUnavailable) -> BreakerStore | None:
        return None  # the breaker builds its MemoryBreakerStore around its own window

    def make_bucket_store(
        self, scope: str, mode: OnUnavailable, max_keys: int, local_share: float | None
    ) -> BucketStore:
        return MemoryBucketStore(max_keys)

    def make_retry_budget(
        self, scope: str, mode: OnUnavailable, local: RetryBudget, slices: int
    ) -> Budget:
        return local

    def make_token_bucket_budget(
        self, scope: str, mode: OnUnavailable, local: TokenBucketBudget
    ) -> Budget:
        return local
