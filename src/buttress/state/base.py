"""The state-store interface: where the circuit breaker, the rate limiter and the retry budget keep
their mutable state.

A :class:`StateStore` is a factory.  Given a *scope* (a name unique within the service, such as
``"payments/circuit_breaker"``) it hands out the narrow store each policy already decides through:

==========================  =====================================================================
policy                      store (one atomic step per decision)
==========================  =====================================================================
:class:`CircuitBreaker`     :class:`~buttress.policies.breaker.BreakerStore` (``atomically``)
:class:`RateLimiter`        :class:`~buttress.policies.ratelimit.BucketStore` (``acquire``)
:class:`Retry` / hedges     a :class:`~buttress.policies.budget.Budget`
==========================  =====================================================================

:class:`~buttress.state.memory.MemoryState` (the default) keeps everything in this process;
:class:`~buttress.state.redis.RedisState` shares it through Redis, one round trip per decision.

**When the shared store is unavailable** (unreachable, slow beyond its timeout, or answering with
an error such as ``READONLY``, ``OOM`` or ``WRONGTYPE``), each policy keeps deciding by an explicit
rule, :data:`OnUnavailable`, chosen per policy:

``local`` (default)
    decide from this process's own state, exactly as the in-memory store would (the breaker's own
    window and transitions, a local bucket at ``local_share`` of the rate, a local budget that has
    seen every deposit made here all along);
``fail_open``
    admit every call (breaker permits, limiter admits, budget grants);
``fail_closed``
    refuse every call (:class:`~buttress.errors.CircuitOpen` / :class:`~buttress.errors.RateLimited`
    with ``retry_after`` = time until the store is tried again; the budget grants no retry).

The first fallback emits :class:`StateUnavailable` and the first decision taken by the shared store
again emits :class:`StateRestored`; nothing is ever raised into the caller's code.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Literal, get_args

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.events import Event
from buttress.policies.breaker import BreakerStore
from buttress.policies.budget import (
    Budget,
    RetryBudget,
    RetryBudgetOptions,
    TokenBucketBudget,
    TokenBucketOptions,
)
from buttress.policies.ratelimit import BucketStore

__all__ = [
    "POLICY_KINDS",
    "OnUnavailable",
    "StateRestored",
    "StateStore",
    "StateUnavailable",
    "check_on_unavailable",
    "check_scope",
]

OnUnavailable = Literal["local", "fail_open", "fail_closed"]
"""What a policy does while its shared store is unavailable (see the module docstring)."""

POLICY_KINDS = ("circuit_breaker", "rate_limiter", "retry_budget")
"""The policies that keep state in a store; ``on_unavailable`` mappings are keyed by these."""

_MODES = get_args(OnUnavailable)


def check_on_unavailable(parameter: str, value: object) -> OnUnavailable:
    """``value`` as an :data:`OnUnavailable`, or :class:`~buttress.errors.ConfigError`."""
    if value not in _MODES:
        raise ConfigError(parameter, value, f"must be one of {', '.join(map(repr, _MODES))}")
    return value  # type: ignore[return-value]


def check_scope(scope: object) -> str:
    """A scope is a non-empty string without braces (they are Redis Cluster hash tags)."""
    if not isinstance(scope, str) or not scope or "{" in scope or "}" in scope:
        raise ConfigError("scope", scope, "must be a non-empty string without '{' or '}'")
    return scope


def resolve_modes(value: OnUnavailable | Mapping[str, OnUnavailable]) -> dict[str, OnUnavailable]:
    """One mode for every policy kind, or a mapping by kind (missing kinds: ``local``)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(POLICY_KINDS))
        if unknown:
            raise ConfigError(
                "on_unavailable", dict(value), f"unknown policy {unknown[0]!r}; use {POLICY_KINDS}"
            )
        return {
            k: check_on_unavailable(f"on_unavailable.{k}", value.get(k, "local"))
            for k in POLICY_KINDS
        }
    mode = check_on_unavailable("on_unavailable", value)
    return dict.fromkeys(POLICY_KINDS, mode)


@dataclass(frozen=True, slots=True)
class StateUnavailable(Event, policy_type="state", kind="unavailable"):
    """A policy's shared store failed; it now decides by ``fallback`` (its :data:`OnUnavailable`).

    ``pipeline`` is the store's scope, ``policy`` the policy kind, ``error`` what the store said.
    """

    backend: str
    error: str
    fallback: str


@dataclass(frozen=True, slots=True)
class StateRestored(Event, policy_type="state", kind="restored"):
    """The shared store answers again; the policy decides through it.  ``down_for``: seconds of
    fallback (on the policy's clock)."""

    backend: str
    down_for: float


