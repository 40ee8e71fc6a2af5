"""Retry budgets: retries stay a bounded fraction of traffic, whatever the callers do.

Two designs, both shared by every caller of one dependency and safe under threads and asyncio:

:class:`RetryBudget` (Finagle's design)
    Every original request deposits one token; a retry withdraws ``1 / ratio`` tokens.  A reserve of
    ``min_per_second * ttl`` retries keeps low-traffic callers able to retry at all.  Over the
    ``ttl`` window that ends at any grant::

        retries granted <= ratio * requests + min_per_second * ttl

    Deposits and withdrawals are kept in ``slices`` time slices of ``ttl / slices`` seconds.  To
    keep the promise exact, a grant counts the deposits only of slices that *began* inside the
    window (a slice records the time of its first event, so no deposit older than the window is ever
    counted) and the withdrawals of every slice that reaches into it: the window is judged
    pessimistically, and at most one slice's worth of deposits (``ttl / slices`` seconds) is left
    out.

:class:`TokenBucketBudget` (gRPC's ``retryThrottling``)
    ``tokens`` starts at ``max_tokens``; each retryable failed attempt takes 1 (never below 0), each
    success gives ``token_ratio`` back (never above ``max_tokens``); a retry is allowed only while
    ``tokens > max_tokens / 2``.  Like gRPC, tokens are counted in integer thousandths, so
    ``token_ratio`` keeps three decimal places and long runs accumulate no rounding error.

Hot path: the Finagle budget's deposit is a lock-free increment of the current slice's counter.  A
concurrent increment can (rarely) be lost, which only ever *reduces* what the budget grants.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.options import Options, documented, duration, integer, number

__all__ = [
    "Budget",
    "BudgetOptions",
    "RetryBudget",
    "RetryBudgetOptions",
    "TokenBucketBudget",
    "TokenBucketOptions",
    "budget_options",
    "build_budget",
]


@dataclass(frozen=True, kw_only=True)
class RetryBudgetOptions(Options):
    """Options of :class:`RetryBudget` (``budget:`` with ``mode: ratio``, the default)."""

    policy: ClassVar[str] = "RetryBudget"
    mode: ClassVar[str] = "ratio"

    ratio: float = number(
        0.2,
        "Retries allowed per original call over the window: 0.2 caps the extra load retries add "
        "at 20% (Finagle's default)",
        ge=0,
        le=1,
    )
    min_per_second: float = number(
        10.0, "Retries always allowed per second, so that a quiet service can still retry", ge=0
    )
    ttl: float = duration(10.0, "How long a deposit counts, in seconds (the window)", gt=0, ge=None)
    slices: int = integer(
        10, "Slices the window is kept in: the budget forgets in steps of ttl/slices", ge=1
    )


@dataclass(frozen=True, kw_only=True)
class TokenBucketOptions(Options):
    """Options of :class:`TokenBucketBudget` (``budget:`` with ``mode: token_bucket``)."""

    policy: ClassVar[str] = "TokenBucketBudget"
    mode: ClassVar[str] = "token_bucket"

    max_tokens: float = number(
        10.0, "Bucket size; retries are allowed while more than half of it is left", gt=0, le=1000
    )
    token_ratio: float = number(
        0.1,
        "Tokens a successful attempt gives back (digits past the third decimal are ignored, as "
        "in gRPC)",
        ge=0.001,
    )


BudgetOptions = RetryBudgetOptions | TokenBucketOptions
"""A budget's declaration: what :class:`~buttress.Retry` builds a fresh budget from."""


@runtime_checkable
class Budget(Protocol):
    """What a retry (or a hedge) needs from a budget.

    ``counts_requests``: call :meth:`on_request` once per original call.  ``counts_outcomes``: call
    :meth:`on_success` / :meth:`on_failure` after every attempt.  :meth:`try_withdraw` asks for one
    retry.
    """

    counts_requests: bool
    counts_outcomes: bool

    def on_request(self, now: float) -> None: ...
    def on_success(self) -> None: ...
    def on_failure(self) -> None: ...
    def try_withdraw(self, now: float) -> bool: ...


class BudgetSlice:
    """One time slice: when its first event happened, when it ends, and its counters (an object, so
    a late increment still lands in the right slice)."""

    __slots__ = ("deposits", "end", "start", "withdrawals")

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.deposits = 0
        self.withdrawals = 0


