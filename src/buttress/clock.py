"""Time, injected.

Decision logic never calls :mod:`time` directly: it reads a :class:`Clock`, so tests run on
:class:`buttress.testing.FakeClock` in microseconds and production code uses :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "check_clock", "waits_enabled"]


@runtime_checkable
class Clock(Protocol):
    """What policies need from time: a monotonic reading, wall time, and two ways to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (for records meant for people and other machines)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the current thread for ``seconds``."""
        ...

    async def sleep_async(self, seconds: float) -> None:
        """Suspend the current task for ``seconds``."""
        ...


class SystemClock:
    """The real clock. ``monotonic`` is :func:`time.monotonic` itself, so reading it costs one C
    call."""

    __slots__ = ()

    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)

    def sleep(self, seconds: float) -> None:
        if seconds > 0 and WAITS[0]:
            time.sleep(seconds)

    async def sleep_async(self, seconds: float) -> None:
        if seconds > 0 and WAITS[0]:
            await asyncio.sleep(seconds)
        else:
            await asyncio.sleep(0)

    def __repr__(self) -> str:
        return "SystemClock()"


# A one-element list so buttress.testing can switch real waits off process-wide without a lock.
WAITS = [True]


def waits_enabled() -> bool:
    """Whether :class:`SystemClock` really sleeps (see :func:`buttress.testing.set_testing`)."""
    return WAITS[0]


SYSTEM_CLOCK: Clock = SystemClock()


def check_clock(clock: object) -> None:
    """Refuse, naming the parameter, an object that is not a :class:`Clock`."""
    if not isinstance(clock, Clock):
        from buttress.errors import ConfigError

        raise ConfigError(
            "clock", clock, "must provide monotonic(), wall(), sleep(), sleep_async()"
        )
