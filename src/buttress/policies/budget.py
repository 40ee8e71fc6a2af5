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
from typing import Protocol, runtime_checkable

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError

__all__ = ["Budget", "RetryBudget", "TokenBucketBudget"]


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


class _Slice:
    """One time slice: when its first event happened, when it ends, and its counters (an object, so
    a late increment still lands in the right slice)."""

    __slots__ = ("deposits", "end", "start", "withdrawals")

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.deposits = 0
        self.withdrawals = 0


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

    __slots__ = ("_cur", "_lock", "_ring", "_slice_len", "clock", "min_per_second", "ratio", "ttl")

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        ttl: float = 10.0,
        slices: int = 10,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not _is_number(ratio) or not 0.0 <= ratio <= 1.0:
            raise ConfigError("ratio", ratio, "must be within [0, 1]")
        if not _is_number(min_per_second) or not 0 <= min_per_second < math.inf:
            raise ConfigError("min_per_second", min_per_second, "must be a finite number >= 0")
        if not _is_number(ttl) or not 0 < ttl < math.inf:
            raise ConfigError("ttl", ttl, "must be a finite number of seconds > 0")
        if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
            raise ConfigError("slices", slices, "must be an integer >= 1")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.ttl = float(ttl)
        self.clock = clock
        self._slice_len = self.ttl / slices
        self._lock = threading.Lock()
        # No slice yet: the first event opens one (so the budget never depends on when it was built,
        # nor on which clock built it).
        self._cur = _Slice(-math.inf, -math.inf)
        self._ring: list[_Slice] = []  # older slices, oldest first

    def _slice_end(self, now: float) -> float:
        """The end of the grid slice holding ``now``: the next multiple of the slice length."""
        end = (math.floor(now / self._slice_len) + 1) * self._slice_len
        return end if end > now else now + self._slice_len  # guard float rounding at the edge

    @property
    def reserve(self) -> float:
        """Retries the floor allows per window: ``min_per_second * ttl``."""
        return self.min_per_second * self.ttl

    def on_request(self, now: float) -> None:
        cur = self._cur
        if now < cur.end:
            cur.deposits += 1
        else:
            self._advance(now).deposits += 1

    def on_success(self) -> None:  # pragma: no cover - not called: counts_outcomes is False
        pass

    def on_failure(self) -> None:  # pragma: no cover - not called: counts_outcomes is False
        pass

    def _advance(self, now: float) -> _Slice:
        with self._lock:
            cur = self._cur
            if now >= cur.end:
                self._open_locked(now)
                cur = self._cur
            return cur

    def _open_locked(self, now: float) -> None:
        """Close the current slice and open one that starts at ``now``."""
        if self._cur.end > -math.inf:
            self._ring.append(self._cur)
        self._cur = _Slice(now, self._slice_end(now))
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
        for s in (*self._ring, self._cur):
            if s.end <= start:  # every event in it happened before the window
                continue
            withdrawals += s.withdrawals
            if s.start >= start:  # every event in it happened inside the window
                deposits += s.deposits
        return deposits, withdrawals

    def try_withdraw(self, now: float) -> bool:
        """Take one retry if ``withdrawals + 1 <= ratio * deposits + min_per_second * ttl`` over the
        window ``[now - ttl, now]`` (with a 1e-9 allowance for floating-point rounding)."""
        with self._lock:
            if now >= self._cur.end:
                self._open_locked(now)
            else:
                self._expire_locked(now)
            deposits, withdrawals = self._window_locked(now)
            if withdrawals + 1 <= self.ratio * deposits + self.reserve + 1e-9:
                self._cur.withdrawals += 1
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

    __slots__ = ("_lock", "_max_milli", "_milli", "_ratio_milli", "max_tokens", "token_ratio")

    def __init__(self, *, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if not _is_number(max_tokens) or not 0 < max_tokens <= 1000:
            raise ConfigError("max_tokens", max_tokens, "must be within (0, 1000]")
        if not _is_number(token_ratio) or not 0.001 <= token_ratio < math.inf:
            raise ConfigError("token_ratio", token_ratio, "must be a finite number >= 0.001")
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


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