@documented(RetryBudgetOptions)
class RetryBudget:
    """Finagle-style retry budget.  Defaults: ``ratio=0.2``, ``min_per_second=10``, ``ttl=10``
    seconds.

    :param ratio: retries allowed per original request, in ``[0, 1]``.
    :param min_per_second: a floor of retries per second, for low traffic (``>= 0``).
    :param ttl: the window, in seconds (``> 0``).
    :param slices: how finely the window is divided (``>= 1``); more slices, less pessimism.
    """

    counts_requests = True
    counts_outcomes = False

    # Slots: the hot path reads and writes these (measured slower through a __dict__).
    __slots__ = (
        "_lock",
        "_ring",
        "_slice_len",
        "clock",
        "current",
        "min_per_second",
        "options",
        "ratio",
        "ttl",
    )

    def __init__(
        self,
        *,
        ratio: float = RetryBudgetOptions.ratio,
        min_per_second: float = RetryBudgetOptions.min_per_second,
        ttl: float = RetryBudgetOptions.ttl,
        slices: int = RetryBudgetOptions.slices,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        o = self.options = RetryBudgetOptions.from_arguments(locals())
        self.ratio = o.ratio
        self.min_per_second = o.min_per_second
        self.ttl = o.ttl
        self.clock = clock
        self._slice_len = o.ttl / o.slices
        self._lock = threading.Lock()
        # No slice yet: the first event opens one (so the budget never depends on when it was built,
        # nor on which clock built it).
        self.current = BudgetSlice(-math.inf, -math.inf)
        """The slice deposits go to now (a deposit reads it without the lock)."""
        self._ring: list[BudgetSlice] = []  # older slices, oldest first

    def _slice_end(self, now: float) -> float:
        """The end of the grid slice holding ``now``: the next multiple of the slice length."""
        end = (math.floor(now / self._slice_len) + 1) * self._slice_len
        return end if end > now else now + self._slice_len  # guard float rounding at the edge

    @property
    def reserve(self) -> float:
        """Retries the floor allows per window: ``min_per_second * ttl``."""
        return self.min_per_second * self.ttl

    def on_request(self, now: float) -> None:
        cur = self.current
        if now < cur.end:
            cur.deposits += 1
        else:
            self.advance(now).deposits += 1

    def on_success(self) -> None:  # pragma: no cover - not called: counts_outcomes is False
        pass

    def on_failure(self) -> None:  # pragma: no cover - not called: counts_outcomes is False
        pass

    def advance(self, now: float) -> BudgetSlice:
        """The slice for a deposit at ``now``, opening a new one when ``current`` has ended.
        With ``current``, what :class:`~buttress.Retry` inlines on its success path."""
        with self._lock:
            cur = self.current
            if now >= cur.end:
                self._open_locked(now)
                cur = self.current
            return cur

    def _open_locked(self, now: float) -> None:
        """Close the current slice and open one that starts at ``now``."""
        if self.current.end > -math.inf:
            self._ring.append(self.current)
        self.current = BudgetSlice(now, self._slice_end(now))
        self._expire_locked(now)

    def _expire_locked(self, now: float) -> None:
        # A slice can be forgotten once it ends at or before the window's start.
        start = now - self.ttl
        ring = self._ring
        drop = 0
        while drop < len(ring) and ring[drop].end <= start:
            drop += 1
        if drop:
            del ring[:drop]

    def _window_locked(self, now: float) -> tuple[int, int]:
        """(deposits, withdrawals) in the window ``[now - ttl, now]``, judged pessimistically."""
        start = now - self.ttl
        deposits = 0
        withdrawals = 0
        for s in (*self._ring, self.current):
            if s.end <= start:  # every event in it happened before the window
                continue
            withdrawals += s.withdrawals
            if s.start >= start:  # every event in it happened inside the window
                deposits += s.deposits
        return deposits, withdrawals

    def try_withdraw(self, now: float) -> bool:
        """Take one retry if ``withdrawals + 1 <= ratio * deposits + min_per_second * ttl`` over the
        window ``[now - ttl, now]`` (with a 1e-9 allowance for floating-point rounding).

        The decision is made at the time read *under the lock*: ``now`` was read before waiting for
        it, and deciding at a stale time would count deposits that expired meanwhile (under 16
        threads, up to ~9.5% more retries than ratio and floor allow).  So when the budget's clock
        reads ``now`` or up to one window later, that reading is the decision time; a ``now`` from
        another time base (a simulation, a test's explicit times) is used as given.  (One slice
        was not enough: on a loaded machine a thread waited longer than a slice for the lock.)"""
        with self._lock:
            t = self.clock.monotonic()
            if now <= t < now + self.ttl:
                now = t
            if now >= self.current.end:
                self._open_locked(now)
            else:
                self._expire_locked(now)
            deposits, withdrawals = self._window_locked(now)
            if withdrawals + 1 <= self.ratio * deposits + self.reserve + 1e-9:
                self.current.withdrawals += 1
                return True
            return False

    def balance(self, now: float | None = None) -> float:
        """Retries that could be granted right now."""
        if now is None:
            now = self.clock.monotonic()
        with self._lock:
            deposits, withdrawals = self._window_locked(now)
        return max(0.0, self.ratio * deposits + self.reserve - withdrawals)

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio:g}, min_per_second={self.min_per_second:g}, "
            f"ttl={self.ttl:g})"
        )


