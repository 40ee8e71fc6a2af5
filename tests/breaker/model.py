"""A small, deliberately naive reference model of the circuit breaker.

It keeps the whole history of recorded outcomes as a list and recomputes every total from scratch,
so it shares no code and no cleverness (ring buffers, running totals, lock-free ticks) with the
real one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Entry:
    time: float
    failed: bool
    slow: bool


@dataclass
class Model:
    failure_rate_threshold: float
    slow_call_rate_threshold: float
    slow_call_duration: float
    minimum_calls: int
    window_type: str  # "count" | "time"
    window_size: float
    buckets: int  # time windows only
    permitted: int
    half_open_timeout: float
    break_durations: list[float]  # break for the n-th consecutive open: [min(n, len) - 1]

    state: str = "closed"
    generation: int = 0
    history: list[Entry] = field(default_factory=list)
    open_until: float = 0.0
    deadline: float = 0.0
    probes_left: int = 0
    probes: list[Entry] = field(default_factory=list)
    consecutive_opens: int = 0
    alarmed: bool = False
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    alarms: int = 0

    # -- window, recomputed naively ---------------------------------------------------------------

    def in_window(self, now: float) -> list[Entry]:
        if self.window_type == "count":
            return self.history[-int(self.window_size) :]
        width = self.window_size / self.buckets
        k_now = math.floor(now * (1.0 / width))
        return [
            e for e in self.history if math.floor(e.time * (1.0 / width)) > k_now - self.buckets
        ]

    def totals(self, now: float) -> tuple[int, int, int]:
        w = self.in_window(now)
        return len(w), sum(e.failed for e in w), sum(e.slow for e in w)

    def min_calls(self) -> int:
        if self.window_type == "count":
            return min(self.minimum_calls, int(self.window_size))
        return self.minimum_calls

    def above(self, calls: int, failures: int, slow: int) -> bool:
        if calls < self.min_calls():
            return False
        return (
            failures / calls >= self.failure_rate_threshold
            or slow / calls >= self.slow_call_rate_threshold
        )

    # -- transitions -------------------------------------------------------------------------------

    def move(self, now: float, to: str, why: str) -> None:
        self.transitions.append((self.state, to, why))
        if to == "open":
            self.consecutive_opens += 1
            n = min(self.consecutive_opens, len(self.break_durations))
            self.open_until = now + self.break_durations[n - 1]
        elif to == "half_open":
            self.probes_left = self.permitted
            self.probes = []
            self.deadline = now + self.half_open_timeout
        elif to == "closed":
            self.history = []
            self.consecutive_opens = 0
        elif to == "metrics_only":
            self.alarmed = False
        self.state = to
        self.generation += 1

    def manual(self, now: float, to: str) -> None:
        if to == "closed" or self.state != to:
            self.move(now, to, "manual")

    # -- the protocol ------------------------------------------------------------------------------

    def before_call(self, now: float) -> tuple[bool, int, bool, float | None]:
        """``(permitted, generation, probe, retry_after)``."""
        if self.state in ("closed", "metrics_only", "disabled"):
            return True, self.generation, False, None
        if self.state == "forced_open":
            return False, 0, False, None
        if self.state == "open":
            if now < self.open_until:
                return False, 0, False, self.open_until - now
            self.move(now, "half_open", "break_elapsed")
        if now >= self.deadline:
            self.move(now, "open", "probe_timeout")
            return False, 0, False, self.open_until - now
        if self.probes_left > 0:
            self.probes_left -= 1
            return True, self.generation, True, None
        return False, 0, False, None

    def on_result(
        self, now: float, generation: int, probe: bool, outcome: str, duration: float
    ) -> None:
        if generation != self.generation:
            return
        slow = duration > self.slow_call_duration
        failed = outcome == "failure"
        if self.state in ("closed", "metrics_only"):
            if outcome == "ignored":
                return
            self.history.append(Entry(now, failed, slow))
            t = self.totals(now)
            if self.above(*t):
                if self.state == "closed":
                    self.move(now, "open", "threshold")
                elif not self.alarmed:
                    self.alarmed = True
                    self.alarms += 1
            elif self.state == "metrics_only":
                self.alarmed = False
            return
        if self.state == "half_open" and probe:
            if outcome == "ignored":
                self.probes_left += 1
                return
            self.probes.append(Entry(now, failed, slow))
            self.deadline = now + self.half_open_timeout
            if len(self.probes) == self.permitted:
                n = len(self.probes)
                bad = (
                    sum(e.failed for e in self.probes) / n >= self.failure_rate_threshold
                    or sum(e.slow for e in self.probes) / n >= self.slow_call_rate_threshold
                )
                self.move(now, "open" if bad else "closed", "probes")
