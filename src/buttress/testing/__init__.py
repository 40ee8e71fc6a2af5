"""Tools for testing code that uses Buttress: a fake clock and a switch that turns real waits off.

``FakeClock`` never really waits: ``sleep`` and ``sleep_async`` advance its time at once (the async
form still yields to the event loop once, so other tasks run).  ``set_testing(True)`` makes the
*system* clock skip its sleeps too, for code whose policies you did not build with a fake clock; it
returns a context manager that restores the previous setting.
"""

from __future__ import annotations

import asyncio
import threading

from buttress.clock import WAITS

__all__ = ["FakeClock", "set_testing"]


class FakeClock:
    """A clock that moves only when told to (or when something sleeps on it).

    :param start: the initial monotonic reading.
    :param wall_start: the initial wall-clock reading (seconds since the epoch).
    """

    def __init__(self, start: float = 1000.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall_start) - float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (``>= 0``)."""
        if not seconds >= 0:  # also rejects NaN
            raise ValueError(f"cannot move a clock backwards (advance({seconds}))")
        with self._lock:
            self._now += seconds

    def set(self, now: float) -> None:
        """Jump to ``now`` (not before the current reading)."""
        if not now >= self._now:  # also rejects NaN
            raise ValueError(f"cannot move a clock backwards (set({now}) < {self._now})")
        with self._lock:
            self._now = float(now)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)

    async def sleep_async(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if seconds > 0:
            self.advance(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now:g})"


class set_testing:
    """Turn real waits of the system clock off (``True``) or on; usable as a context manager."""

    def __init__(self, on: bool = True) -> None:
        self._previous = WAITS[0]
        WAITS[0] = not on

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        WAITS[0] = self._previous
