"""RetryBudget under 16 threads: no window ever grants more than ratio and floor allow.

The budget decides at the time it reads under its lock.  A recording clock notes, per thread, the
last time it handed out, which for a grant is its decision time; requests are stamped before and
after their deposit.  Then, for every grant at decision time T, the grants decided in [T - ttl, T]
must not exceed ratio * (requests that may have counted in that window) + floor * ttl.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right

from buttress import RetryBudget
from buttress.clock import SystemClock


class RecordingClock(SystemClock):
    """The system clock, remembering per thread the last reading it gave."""

    __slots__ = ("local",)

    def __init__(self) -> None:
        self.local = threading.local()

    def monotonic(self) -> float:  # type: ignore[override]
        t = time.monotonic()
        self.local.last = t
        return t


def test_sixteen_threads_never_overshoot_the_budget() -> None:
    ttl, ratio = 0.4, 0.5
    clock = RecordingClock()
    budget = RetryBudget(ratio=ratio, min_per_second=0.0, ttl=ttl, slices=2, clock=clock)
    start = time.monotonic()
    burst_end, end = start + 0.15, start + 0.15 + ttl * 1.5
    barrier = threading.Barrier(16)
    deposits: list[list[tuple[float, float]]] = [[] for _ in range(16)]
    grants: list[list[tuple[float, float]]] = [[] for _ in range(16)]

    def worker(i: int) -> None:
        barrier.wait()
        mine_d, mine_g = deposits[i], grants[i]
        while True:
            now = clock.monotonic()
            if now >= end:
                return
            # A burst of requests, then retries only: the deposits expire while threads contend
            # for grants, which is when a stale decision time counts expired deposits.
            if now < burst_end or (i == 0 and int(now * 1000) % 7 == 0):
                budget.on_request(now)
                mine_d.append((now, clock.monotonic()))
            if budget.try_withdraw(clock.monotonic()):
                # the reading taken under the lock (the decision time), and the return time
                mine_g.append((clock.local.last, time.monotonic()))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    befores = sorted(b for d in deposits for b, _ in d)
    afters = sorted(a for d in deposits for _, a in d)
    pairs = sorted(g for gs in grants for g in gs)
    granted = [d for d, _ in pairs]
    assert len(granted) > 100  # the budget was exercised
    worst = 0.0
    for t_grant, t_return in pairs:
        lo = t_grant - ttl
        in_window = bisect_right(granted, t_grant) - bisect_left(granted, lo)
        # A request may have counted if it was stamped after lo (its slice began before its
        # deposit) and before the grant returned (the counters are read after the decision time).
        counted = (len(afters) - bisect_left(afters, lo)) - (
            len(befores) - bisect_right(befores, t_return)
        )
        worst = max(worst, in_window - ratio * counted)
        assert in_window <= ratio * counted + 1e-6, (t_grant - start, in_window, counted)
    assert worst <= 1e-6
