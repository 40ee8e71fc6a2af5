"""Retry budgets: retries stay a bounded fraction of traffic, whatever the callers do.

Two designs, both shared by every caller of one dependency and safe under threads and asyncio:

:class:`RetryBudget` (Finagle's design)
    Every original request deposits one token; a retry withdraws ``1 / ratio`` tokens.  A reserve of
    ``min_per_second * ttl`` retries keeps low-traffic callers able to retry at all.  Over the ``ttl``
    window that ends at any grant::

        retries granted <= ratio * requests + min_per_second * ttl

    Deposits and withdrawals are kept in ``slices`` time slices of ``ttl / slices`` seconds.  To keep the
    promise exact, a grant counts the deposits only of slices *wholly* inside the window and the
    withdrawals of every slice that touches it: the window is judged pessimistically.

:class:`TokenBucketBudget` (gRPC's ``retryThrottling``)
    ``tokens`` starts at ``max_tokens``; each failed attempt takes 1, each success gives ``token_ratio``
    back (never above ``max_tokens``); retries are allowed only while ``tokens > max_tokens / 2``.

Hot path: the Finagle budget's deposit is a lock-free increment of the current slice's counter.  A
concurrent increment can (rarely) be lost, which only ever *reduces* what the budget grants.
"""

from __future__ import annotations

import math
import threading
from typing import Protocol, runtime_checkable

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConfigError

__all__ = ["Budget", "RetryBudget", "TokenBucketBudget"]


@runtime_checkable
class Budget(Protocol):
    """What a retry (or a hedge) needs from a budget.

    ``counts_requests``: call :meth:`on_request` once per original call.  ``counts_outcomes``: call
    :meth:`on_success` / :meth:`on_failure` after every attempt.  :meth:`try_withdraw` asks for one retry.
    """

    counts_requests: bool
    counts_outcomes: bool

    def on_request(self, now: float) -> None: ...
    def on_success(self) -> None: ...
    def on_failure(self) -> None: ...
    def try_withdraw(self, now: float) -> bool: ...


class _Slice:
    """One time slice: its end time and its counters (objects, so a late increment lands here)."""

    __slots__ = ("deposits", "end", "withdrawals")

    def __init__(self, end: float) -> None:
        self.end = end
        self.deposits = 0
        self.withdrawals = 0


class RetryBudget:
    """Finagle-style retry budget.  Defaults: ``ratio=0.2``, ``min_per_second=10``, ``ttl=10`` seconds.

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
        if not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0:
            raise ConfigError("ratio", ratio, "must be within [0, 1]")
        if not isinstance(min_per_second, int | float) or not 0 <= min_per_second < math.inf:
            raise ConfigError("min_per_second", min_per_second, "must be a finite number >= 0")
        if not isinstance(ttl, int | float) or not 0 < ttl < math.inf:
            raise ConfigError("ttl", ttl, "must be a finite number of seconds > 0")
        if not isinstance(slices, int) or slices < 1:
            raise ConfigError("slices", slices, "must be an integer >= 1")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self.ttl = float(ttl)
        self.clock = clock
        self._slice_len = self.ttl / slices
        self._lock = threading.Lock()
        now = clock.monotonic()
        self._cur = _Slice(self._slice_end(now))
        self._ring: list[_Slice] = []  # older slices, oldest first

    def _slice_end(self, now: float) -> float:
        return (math.floor(now / self._slice_len) + 1) * self._slice_len

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
                self._ring.append(cur)
                cur = _Slice(self._slice_end(now))
                self._cur = cur
                self._expire_locked(now)
            return cur

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
        start = now - self.ttl
        slice_len = self._slice_len
        deposits = 0
        withdrawals = 0
        for s in (*self._ring, self._cur):
            if s.end <= start:
                continue
            withdrawals += s.withdrawals
            if s.end - slice_len >= start:  # wholly inside the window
                deposits += s.deposits
        return deposits, withdrawals

    def try_withdraw(self, now: float) -> bool:
        """Take one retry if the window allows it."""
        with self._lock:
            if now >= self._cur.end:
                self._ring.append(self._cur)
                self._cur = _Slice(self._slice_end(now))
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
    """gRPC ``retryThrottling``: ``max_tokens`` in (0, 1000], ``token_ratio`` in (0, 1].

    Retries are allowed while ``tokens > max_tokens / 2``; failures take a token, successes give back
    ``token_ratio``.
    """

    counts_requests = False
    counts_outcomes = True

    __slots__ = ("_lock", "max_tokens", "token_ratio", "tokens")

    def __init__(self, *, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if not isinstance(max_tokens, int | float) or not 0 < max_tokens <= 1000:
            raise ConfigError("max_tokens", max_tokens, "must be within (0, 1000]")
        if not isinstance(token_ratio, int | float) or not 0 < token_ratio <= 1:
            raise ConfigError("token_ratio", token_ratio, "must be within (0, 1]")
        self.max_tokens = float(max_tokens)
        self.token_ratio = float(token_ratio)
        self.tokens = self.max_tokens
        self._lock = threading.Lock()

    def on_request(self, now: float) -> None:  # pragma: no cover - counts_requests is False
        pass

    def on_success(self) -> None:
        with self._lock:
            t = self.tokens + self.token_ratio
            self.tokens = t if t < self.max_tokens else self.max_tokens

    def on_failure(self) -> None:
        with self._lock:
            t = self.tokens - 1.0
            self.tokens = t if t > 0.0 else 0.0

    def try_withdraw(self, now: float) -> bool:
        with self._lock:
            return self.tokens > self.max_tokens / 2.0

    def __repr__(self) -> str:
        return f"TokenBucketBudget(max_tokens={self.max_tokens:g}, token_ratio={self.token_ratio:g})"
