"""Retry budgets shared on Redis: :class:`SharedRetryBudget` (Finagle's ratio) and
:class:`SharedTokenBucketBudget` (gRPC's ``retryThrottling``).

Both count locally and send their counts in batches, one round trip per batch, to the script
``scripts/budget.lua``; a local budget hears everything too and decides for the ``local`` rule
while Redis is unavailable.
"""

from __future__ import annotations

import math
import threading
from typing import Any, ClassVar

from buttress.policies.budget import Budget, RetryBudget, TokenBucketBudget

from .link import DOWN, SharedStore, Where

__all__ = ["SharedRetryBudget", "SharedTokenBucketBudget"]


class _Batching(SharedStore):
    """What both budgets share: counts kept here and sent in batches, a lock around the counts,
    and the :data:`~buttress.state.base.OnUnavailable` rule for a retry Redis did not decide."""

    kind: ClassVar[str] = "retry_budget"

    __slots__ = ("_flush_at", "_lock", "flush_interval", "local")

    local: Budget

    def __init__(self, where: Where, local: Budget, flush_interval: float) -> None:
        super().__init__(where)
        self.local = local
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._flush_at = -math.inf

    def _withdraw_unshared(self, now: float) -> bool:
        if self.mode == "fail_open":
            return True
        if self.mode == "fail_closed":
            return False
        return self.local.try_withdraw(now)


class SharedRetryBudget(_Batching):
    """Finagle's ratio budget (:class:`~buttress.policies.budget.RetryBudget` rules), fleet-wide.

    Deposits (one per original call) are counted locally and sent in batches: at most every
    ``flush_interval`` seconds (default 0.1) and with every :meth:`try_withdraw`, which is one
    round trip.  A batch is filed at the time of its *oldest* deposit, so no deposit is counted
    for longer than it stays in the window: over any ``ttl`` window ending at a grant, fleet-wide::

        retries granted <= ratio * requests + min_per_second * ttl

    (the reserve ``min_per_second * ttl`` is the fleet's, not each process's).  Deposits not yet
    sent are not counted, which only lowers what is granted.  A local
    :class:`~buttress.policies.budget.RetryBudget` sees every deposit made here, and decides for
    ``local`` while Redis is unavailable.
    """

    counts_requests = True
    counts_outcomes = False

    __slots__ = ("_args", "_oldest", "_pending")

    local: RetryBudget

    def __init__(
        self, where: Where, *, local: RetryBudget, slices: int, flush_interval: float
    ) -> None:
        super().__init__(where, local, flush_interval)
        self._pending = 0
        self._oldest = 0.0
        lb = local
        self._args = (
            repr(lb.ttl / slices),
            slices,
            repr(lb.ratio),
            repr(lb.reserve),
            math.ceil(lb.ttl * 2) + 1,
        )

    def __repr__(self) -> str:
        lb = self.local
        return (
            f"SharedRetryBudget(scope={self.scope!r}, ratio={lb.ratio:g}, "
            f"min_per_second={lb.min_per_second:g}, ttl={lb.ttl:g})"
        )

    def on_request(self, now: float) -> None:
        self.local.on_request(now)
        # A lost increment under a race only lowers the deposits counted (never over-grants).
        if not self._pending:
            self._oldest = now
        self._pending += 1
        if now >= self._flush_at:
            self._sync(now, False)

    def on_success(self) -> None:  # pragma: no cover - counts_outcomes is False
        pass

    def on_failure(self) -> None:  # pragma: no cover - counts_outcomes is False
        pass

    def try_withdraw(self, now: float) -> bool:
        """One retry if the fleet's window allows it (one round trip)."""
        r = self._sync(now, True)
        if r is not None:
            return bool(r[0] == 1)
        return self._withdraw_unshared(now)

    def balance(self, now: float | None = None) -> float:
        """Retries the fleet's budget could grant now (sends pending deposits; one round trip).
        The local budget's balance while Redis is unavailable."""
        if now is None:
            now = self.link.mono()
        r = self._sync(now, False)
        return float(r[1]) if r is not None else self.local.balance(now)

    def _sync(self, now: float, withdraw: bool) -> list[Any] | None:
        with self._lock:
            n = self._pending
            age = max(0.0, now - self._oldest) if n else 0.0
            self._pending = 0
            self._flush_at = now + self.flush_interval
        link = self.link
        r = self.ask(
            link.run,
            link.scripts["budget"],
            1,
            self.key,
            b"ratio",
            b"" if self.server_time else repr(now),
            *self._args,
            n,
            repr(age),
            1 if withdraw else 0,
        )
        if r is not DOWN:
            answer: list[Any] = r
            return answer
        # Keep the batch for when Redis returns (the window drops whatever is too old by then).
        with self._lock:
            if n:
                if not self._pending or now - age < self._oldest:
                    self._oldest = now - age
                self._pending += n
        return None


class SharedTokenBucketBudget(_Batching):
    """gRPC's ``retryThrottling`` (:class:`~buttress.policies.budget.TokenBucketBudget` rules),
    fleet-wide: one token count, in thousandths, for every process.

    Outcomes are counted locally and sent in batches (every ``flush_interval`` seconds and with each
    :meth:`try_withdraw`, one round trip); a batch applies its successes, then its failures (the
    order that leaves the fewest tokens).  A local
    :class:`~buttress.policies.budget.TokenBucketBudget` hears every outcome and decides for
    ``local`` while Redis is unavailable.
    """

    counts_requests = False
    counts_outcomes = True

    __slots__ = ("_args", "_fail", "_succ", "_ttl", "shared_tokens")

    local: TokenBucketBudget

    def __init__(
        self, where: Where, *, local: TokenBucketBudget, flush_interval: float, ttl: float
    ) -> None:
        super().__init__(where, local, flush_interval)
        self._succ = 0
        self._fail = 0
        # The script counts in thousandths, as the local budget does.
        self._args = (round(local.max_tokens * 1000), round(local.token_ratio * 1000))
        self._ttl = math.ceil(ttl)
        self.shared_tokens: float | None = None
        """The fleet's tokens as of the last round trip (``None`` before the first)."""

    def __repr__(self) -> str:
        return (
            f"SharedTokenBucketBudget(scope={self.scope!r}, max_tokens={self.local.max_tokens:g}, "
            f"token_ratio={self.local.token_ratio:g})"
        )

    def on_request(self, now: float) -> None:  # pragma: no cover - counts_requests is False
        pass

    def on_success(self) -> None:
        self.local.on_success()
        self._succ += 1
        if self.link.mono() >= self._flush_at:
            self._sync()

    def on_failure(self) -> None:
        self.local.on_failure()
        self._fail += 1

    def try_withdraw(self, now: float) -> bool:
        """Whether a retry is allowed: the fleet's ``tokens > max_tokens / 2`` (one round trip)."""
        r = self._sync()
        if r is not None:
            return r
        return self._withdraw_unshared(now)

    def _sync(self) -> bool | None:
        with self._lock:
            s, f = self._succ, self._fail
            self._succ = self._fail = 0
        link = self.link
        now = link.mono()
        self._flush_at = now + self.flush_interval
        r = self.ask(
            link.run, link.scripts["budget"], 1, self.key, b"tokens", *self._args, s, f, self._ttl
        )
        if r is not DOWN:
            self.shared_tokens = int(r[1]) / 1000
            return bool(r[0] == 1)
        with self._lock:
            self._succ += s
            self._fail += f
        return None
