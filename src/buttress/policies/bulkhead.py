"""Bulkhead: at most ``max_concurrent`` calls at once, a bounded queue, a bounded wait.

A bulkhead isolates one dependency's concurrency so that a slow dependency cannot take every thread
or task of the service with it.  It serves threads and asyncio tasks alike, from one shared count.

State (under one lock, never held across user code)::

    active   calls running now            0 <= active <= max_concurrent
    waiters  FIFO of queued callers       0 <= len(waiters) <= max_queue

Decisions::

    enter:  active < max_concurrent            -> active += 1, run
            len(waiters) < max_queue, wait > 0 -> queue, wait up to min(max_wait, deadline left)
            otherwise                          -> BulkheadFull
    leave:  a waiter is queued                 -> hand the slot to the oldest waiter
                                                  (active unchanged)
            otherwise                          -> active -= 1

The slot is *handed over* on release rather than freed and raced for, so the queue is served in
order and a newcomer can never overtake a waiter; while anyone waits, ``active == max_concurrent``.
A waiter whose wait runs out after it was handed a slot keeps the slot (the grant wins the race),
and an asyncio waiter cancelled after its grant passes the slot on, so a slot is never lost or
doubled.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import _DEADLINE
from buttress.errors import BulkheadFull, ConfigError
from buttress.events import Emitter, Event

from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync

__all__ = ["Bulkhead", "BulkheadRejected", "BulkheadWaited"]

DEFAULT_MAX_CONCURRENT = 10
DEFAULT_MAX_QUEUE = 0
DEFAULT_MAX_WAIT = 1.0
_TIMEOUT_MAX = threading.TIMEOUT_MAX


@dataclass(frozen=True, slots=True)
class BulkheadRejected(Event):
    """A call was refused.  ``reason``: ``full`` (no slot, no queue room), ``timeout`` (the wait ran
    out) or ``deadline`` (the deadline in force left no time to wait)."""

    policy_type: ClassVar[str] = "bulkhead"
    kind: ClassVar[str] = "rejected"
    reason: str
    active: int
    queued: int


@dataclass(frozen=True, slots=True)
class BulkheadWaited(Event):
    """A queued call got its slot after waiting ``waited`` seconds."""

    policy_type: ClassVar[str] = "bulkhead"
    kind: ClassVar[str] = "waited"
    waited: float


class _Waiter:
    """One queued caller.  ``granted`` is set under the bulkhead's lock and is the truth; the lock
    (sync) or future (async) is only the wake-up signal."""

    __slots__ = ("fut", "granted", "loop", "signal", "thread")

    def __init__(self) -> None:
        self.granted = False
        self.signal: threading.Lock | None = None
        self.fut: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0

    def wake(self) -> None:
        if self.signal is not None:
            self.signal.release()
            return
        fut = self.fut
        loop = self.loop
        assert fut is not None and loop is not None
        if threading.get_ident() == self.thread:
            if not fut.done():
                fut.set_result(None)
        else:
            loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _check_wait(max_wait: float | None) -> float | None:
    if max_wait is None:
        return None
    if isinstance(max_wait, bool) or not isinstance(max_wait, int | float) or not max_wait >= 0:
        raise ConfigError("max_wait", max_wait, "must be a number of seconds >= 0, or None")
    return None if max_wait == math.inf else float(max_wait)


class Bulkhead(Policy):
    """Limit concurrent calls, with an optional bounded FIFO queue.

    :param max_concurrent: calls allowed to run at once (``>= 1``).  Default 10.
    :param max_queue: callers allowed to wait for a slot (``>= 0``; 0, the default, means no queue:
        a call that finds every slot taken is refused at once).
    :param max_wait: how long a queued caller waits at most, in seconds (``>= 0``; ``None``: as long
        as the deadline in force allows, or forever without one).  Default 1 s.  The effective bound
        is ``min(max_wait, deadline - now)``; a caller with no time left is refused without
        queueing.
    :param clock: the clock that the deadline is measured on.
    :param name: the ``policy`` label in events.

    Refusals raise :class:`~buttress.errors.BulkheadFull` (a :class:`~buttress.errors.Rejected`:
    retries do not retry it, breakers do not count it).  ``active``, ``queued`` and ``available``
    read the state; ``limit`` and ``inflight`` let a :class:`~buttress.policies.shed.LoadShedder`
    measure utilisation from this bulkhead.
    """

    kind: ClassVar[str] = "bulkhead"
    order: ClassVar[int] = 60

    __slots__ = ("_active", "_lock", "_waiters", "clock", "max_concurrent", "max_queue", "max_wait")

    def __init__(
        self,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_wait: float | None = DEFAULT_MAX_WAIT,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "bulkhead",
    ) -> None:
        if (
            isinstance(max_concurrent, bool)
            or not isinstance(max_concurrent, int)
            or max_concurrent < 1
        ):
            raise ConfigError("max_concurrent", max_concurrent, "must be an integer >= 1")
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise ConfigError("max_queue", max_queue, "must be an integer >= 0")
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.max_wait = _check_wait(max_wait)
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: deque[_Waiter] = deque()

    def __repr__(self) -> str:
        return (
            f"Bulkhead(name={self.name!r}, max_concurrent={self.max_concurrent}, "
            f"max_queue={self.max_queue}, max_wait={self.max_wait})"
        )

    # -- state -------------------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Calls holding a slot now."""
        return self._active

    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._waiters)

    @property
    def available(self) -> int:
        """Free slots now."""
        return self.max_concurrent - self._active

    @property
    def limit(self) -> int:
        """``max_concurrent`` (for utilisation readers)."""
        return self.max_concurrent

    @property
    def inflight(self) -> int:
        """``active`` (for utilisation readers)."""
        return self._active

    # -- the decisions -----------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """Take a slot if one is free now (never waits).  Pair every ``True`` with
        :meth:`release`."""
        with self._lock:
            if self._active < self.max_concurrent:
                self._active += 1
                return True
            return False

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if any, else to the pool."""
        with self._lock:
            waiters = self._waiters
            if not waiters:
                self._active -= 1
                return
            w = waiters.popleft()
            w.granted = True
        w.wake()

    def _wait_bound(self, now: float) -> float | None:
        """How long a caller may wait: ``min(max_wait, deadline - now)``; ``None`` is unbounded."""
        bound = self.max_wait
        d = _DEADLINE.get()
        if d is not None:
            left = d - now
            if bound is None or left < bound:
                bound = left
        return bound

    def _queue_locked(self, bound: float | None, w: _Waiter) -> str:
        """Under the lock: take a slot (``"slot"``), queue ``w`` (``"queued"``), or say why to
        refuse."""
        if self._active < self.max_concurrent:
            self._active += 1
            return "slot"
        if len(self._waiters) >= self.max_queue:
            return "full"
        if bound is not None and bound <= 0:
            return "deadline" if self._deadline_bound(bound) else "full"
        self._waiters.append(w)
        return "queued"

    def _deadline_bound(self, bound: float) -> bool:
        """Did the deadline (rather than ``max_wait``) set this bound?"""
        return self.max_wait is None or bound < self.max_wait

    def _give_up_locked(self, w: _Waiter) -> bool:
        """Under the lock, after a wait ended without a wake-up: ``True`` if the slot was granted
        anyway."""
        if w.granted:
            return True
        self._waiters.remove(w)
        return False

    def _reject(self, reason: str, em: Emitter, bound: float | None) -> BulkheadFull:
        if em.active:
            em.emit(
                BulkheadRejected(
                    em.pipeline,
                    self.name,
                    self.clock.monotonic(),
                    reason,
                    self._active,
                    len(self._waiters),
                )
            )
        if reason == "full":
            what = f"all {self.max_concurrent} slots taken"
            if self.max_queue:
                what += f" and the queue of {self.max_queue} is full"
        elif reason == "deadline":
            what = "the deadline in force leaves no time to wait for a slot"
        else:
            what = f"no slot freed within {bound:g}s"
        return BulkheadFull(f"bulkhead {self.name!r}: {what}", policy=self.name)

    def _reason_for(self, bound: float | None) -> str:
        return "deadline" if bound is not None and self._deadline_bound(bound) else "timeout"

    # -- executors ---------------------------------------------------------------------------------

    def _acquire_slow(self, em: Emitter) -> None:
        mono = self.clock.monotonic
        start = mono()
        bound = self._wait_bound(start)
        w = _Waiter()
        signal = w.signal = threading.Lock()
        signal.acquire()
        with self._lock:
            outcome = self._queue_locked(bound, w)
        if outcome != "queued":
            if outcome != "slot":
                raise self._reject(outcome, em, bound)
            return
        if not signal.acquire(timeout=-1 if bound is None else min(max(0.0, bound), _TIMEOUT_MAX)):
            with self._lock:
                granted = self._give_up_locked(w)
            if not granted:
                raise self._reject(self._reason_for(bound), em, bound)
        if em.active:
            em.emit(BulkheadWaited(em.pipeline, self.name, mono(), mono() - start))

    async def _acquire_slow_async(self, em: Emitter) -> None:
        mono = self.clock.monotonic
        start = mono()
        bound = self._wait_bound(start)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        w = _Waiter()
        w.fut = fut
        w.loop = loop
        w.thread = threading.get_ident()
        with self._lock:
            outcome = self._queue_locked(bound, w)
        if outcome != "queued":
            if outcome != "slot":
                raise self._reject(outcome, em, bound)
            return
        try:
            if bound is None:
                await fut
            else:
                await asyncio.wait_for(fut, max(0.0, bound))
        except TimeoutError:
            with self._lock:
                granted = self._give_up_locked(w)
            if not granted:
                raise self._reject(self._reason_for(bound), em, bound) from None
        except BaseException:
            with self._lock:
                granted = self._give_up_locked(w)
            if granted:
                self.release()
            raise
        if em.active:
            em.emit(BulkheadWaited(em.pipeline, self.name, mono(), mono() - start))

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        lock = self._lock
        limit = self.max_concurrent
        waiters = self._waiters
        slow = self._acquire_slow
        direct = nxt is invoke_sync
        em = emitter
        me = self

        def bulkhead_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                fast = me._active < limit
                if fast:
                    me._active += 1
            if not fast:
                slow(em)
            try:
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            finally:
                # release(), inlined: hand the slot to the oldest waiter, or free it
                with lock:
                    w = waiters.popleft() if waiters else None
                    if w is None:
                        me._active -= 1
                    else:
                        w.granted = True
                if w is not None:
                    w.wake()

        return bulkhead_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        lock = self._lock
        limit = self.max_concurrent
        waiters = self._waiters
        slow = self._acquire_slow_async
        direct = nxt is invoke_async
        em = emitter
        me = self

        async def bulkhead_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with lock:
                fast = me._active < limit
                if fast:
                    me._active += 1
            if not fast:
                await slow(em)
            try:
                return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            finally:
                with lock:
                    w = waiters.popleft() if waiters else None
                    if w is None:
                        me._active -= 1
                    else:
                        w.granted = True
                if w is not None:
                    w.wake()

        return bulkhead_call_async
