"""The timers of async timeouts: one queue of due times per event loop and layer.

Every call of one async timeout layer has the same timeout, so due times arrive in order and one
timer, armed for the oldest call still running, serves them all (:class:`Expiries`); a call whose
deadline an earlier one cuts short gets a timer of its own (:func:`expire_one`).  The layer that
uses them is :func:`buttress.policies.fused.fused_layer` (a :class:`~buttress.Timeout` alone is a
fused layer of one policy).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from asyncio import base_events
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = [
    "BASE_TIME",
    "CANCELLED_SUBCLASS",
    "COMPACT_AT",
    "PID",
    "TASK_OF_LOOP",
    "UNCANCEL_FROM_ENTRY",
    "Expiries",
    "expire_one",
]

COMPACT_AT = 64  # the least number of entries an Expiries holds before it sweeps finished ones
# When asyncio.timeout turns the CancelledError into TimeoutError, by interpreter version: once
# withdrawing its own request leaves no request at all (uncancel() == 0) before 3.11.3; from 3.11.3
# (gh-102780) none beyond those standing when the block was entered; the exception must be a
# CancelledError exactly, or from 3.13 any subclass.
UNCANCEL_FROM_ENTRY = sys.version_info >= (3, 11, 3)
CANCELLED_SUBCLASS = sys.version_info >= (3, 13)
BASE_TIME = base_events.BaseEventLoop.time
# In 3.11, asyncio.current_task(loop) is a Python function returning this mapping's entry for the
# loop (the tasks' C code keeps it); reading it directly saves a call.  From 3.12 it is C itself.
TASK_OF_LOOP: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = (
    getattr(asyncio.tasks, "_current_tasks", None) if sys.version_info < (3, 12) else None
)


# This process's id, kept current across fork: asyncio.get_running_loop() checks the process id
# with a system call on every call (hundreds of ns on a sandboxed VM), which the layer below skips
# when the loop it cached for this thread is still the one running here.
PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: PID.__setitem__(0, os.getpid()))


class Expiries:
    """The due times of one async timeout layer's calls on one event loop, oldest first.

    An entry is ``[when, task, fired]`` (``when`` on the loop's clock; ``task`` set to ``None``
    when the call leaves the layer; ``fired`` once the task was cancelled for it).  Every call of
    the layer has the same timeout, so ``when`` never decreases along the queue: one timer, armed
    for the oldest entry, serves them all.  When it fires, every entry due is fired (its task
    cancelled, as :func:`asyncio.timeout` does) and the timer is armed again for the oldest entry
    left.  A call leaving the layer marks its entry and drops finished entries from the front; when
    a long call holds the front, finished entries behind it are swept whenever the queue grows past
    ``max(COMPACT_AT, 2 * calls running at the last sweep)``, which keeps memory proportional to
    the calls running at an amortised O(1) per call.

    Cost per call: a small list, a deque append and pop, instead of a ``TimerHandle`` in the loop's
    heap and an async context manager.  Each thread keeps the instance of the loop it last ran.
    """

    __slots__ = ("armed", "entries", "ident", "limit", "loop", "pid", "same_clock")

    def __init__(self, loop: asyncio.AbstractEventLoop, mono: Callable[[], float]) -> None:
        self.loop = loop
        self.pid = PID[0]
        # The thread that made this instance, the only one that reads it (each thread keeps its
        # own): its loop runs here exactly when the loop's ``_thread_id`` is this.
        self.ident = threading.get_ident()
        self.entries: deque[list[Any]] = deque()
        self.armed = False
        self.limit = COMPACT_AT
        # The loop's clock is time.monotonic, as the policy's: one reading serves both.
        self.same_clock = mono is time.monotonic and type(loop).time is BASE_TIME

    def fire(self, armed_at: float) -> None:
        """The timer: cancel the task of every entry due (the loop ran this timer, so whatever was
        due by ``armed_at`` is, and so is whatever is due by now), then arm for the oldest left."""
        self.armed = False
        due = max(self.loop.time(), armed_at)
        while True:
            entries = self.entries  # read again: a cancellation may run code that sweeps it
            if not entries:
                return
            entry = entries[0]
            task = entry[1]
            if task is not None:
                if entry[0] > due:
                    self.arm(entry[0])
                    return
                entry[2] = True
                entries.popleft()
                task.cancel()
            else:
                entries.popleft()

    def arm(self, when: float) -> None:
        """Set the timer for ``when`` (the oldest entry's due time)."""
        self.armed = True
        self.loop.call_at(when, self.fire, when)

    def leave(self, entry: list[Any]) -> None:
        """A call left the layer: forget its entry (the newest is simply dropped; an older one is
        marked, and finished entries at the front are swept)."""
        entries = self.entries
        if entries and entries[-1] is entry:  # nothing behind it to keep in order
            entries.pop()
            return
        entry[1] = None
        while entries and entries[0][1] is None:
            entries.popleft()
        if len(entries) > self.limit:
            live = deque(e for e in entries if e[1] is not None)
            self.entries = live
            self.limit = max(COMPACT_AT, 2 * len(live))


def expire_one(entry: list[Any]) -> None:
    """The own timer of a call whose deadline was cut short: cancel its task if still inside."""
    task = entry[1]
    if task is not None:
        entry[2] = True
        task.cancel()