class StateStore(abc.ABC):
    """Hands out the stores policies keep their state in, one per *scope*.

    A scope names one policy instance within the service (``"<pipeline>/<policy>"`` when built
    from ``reliability.yaml``); two processes using the same scope (and service) share state.

    The four factory methods check their arguments and build the policy's own local state, once,
    here; a backend says only what it adds, in the ``make_*`` hooks they call.
    """

    backend: ClassVar[str] = "state"
    modes: Mapping[str, OnUnavailable] = MappingProxyType(dict.fromkeys(POLICY_KINDS, "local"))
    """The :data:`OnUnavailable` rule of each policy kind when a factory method is given none."""

    def breaker_store(
        self, scope: str, *, on_unavailable: OnUnavailable | None = None
    ) -> BreakerStore | None:
        """A store for one :class:`~buttress.policies.breaker.CircuitBreaker`, passed as its
        ``store=``; ``None`` means the breaker's own in-memory store."""
        scope = check_scope(scope)
        return self.make_breaker_store(scope, self.mode_for("circuit_breaker", on_unavailable))

    def bucket_store(
        self,
        scope: str,
        *,
        max_keys: int = 10_000,
        local_share: float | None = None,
        on_unavailable: OnUnavailable | None = None,
    ) -> BucketStore:
        """A store for one :class:`~buttress.policies.ratelimit.RateLimiter` (every key's bucket).

        ``local_share``: the fraction of the rate one process may use when it decides locally
        (``1 / replicas`` keeps the fleet at the limit during an outage).  Default: the state
        store's own default (1).
        """
        scope = check_scope(scope)
        mode = self.mode_for("rate_limiter", on_unavailable)
        return self.make_bucket_store(scope, mode, max_keys, local_share)

    def retry_budget(
        self,
        scope: str,
        *,
        ratio: float = RetryBudgetOptions.ratio,
        min_per_second: float = RetryBudgetOptions.min_per_second,
        ttl: float = RetryBudgetOptions.ttl,
        slices: int = RetryBudgetOptions.slices,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> Budget:
        """A Finagle-style ratio budget (:class:`~buttress.policies.budget.RetryBudget` rules)."""
        scope = check_scope(scope)
        mode = self.mode_for("retry_budget", on_unavailable)
        local = RetryBudget(
            ratio=ratio, min_per_second=min_per_second, ttl=ttl, slices=slices, clock=clock
        )
        return self.make_retry_budget(scope, mode, local, slices)

    def token_bucket_budget(
        self,
        scope: str,
        *,
        max_tokens: float = TokenBucketOptions.max_tokens,
        token_ratio: float = TokenBucketOptions.token_ratio,
        clock: Clock = SYSTEM_CLOCK,
        on_unavailable: OnUnavailable | None = None,
    ) -> Budget:
        """A gRPC-style token bucket budget (:class:`~buttress.policies.budget.TokenBucketBudget`
        rules)."""
        scope = check_scope(scope)
        mode = self.mode_for("retry_budget", on_unavailable)
        local = TokenBucketBudget(max_tokens=max_tokens, token_ratio=token_ratio)
        return self.make_token_bucket_budget(scope, mode, local)

    def mode_for(self, kind: str, value: OnUnavailable | None) -> OnUnavailable:
        """The rule for a policy of ``kind``: ``value`` (checked), or this store's default."""
        if value is None:
            return self.modes[kind]
        return check_on_unavailable("on_unavailable", value)

    # -- what a backend adds (scope and mode checked; the local state built) -----------------------

    @abc.abstractmethod
    def make_breaker_store(self, scope: str, mode: OnUnavailable) -> BreakerStore | None:
        """The breaker's store (``None``: its own in-memory one)."""

    @abc.abstractmethod
    def make_bucket_store(
        self, scope: str, mode: OnUnavailable, max_keys: int, local_share: float | None
    ) -> BucketStore:
        """The rate limiter's store of ``max_keys`` buckets."""

    @abc.abstractmethod
    def make_retry_budget(
        self, scope: str, mode: OnUnavailable, local: RetryBudget, slices: int
    ) -> Budget:
        """The ratio budget around ``local`` (built with ``slices``), or ``local`` itself."""

    @abc.abstractmethod
    def make_token_bucket_budget(
        self, scope: str, mode: OnUnavailable, local: TokenBucketBudget
    ) -> Budget:
        """The token bucket budget around ``local``, or ``local`` itself."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release in memory
        """Release connections (idempotent)."""