@documented(TokenBucketOptions)
class TokenBucketBudget:
    """gRPC ``retryThrottling``.  ``max_tokens`` in (0, 1000] (default 10), ``token_ratio`` >= 0.001
    (default 0.1; digits past the third decimal are ignored, as in gRPC).

    ``tokens`` starts at ``max_tokens``.  Each retryable failed attempt takes one token (never below
    0), each successful attempt gives back ``token_ratio`` (never above ``max_tokens``), and a retry
    is allowed only while ``tokens > max_tokens / 2``.  The retry records the failure first and then
    asks (:meth:`on_failure`, then :meth:`try_withdraw`), as gRPC does.
    """

    counts_requests = False
    counts_outcomes = True

    # Slots: the hot path reads and writes these (measured slower through a __dict__).
    __slots__ = (
        "_lock",
        "_max_milli",
        "_milli",
        "_ratio_milli",
        "max_tokens",
        "options",
        "token_ratio",
    )

    def __init__(
        self,
        *,
        max_tokens: float = TokenBucketOptions.max_tokens,
        token_ratio: float = TokenBucketOptions.token_ratio,
    ) -> None:
        self.options = TokenBucketOptions.from_arguments(locals())
        self._max_milli = round(max_tokens * 1000)
        self._ratio_milli = math.floor(token_ratio * 1000 + 1e-6)
        self.max_tokens = self._max_milli / 1000
        self.token_ratio = self._ratio_milli / 1000
        self._milli = self._max_milli
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        """The tokens left now."""
        return self._milli / 1000

    def on_request(self, now: float) -> None:  # pragma: no cover - counts_requests is False
        pass

    def on_success(self) -> None:
        """A successful attempt: ``tokens = min(max_tokens, tokens + token_ratio)``."""
        with self._lock:
            t = self._milli + self._ratio_milli
            self._milli = t if t < self._max_milli else self._max_milli

    def on_failure(self) -> None:
        """A retryable failed attempt: ``tokens = max(0, tokens - 1)``."""
        with self._lock:
            t = self._milli - 1000
            self._milli = t if t > 0 else 0

    def try_withdraw(self, now: float) -> bool:
        """Whether a retry is allowed: ``tokens > max_tokens / 2``.  Takes nothing."""
        return self._milli * 2 > self._max_milli

    def __repr__(self) -> str:
        return (
            f"TokenBucketBudget(max_tokens={self.max_tokens:g}, token_ratio={self.token_ratio:g})"
        )


def budget_options(name: str, v: object) -> object:
    """An options ``check``: a budget object stands for its options (a shared store's budget,
    which has none, for itself); ``None`` means no budget."""
    if v is None or isinstance(v, RetryBudgetOptions | TokenBucketOptions):
        return v
    if isinstance(v, Budget):
        return getattr(v, "options", v)
    raise ConfigError(name, v, "must be a RetryBudget, TokenBucketBudget, their options, or None")


def build_budget(given: object, options: object, clock: Clock) -> Budget | None:
    """The budget a policy uses: ``given`` itself when it is a budget object (shared), else a
    fresh one built from ``options`` on ``clock``."""
    if isinstance(given, Budget):
        return given
    if isinstance(options, RetryBudgetOptions):
        return RetryBudget(**options.as_kwargs(), clock=clock)
    if isinstance(options, TokenBucketOptions):
        return TokenBucketBudget(**options.as_kwargs())
    return None
