"""Sliding windows of call outcomes for circuit breakers, with O(1) updates.

Each recorded call is one of four outcomes, coded as a small integer:

====  ==================  =======  ========  ======
code  outcome             calls    failures  slow
====  ==================  =======  ========  ======
1     success             +1       0         0
2     failure             +1       +1        0
3     slow success        +1       0         +1
4     slow failure        +1       +1        +1
====  ==================  =======  ========  ======

(code 0 marks an empty slot).  Both windows keep *running totals* of calls, failures and slow calls,
so the rates are read in O(1):

    failure_rate   = failures / calls
    slow_call_rate = slow / calls

:class:`CountWindow` (``size`` N)
    The last N outcomes, in a ring of N slots.  Recording writes the next slot and adjusts the
    totals by the difference between the new code and the evicted one: O(1).

:class:`TimeWindow` (``seconds`` S, ``buckets`` B)
    The outcomes of the last S seconds, in B buckets of ``S / B`` seconds each, indexed by
    ``floor(now / width)``.  Moving into a new bucket subtracts the totals of every bucket that has
    left the window and clears it; that costs at most B steps however long the pause, and one step
    per bucket width in steady traffic, so O(1) amortised.  The window covers the current (partial)
    bucket plus the B - 1 before it, so its true span is between ``S - width`` and ``S`` seconds.

Windows are plain data structures: they do not lock.  The breaker's state store serialises access.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from buttress.errors import ConfigError
from buttress.options import check_integer

__all__ = [
    "EMPTY",
    "FAILURE",
    "SLOW_FAILURE",
    "SLOW_SUCCESS",
    "SUCCESS",
    "CountWindow",
    "TimeWindow",
    "WindowSnapshot",
    "outcome_code",
]

EMPTY = 0
SUCCESS = 1
FAILURE = 2
SLOW_SUCCESS = 3
SLOW_FAILURE = 4

# Per-code contributions, indexed by code.
_CALL = (0, 1, 1, 1, 1)
_FAIL = (0, 0, 1, 0, 1)
_SLOW = (0, 0, 0, 1, 1)


def outcome_code(failed: bool, slow: bool) -> int:
    """The code of an outcome: ``1 + failed + 2 * slow``."""
    return 1 + int(failed) + 2 * int(slow)


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """The window's totals at one moment; rates are 0.0 when there are no calls."""

    calls: int
    failures: int
    slow_calls: int

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        return self.slow_calls / self.calls if self.calls else 0.0


