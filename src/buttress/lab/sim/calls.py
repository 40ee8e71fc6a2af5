"""Callers and a dependency on simulated time: calls sent, served, answered or abandoned.

Both traffic scenarios model the same exchange.  A caller sends a :class:`Call` to a
:class:`Dependency` (a :class:`~buttress.lab.sim.engine.Server` behind a network); the answer
comes back ``network_delay`` seconds after the service ends, or at once (plus the delay) as a
``busy`` error when the queue is full.  The caller waits at most ``timeout`` seconds: then the call
is abandoned, and the dependency, which never learns that, still serves it when its turn comes
(``wasted`` work).

Every call has the same timeout, so deadlines expire in the order calls were sent: one FIFO of
``(deadline, call)`` and a single sweeper entry on the event queue replace a timer per call; calls
answered in time are skipped when they reach the front.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from .engine import Server, Simulation

__all__ = ["Call", "Dependency", "feed"]


class Call:
    """A call in flight: ``ticket`` (what the caller's policy admitted it with), ``sent`` (when),
    ``open`` (nobody has seen its end yet), ``error`` (of its answer; ``None``: success)."""

    __slots__ = ("error", "open", "sent", "ticket")

    def __init__(self, ticket: object, sent: float) -> None:
        self.ticket = ticket
        self.sent = sent
        self.open = True
        self.error: BaseException | None = None


C = TypeVar("C", bound=Call)
T = TypeVar("T", bound=tuple[Any, ...])


class Dependency(Generic[C]):
    """``workers`` servers with a queue of ``queue_limit``, reached over a network.

    :param on_answer: called with a call whose answer arrived in time (``call.error`` is ``None``
        on success).
    :param on_timeout: called with a call its caller abandoned after ``timeout`` seconds.
    :param busy: the error of a call turned away by a full queue.
    :param failure: ``failure(now)`` when a service ends: the error it answers with, or ``None``.
    :param seconds: the expected run length, to size :attr:`per_second`.

    Counters: ``calls`` (sent), ``timeouts``, ``wasted`` (served after their caller gave up),
    ``per_second[k]`` (calls sent in second ``[k, k + 1)``); ``server`` is the queueing station.
    """

    __slots__ = (
        "_answer",
        "_busy",
        "_delay",
        "_failure",
        "_sim",
        "_sweeping",
        "_timed_out",
        "_timeout",
        "_waiting",
        "calls",
        "per_second",
        "server",
        "timeouts",
        "wasted",
    )

    def __init__(
        self,
        sim: Simulation,
        *,
        on_answer: Callable[[C], object],
        on_timeout: Callable[[C], object],
        timeout: float,
        network_delay: float,
        busy: BaseException,
        workers: int,
        queue_limit: int,
        service_time: Callable[[], float],
        failure: Callable[[float], BaseException | None] | None = None,
        seconds: int = 0,
    ) -> None:
        self._sim = sim
        self._timeout = timeout
        self._delay = network_delay
        self._busy = busy
        self._answer = on_answer
        self._timed_out = on_timeout
        self._failure = failure
        self._waiting: deque[tuple[float, C]] = deque()
        self._sweeping = False
        self.server: Server[C] = Server(
            sim,
            workers=workers,
            queue_limit=queue_limit,
            service_time=service_time,
            on_done=self._served,
        )
        self.calls = 0
        self.timeouts = 0
        self.wasted = 0
        self.per_second = [0] * (seconds + 1)

    def send(self, call: C) -> None:
        """``call`` leaves its caller now."""
        sim = self._sim
        now = sim.now
        self.calls += 1
        second = int(now)
        per_second = self.per_second
        if second >= len(per_second):
            per_second.extend([0] * (second + 1 - len(per_second)))
        per_second[second] += 1
        if self.server.submit(call):
            deadline = now + self._timeout
            self._waiting.append((deadline, call))
            if not self._sweeping:
                self._sweeping = True
                sim.at(deadline, self._sweep)
        else:
            call.error = self._busy
            sim.after(self._delay, self._respond, call)

    def _served(self, call: C) -> None:
        if not call.open:
            self.wasted += 1  # the caller gave up already
            return
        if self._failure is not None:
            error = self._failure(self._sim.now)
            if error is not None:
                call.error = error
        self._sim.after(self._delay, self._respond, call)

    def _respond(self, call: C) -> None:
        if call.open:
            call.open = False
            self._answer(call)

    def _sweep(self, _: object) -> None:
        sim = self._sim
        now = sim.now
        waiting = self._waiting
        while waiting:
            deadline, call = waiting[0]
            if call.open and deadline > now:
                sim.at(deadline, self._sweep)
                return
            waiting.popleft()
            if call.open:
                call.open = False
                self.timeouts += 1
                self._timed_out(call)
        self._sweeping = False


def feed(sim: Simulation, items: Sequence[T], handle: Callable[[T], object]) -> None:
    """Deliver ``items`` (tuples whose first element is a time, in time order) to ``handle`` at
    their times.  The next item is scheduled once the previous one is handled, so the event queue
    holds one of them at a time however many there are."""
    n = len(items)
    position = 0

    def step(item: T) -> None:
        nonlocal position
        handle(item)
        position += 1
        if position < n:
            following = items[position]
            sim.at(following[0], step, following)

    if n:
        sim.at(items[0][0], step, items[0])
