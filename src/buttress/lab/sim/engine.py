"""A small discrete-event simulation engine: simulated time, an event queue, a queueing server.

The lab runs whole systems on *simulated* time so that a minute of a retry storm takes a second of
CPU and the same seed always gives the same answer.  Three pieces:

* :class:`Simulation`: a priority queue of ``(time, sequence, callback, argument)``.
  :meth:`Simulation.run` pops the earliest entry, moves the clock to its time and calls
  ``callback(argument)``; callbacks schedule further entries.  Entries due at the same time run in
  the order they were scheduled (the sequence number breaks ties), so a run is a pure function of
  its inputs.
* :class:`SimClock`: a :class:`~buttress.clock.Clock` whose time is the simulation's.  Buttress
  policies built with it (a :class:`~buttress.RetryBudget`, for example) read simulated time.  It
  cannot *wait*: in a discrete-event model nothing blocks, a delay is an entry scheduled for later,
  so ``sleep`` raises :class:`SimulationError`.
* :class:`Server`: ``workers`` parallel servers in front of one FIFO queue of at most
  ``queue_limit`` waiting jobs (an M/G/c/K station when arrivals are Poisson).  A job that finds
  every worker busy and the queue full is rejected at once.  The server never learns that a caller
  gave up: a job whose caller timed out is still served when its turn comes (that wasted work is
  what makes retry storms last).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from buttress.errors import ButtressError

from .checks import integer

__all__ = ["Server", "SimClock", "Simulation", "SimulationError"]

J = TypeVar("J")


class SimulationError(ButtressError):
    """A simulation was driven in a way it cannot honour (waiting, going back in time)."""


class SimClock:
    """The simulation's time, seen through the :class:`~buttress.clock.Clock` protocol.

    ``monotonic()`` is the current simulated time in seconds (it starts at ``0.0``); ``wall()``
    adds a fixed epoch offset.  Only the owning :class:`Simulation` moves it.
    """

    __slots__ = ("_now", "epoch")

    def __init__(self, epoch: float = 1_700_000_000.0) -> None:
        self._now = 0.0
        self.epoch = float(epoch)

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self.epoch + self._now

    def sleep(self, seconds: float) -> None:
        raise SimulationError(
            f"cannot sleep({seconds:g}) on simulated time: schedule the next step with "
            "Simulation.after() instead"
        )

    async def sleep_async(self, seconds: float) -> None:
        raise SimulationError(
            f"cannot sleep_async({seconds:g}) on simulated time: schedule the next step with "
            "Simulation.after() instead"
        )

    def __repr__(self) -> str:
        return f"SimClock(now={self._now:g})"


class Simulation:
    """An event queue on simulated time.

    :param clock: the clock to drive (default: a fresh :class:`SimClock` at ``0.0``).

    ``processed`` counts the callbacks run so far.
    """

    __slots__ = ("_heap", "_seq", "clock", "processed")

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock if clock is not None else SimClock()
        self._heap: list[tuple[float, int, Callable[[Any], object], Any]] = []
        self._seq = 0
        self.processed = 0

    @property
    def now(self) -> float:
        """The current simulated time, in seconds."""
        return self.clock._now

    @property
    def pending(self) -> int:
        """Entries scheduled and not yet run."""
        return len(self._heap)

    def at(self, time: float, callback: Callable[[Any], object], argument: Any = None) -> None:
        """Run ``callback(argument)`` at simulated ``time`` (not before now, finite)."""
        if not time >= self.clock._now or math.isinf(time):
            raise SimulationError(
                f"cannot schedule at t={time!r}: it must be finite and not before now "
                f"(t={self.clock._now:g})"
            )
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, callback, argument))

    def after(self, delay: float, callback: Callable[[Any], object], argument: Any = None) -> None:
        """Run ``callback(argument)`` ``delay`` seconds from now (``delay >= 0``)."""
        if not 0 <= delay < math.inf:
            raise SimulationError(
                f"cannot schedule after a delay of {delay!r}: must be finite and >= 0"
            )
        self._seq += 1
        heapq.heappush(self._heap, (self.clock._now + delay, self._seq, callback, argument))

    def run(
        self,
        until: float | None = None,
        *,
        progress: Callable[[float], object] | None = None,
        every: int = 50_000,
    ) -> int:
        """Run entries in time order until none is left, or until the next one is due after
        ``until``.

        The clock ends at the time of the last entry run (or at ``until`` when given and reached).
        ``progress(now)`` is called every ``every`` entries.  Returns the number of entries run.
        """
        heap = self._heap
        pop = heapq.heappop
        clock = self.clock
        limit = math.inf if until is None else until
        if limit < clock._now:
            raise SimulationError(f"cannot run until t={until!r}: it is already t={clock._now:g}")
        count = 0
        while heap:
            entry = heap[0]
            if entry[0] > limit:
                break
            pop(heap)
            clock._now = entry[0]
            entry[2](entry[3])
            count += 1
            if progress is not None and count % every == 0:
                progress(clock._now)
        if until is not None:
            clock._now = until
        self.processed += count
        return count


class Server(Generic[J]):
    """``workers`` parallel servers with one FIFO queue of at most ``queue_limit`` waiting jobs.

    :param sim: the simulation the server lives in.
    :param workers: jobs served at once (``>= 1``).
    :param queue_limit: jobs that may wait for a worker (``>= 0``).
    :param service_time: draws the service time of the next job, in seconds (``>= 0``).
    :param on_done: called with the job when its service completes.

    Capacity is ``workers / mean service time`` jobs per second.  Counters: ``arrivals`` (jobs
    offered), ``rejections`` (jobs turned away because the queue was full), ``completions``,
    ``busy_time`` (the sum of service times started, in worker-seconds), ``max_queue`` (the longest
    the queue grew).
    """

    __slots__ = (
        "_busy",
        "_done",
        "_queue",
        "_service_time",
        "_sim",
        "arrivals",
        "busy_time",
        "completions",
        "max_queue",
        "queue_limit",
        "rejections",
        "workers",
    )

    def __init__(
        self,
        sim: Simulation,
        *,
        workers: int,
        queue_limit: int,
        service_time: Callable[[], float],
        on_done: Callable[[J], object],
    ) -> None:
        self._sim = sim
        self.workers = integer("workers", workers, 1)
        self.queue_limit = integer("queue_limit", queue_limit, 0)
        self._service_time = service_time
        self._done = on_done
        self._busy = 0
        self._queue: deque[J] = deque()
        self.arrivals = 0
        self.rejections = 0
        self.completions = 0
        self.busy_time = 0.0
        self.max_queue = 0

    @property
    def busy(self) -> int:
        """Workers serving a job right now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker right now."""
        return len(self._queue)

    def submit(self, job: J) -> bool:
        """Offer ``job``: start it, queue it, or reject it (``False``) when the queue is full."""
        self.arrivals += 1
        if self._busy < self.workers:
            self._start(job)
            return True
        queue = self._queue
        if len(queue) < self.queue_limit:
            queue.append(job)
            self.max_queue = max(self.max_queue, len(queue))
            return True
        self.rejections += 1
        return False

    def _start(self, job: J) -> None:
        self._busy += 1
        d = self._service_time()
        if not d >= 0:
            raise SimulationError(f"service_time() returned {d!r}: must be >= 0")
        self.busy_time += d
        self._sim.after(d, self._complete, job)

    def _complete(self, job: J) -> None:
        self._busy -= 1
        self.completions += 1
        if self._queue:
            self._start(self._queue.popleft())
        self._done(job)