class CountWindow:
    """The last ``size`` outcomes (``size >= 1``)."""

    __slots__ = ("_i", "_ring", "calls", "failures", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = check_integer("window_size", size, ge=1)
        self._ring = [EMPTY] * size
        self._i = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def _push(self, code: int) -> int:
        """Put ``code`` in the oldest slot; returns the code it replaces."""
        i = self._i
        old = self._ring[i]
        self._ring[i] = code
        i += 1
        self._i = i if i < self.size else 0
        return old

    def add_success(self, now: float) -> bool:
        """Record a fast success.  Returns ``True`` when the rates may have risen (a slot was
        empty): only then can a success push the breaker over a threshold (``minimum_calls`` just
        reached)."""
        old = self._push(SUCCESS)
        if old == SUCCESS:
            return False
        if old == EMPTY:
            self.calls += 1
            return True
        self.failures -= _FAIL[old]
        self.slow -= _SLOW[old]
        return False

    def add_successes(self, n: int) -> None:
        """Record ``n`` fast successes at once: O(min(n, size))."""
        if n >= self.size:
            self._ring = [SUCCESS] * self.size
            self.calls = self.size
            self.failures = self.slow = 0
            return
        for _ in range(n):
            self.add_success(0.0)

    def horizon(self) -> float:
        """Until when more successes cannot raise the rates: always (a full count window only
        evicts)."""
        return math.inf

    def add(self, now: float, code: int) -> None:
        """Record an outcome by code (1-4)."""
        old = self._push(code)
        self.calls += _CALL[code] - _CALL[old]
        self.failures += _FAIL[code] - _FAIL[old]
        self.slow += _SLOW[code] - _SLOW[old]

    def totals(self, now: float) -> tuple[int, int, int]:
        """``(calls, failures, slow)`` over the window."""
        return self.calls, self.failures, self.slow

    def snapshot(self, now: float) -> WindowSnapshot:
        return WindowSnapshot(self.calls, self.failures, self.slow)

    def reset(self) -> None:
        self._ring = [EMPTY] * self.size
        self._i = 0
        self.calls = self.failures = self.slow = 0

    def outcomes(self) -> list[int]:
        """The codes in the window, oldest first (for tests and debugging; O(size))."""
        i = self._i
        return [c for c in self._ring[i:] + self._ring[:i] if c != EMPTY]

    def __repr__(self) -> str:
        return (
            f"CountWindow(size={self.size}, calls={self.calls}, failures={self.failures}, "
            f"slow={self.slow})"
        )


class TimeWindow:
    """The outcomes of the last ``seconds`` seconds, in ``buckets`` buckets (both ``> 0``)."""

    __slots__ = (
        "_b_calls",
        "_b_fail",
        "_b_slow",
        "_i",
        "_inv_width",
        "_k",
        "buckets",
        "calls",
        "failures",
        "seconds",
        "slow",
        "width",
    )

    def __init__(self, seconds: float, buckets: int | None = None) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 < seconds < math.inf
        ):
            raise ConfigError("window_size", seconds, "a time window spans a finite number > 0 s")
        if buckets is None:
            buckets = max(1, min(60, math.ceil(seconds)))
        check_integer("window_buckets", buckets, ge=1)
        self.seconds = float(seconds)
        self.buckets = buckets
        self.width = self.seconds / buckets
        self._inv_width = 1.0 / self.width
        self._b_calls = [0] * buckets
        self._b_fail = [0] * buckets
        self._b_slow = [0] * buckets
        self._k = -(2**62)  # index of the current bucket: floor(now / width)
        self._i = 0  # its slot: k mod buckets
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def _advance(self, k: int) -> None:
        """Move to bucket ``k`` (> current): clear every slot that left the window."""
        steps = k - self._k
        n = self.buckets
        if steps >= n:
            self._b_calls = [0] * n
            self._b_fail = [0] * n
            self._b_slow = [0] * n
            self.calls = self.failures = self.slow = 0
        else:
            bc, bf, bs = self._b_calls, self._b_fail, self._b_slow
            i = self._i
            for _ in range(steps):
                i = i + 1 if i + 1 < n else 0
                self.calls -= bc[i]
                self.failures -= bf[i]
                self.slow -= bs[i]
                bc[i] = bf[i] = bs[i] = 0
        self._k = k
        self._i = k % n

    def add_success(self, now: float) -> bool:
        """Record a fast success.  Returns ``True`` when the rates may have risen: buckets expired
        (old successes left), so the caller should re-check its thresholds."""
        k = int(now * self._inv_width) if now >= 0 else math.floor(now * self._inv_width)
        if k > self._k:
            self._advance(k)
            self._b_calls[self._i] += 1
            self.calls += 1
            return True
        self._b_calls[self._i] += 1
        self.calls += 1
        return False

    def add_successes(self, n: int) -> None:
        """Record ``n`` fast successes in the current bucket: O(1)."""
        self._b_calls[self._i] += n
        self.calls += n

    def horizon(self) -> float:
        """The end of the current bucket: until then no bucket expires, so successes cannot raise
        the rates."""
        return (self._k + 1) * self.width

    def add(self, now: float, code: int) -> None:
        k = math.floor(now * self._inv_width)
        if k > self._k:
            self._advance(k)
        i = self._i
        self._b_calls[i] += 1
        self.calls += 1
        f = _FAIL[code]
        s = _SLOW[code]
        if f:
            self._b_fail[i] += 1
            self.failures += 1
        if s:
            self._b_slow[i] += 1
            self.slow += 1

    def totals(self, now: float) -> tuple[int, int, int]:
        k = math.floor(now * self._inv_width)
        if k > self._k:
            self._advance(k)
        return self.calls, self.failures, self.slow

    def snapshot(self, now: float) -> WindowSnapshot:
        return WindowSnapshot(*self.totals(now))

    def reset(self) -> None:
        n = self.buckets
        self._b_calls = [0] * n
        self._b_fail = [0] * n
        self._b_slow = [0] * n
        self.calls = self.failures = self.slow = 0

    def __repr__(self) -> str:
        return (
            f"TimeWindow(seconds={self.seconds:g}, buckets={self.buckets}, calls={self.calls}, "
            f"failures={self.failures}, slow={self.slow})"
        )
