"""Bulkhead: at most ``max_concurrent`` calls at once, a bounded queue, a bounded wait.

A bulkhead isolates one dependency's concurrency so that a slow dependency cannot take every thread
or task of the service with it.  It serves threads and asyncio tasks alike, from one shared count.

State::

    pool     free permits, a list of ``None``          len(pool) + spare + held == max_concurrent
    spare    permits never handed out yet (lock)       (held: running calls and granted waiters)
    waiters  FIFO of queued callers (lock)             0 <= len(waiters) <= max_queue

Decisions::

    enter:  nobody queued and pool.pop() succeeds      -> run                (no lock)
            else, under the lock:
              nobody queued, a permit or a spare       -> run
              len(waiters) < max_queue, wait > 0       -> queue, then drain; wait up to
                                                          min(max_wait, deadline - now)
              otherwise                                -> BulkheadFull
    leave:  nobody queued                              -> pool.append(None)  (no lock); then, if
                                                          someone queued meanwhile, drain (below)
            else, under the lock                       -> hand the permit to the oldest waiter

The success path takes no lock: under the GIL ``list.pop()`` and ``list.append()`` are atomic, so
a permit is held by exactly one caller and at most ``max_concurrent`` calls run at once.  The only
race is a caller queueing while a permit is being put back; both sides publish first and look
second (the waiter queues, then looks at the pool; the releaser fills the pool, then looks at the
queue), so at least one of them sees the other and *drains* under the lock (while someone is
queued and the pool has a permit: pop it and grant it to the oldest waiter).  No wake-up is lost:
once the releases and enqueues in progress are done, no permit sits in the pool while a caller
waits.

The slot is *handed over* on release rather than freed and raced for, so the queue is served in
order, and a caller that arrives after a waiter has queued never overtakes it (it finds the queue
non-empty and queues behind it).  A waiter whose wait runs out after it was handed a slot keeps the
slot (the grant wins the race), and an asyncio waiter cancelled after its grant passes the slot on,
so a slot is never lost or doubled (an exception raised just after the permit's pop returned, as
a signal handler's ``KeyboardInterrupt`` can be, gives the permit back).  The pool starts with
``min(max_concurrent, 1024)`` permits and the rest are issued under the lock on first need, so
memory follows the concurrency reached.
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
from buttress.context import DEADLINE
from buttress.errors import BulkheadFull
from buttress.events import Emitter, Event
from buttress.options import Options, documented, duration, integer

from .base import FUSE_BULKHEAD, AsyncNext, Policy, SyncNext, invoke_async, invoke_sync

__all__ = ["Bulkhead", "BulkheadOptions", "BulkheadRejected", "BulkheadWaited"]

_TIMEOUT_MAX = threading.TIMEOUT_MAX
_PREFILL = 1024  # permits put in the pool at construction; the rest are issued on first need


@dataclass(frozen=True, slots=True)
class BulkheadRejected(Event, policy_type="bulkhead", kind="rejected"):
    """A call was refused.  ``reason``: ``full`` (no slot, no queue room), ``timeout`` (the wait ran
    out) or ``deadline`` (the deadline in force left no time to wait)."""

    reason: str
    active: int
    queued: int


@dataclass(frozen=True, slots=True)
class BulkheadWaited(Event, policy_type="bulkhead", kind="waited"):
    """A queued call got its slot after waiting ``waited`` seconds."""

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


def _inf_is_none(name: str, max_wait: float | None) -> float | None:
    return None if max_wait == math.inf else max_wait


@dataclass(frozen=True, kw_only=True)
class BulkheadOptions(Options):
    """Options of :class:`Bulkhead` (``bulkhead:`` in ``reliability.yaml``)."""

    policy: ClassVar[str] = "Bulkhead"

    max_concurrent: int = integer(
        10,
        "Calls allowed to run at once.  A modest pool: 10 slots at 20 ms serve 500 calls/s "
        "(Little's law); size it as peak rate x p99 latency, plus headroom",
        ge=1,
    )
    max_queue: int = integer(
        0,
        "Callers allowed to wait for a slot; 0: a full bulkhead refuses at once.  Queueing hides "
        "overload and adds latency: enable it for short bursts only",
        ge=0,
    )
    max_wait: float | None = duration(
        1.0,
        "How long a queued caller waits at most, in seconds; the deadline in force cuts it "
        "shorter.  None: as long as the deadline allows, or forever without one",
        optional=True,
        allow_inf=True,
    )

    def check(self) -> None:
        object.__setattr__(self, "max_wait", _inf_is_none("max_wait", self.max_wait))


@documented(BulkheadOptions)
class Bulkhead(Policy):
    """Limit concurrent calls, with an optional bounded FIFO queue.

    The effective bound on a wait is ``min(max_wait, deadline - now)``; a caller with no time left
    is refused without queueing.  ``clock`` is the clock the deadline is measured on; ``name`` the
    ``policy`` label in events.

    Refusals raise :class:`~buttress.errors.BulkheadFull` (a :class:`~buttress.errors.Rejected`:
    retries do not retry it, breakers do not count it).  ``active``, ``queued`` and ``available``
    read the state; ``limit`` and ``inflight`` let a :class:`~buttress.policies.shed.LoadShedder`
    measure utilisation from this bulkhead.  Per call on the success path (nobody queued): one
    ``list.pop()`` and one ``list.append()``, no lock.
    """

    kind: ClassVar[str] = "bulkhead"
    order: ClassVar[int] = 60

    def __init__(
        self,
        max_concurrent: int = BulkheadOptions.max_concurrent,
        *,
        max_queue: int = BulkheadOptions.max_queue,
        max_wait: float | None = BulkheadOptions.max_wait,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "bulkhead",
    ) -> None:
        o = self.options = BulkheadOptions.from_arguments(locals())
        self.max_concurrent = o.max_concurrent
        self.max_queue = o.max_queue
        self.max_wait = o.max_wait
        self.clock = clock
        self.name = name
        self._lock = threading.Lock()
        self._pool: list[None] = [None] * min(max_concurrent, _PREFILL)
        self._spare = max_concurrent - len(self._pool)
        self._waiters: deque[_Waiter] = deque()

    def __repr__(self) -> str:
        return (
            f"Bulkhead(name={self.name!r}, max_concurrent={self.max_concurrent}, "
            f"max_queue={self.max_queue}, max_wait={self.max_wait})"
        )

    # -- state -------------------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Calls holding a slot now (``max_concurrent - free``; a slot being handed to a waiter
        counts as held)."""
        return self.max_concurrent - len(self._pool) - self._spare

    @property
    def queued(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._waiters)

    @property
    def available(self) -> int:
        """Free slots now."""
        return len(self._pool) + self._spare

    @property
    def limit(self) -> int:
        """``max_concurrent`` (for utilisation readers)."""
        return self.max_concurrent

    @property
    def inflight(self) -> int:
        """``active`` (for utilisation readers)."""
        return self.max_concurrent - len(self._pool) - self._spare

    # -- the decisions -----------------------------------------------------------------------------

    def _take_locked(self) -> bool:
        """Under the lock: take a free permit if nobody is queued."""
        if self._waiters:
            return False
        try:
            self._pool.pop()
        except IndexError:
            if self._spare <= 0:
                return False
            self._spare -= 1
        return True

    def try_acquire(self) -> bool:
        """Take a slot if one is free now and nobody is queued (never waits).  Pair every ``True``
        with :meth:`release`."""
        if self._waiters:
            return False
        try:
            self._pool.pop()
        except IndexError:
            if self._spare <= 0:
                return False
            with self._lock:
                return self._take_locked()
        except BaseException:  # raised after the pop returned (a signal): give the permit back
            self.release()
            raise
        return True

    def release(self) -> None:
        """Give a slot back: to the oldest waiter if any, else to the pool."""
        if self._waiters:
            self._hand_over()
        else:
            self._pool.append(None)
            if self._waiters:
                self._drain()

    def fused_slot(self) -> int | None:
        return FUSE_BULKHEAD

    def slots(self) -> tuple[list[None], deque[_Waiter], Callable[[], None]]:
        """The free permits (``pop()`` one to take a slot), the queue of waiters and the function
        that serves the queue after a permit was appended while someone waited: for
        :mod:`buttress.policies.fused`, which takes and gives back slots inline as the async
        layer does.  Take only while nobody waits; give back through :meth:`release`, or by
        ``append(None)`` and then, if someone queued meanwhile, the serving function."""
        return self._pool, self._waiters, self._drain

    def _hand_over(self) -> None:
        """Release with someone queued: under the lock, grant the permit to the oldest waiter (or
        put it in the pool if the queue emptied meanwhile); wake the waiter after the lock."""
        with self._lock:
            waiters = self._waiters
            if not waiters:
                self._pool.append(None)
                return
            w = waiters.popleft()
            w.granted = True
        w.wake()

    def _drain_locked(self) -> list[_Waiter]:
        """Under the lock: while someone is queued and the pool holds a permit, grant a permit to
        the oldest waiter.  Returns the waiters granted (to wake once the lock is released)."""
        waiters = self._waiters
        pool = self._pool
        granted: list[_Waiter] = []
        while waiters and pool:
            try:
                pool.pop()
            except IndexError:  # a caller arriving before the waiters queued took it
                break
            w = waiters.popleft()
            w.granted = True
            granted.append(w)
        return granted

    def _drain(self) -> None:
        """A permit went back to the pool while someone queued: serve the queue from the pool."""
        with self._lock:
            granted = self._drain_locked()
        for w in granted:
            w.wake()

    def _wait_bound(self, now: float) -> float | None:
        """How long a caller may wait: ``min(max_wait, deadline - now)``; ``None`` is unbounded."""
        bound = self.max_wait
        d = DEADLINE.get()
        if d is not None:
            left = d - now
            if bound is None or left < bound:
                bound = left
        return bound

    def _queue_locked(self, bound: float | None, w: _Waiter) -> tuple[str, list[_Waiter]]:
        """Under the lock: take a slot (``"slot"``), queue ``w`` (``"queued"``), or say why to
        refuse; with the waiters granted by the drain that follows queueing (to wake after the
        lock)."""
        if self._take_locked():
            return "slot", []
        if len(self._waiters) >= self.max_queue:
            return "full", []
        if bound is not None and bound <= 0:
            return "deadline" if self._deadline_bound(bound) else "full", []
        self._waiters.append(w)
        # Queued first, then look at the pool: a permit put back by a releaser that looked at the
        # queue before we joined it is granted now, oldest waiter first.
        granted = self._drain_locked()
        if w.granted:
            granted.remove(w)
            return "slot", granted
        return "queued", granted

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
                    self.active,
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
        """Enter when the lock-free path found someone queued or no permit in the pool."""
        mono = self.clock.monotonic
        start = mono()
        bound = self._wait_bound(start)
        w = _Waiter()
        signal = w.signal = threading.Lock()
        signal.acquire()
        with self._lock:
            outcome, granted = self._queue_locked(bound, w)
        for g in granted:
            g.wake()
        if outcome != "queued":
            if outcome != "slot":
                raise self._reject(outcome, em, bound)
            return
        if not signal.acquire(timeout=-1 if bound is None else min(max(0.0, bound), _TIMEOUT_MAX)):
            with self._lock:
                got = self._give_up_locked(w)
            if not got:
                raise self._reject(self._reason_for(bound), em, bound)
        if em.active:
            em.emit(BulkheadWaited(em.pipeline, self.name, mono(), mono() - start))

    async def _acquire_slow_async(self, em: Emitter) -> None:
        """:meth:`_acquire_slow` for asyncio tasks."""
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
            outcome, granted = self._queue_locked(bound, w)
        for g in granted:
            g.wake()
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
                got = self._give_up_locked(w)
            if not got:
                raise self._reject(self._reason_for(bound), em, bound) from None
        except BaseException:
            with self._lock:
                got = self._give_up_locked(w)
            if got:
                self.release()
            raise
        if em.active:
            em.emit(BulkheadWaited(em.pipeline, self.name, mono(), mono() - start))

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        pool = self._pool
        take = pool.pop
        put = pool.append
        waiters = self._waiters
        slow = self._acquire_slow
        hand_over = self._hand_over
        drain = self._drain
        release = self.release
        direct = nxt is invoke_sync
        em = emitter

        def bulkhead_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if waiters:
                slow(em)
            else:
                try:
                    take()
                except IndexError:
                    slow(em)
                except BaseException:  # raised after the pop returned (a signal): give it back
                    release()
                    raise
            try:
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            finally:
                # release(), inlined
                if waiters:
                    hand_over()
                else:
                    put(None)
                    if waiters:
                        drain()

        return bulkhead_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        pool = self._pool
        take = pool.pop
        put = pool.append
        waiters = self._waiters
        slow = self._acquire_slow_async
        hand_over = self._hand_over
        drain = self._drain
        release = self.release
        direct = nxt is invoke_async
        em = emitter

        async def bulkhead_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            if waiters:
                await slow(em)
            else:
                try:
                    take()
                except IndexError:
                    await slow(em)
                except BaseException:  # raised after the pop returned (a signal): give it back
                    release()
                    raise
            try:
                return await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            finally:
                # release(), inlined
                if waiters:
                    hand_over()
                else:
                    put(None)
                    if waiters:
                        drain()

        return bulkhead_call_async
