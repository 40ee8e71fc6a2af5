"""Timeouts: a bound on one attempt or on the whole call, carried as a deadline.

``Timeout(seconds)`` sets a deadline of ``now + seconds`` (or keeps an earlier one already in force)
for everything nested under it, so retries stop sleeping past it and integrations pass the remaining
time on.

* **asyncio**: the awaited work is cancelled when the time is up, and the policy raises
  :class:`~buttress.errors.DeadlineExceeded` (``scope="total"``) or
  :class:`~buttress.errors.AttemptTimeout` (``scope="attempt"``, retryable).  The semantics are
  those of :func:`asyncio.timeout` (the task is cancelled at the deadline; on the way out the
  cancellation is withdrawn with :meth:`asyncio.Task.uncancel`, and only a ``CancelledError``
  that no other cancellation request stands behind becomes the timeout error, so an outer
  cancellation is never swallowed), with a cheaper timer: every call of one layer has the same
  timeout, so due times arrive in order, and one timer per event loop and layer, armed for the
  oldest call still running, serves them all (see :class:`_Expiries`).  A call whose deadline is
  cut short by an earlier one in force gets a timer of its own.
* **threads, cooperative** (default): Python cannot interrupt a running function, so the deadline
  bounds every *wait* inside it (retry sleeps, bulkhead queues, integrations that read
  :func:`buttress.remaining`).  If the deadline has already passed when the layer is entered, the
  call is not started.
* **threads, hard** (``hard=True``): the call runs in a worker thread and the caller stops waiting
  at the deadline.  Limits, by design of CPython (a thread cannot be killed):

  - the worker is *not* stopped: it runs to completion in the background and its result or error is
    discarded, so use it only for calls that are safe to abandon (reads, idempotent requests);
  - at most ``max_workers`` calls run at once per policy; further calls queue, and time spent queued
    counts against their timeout;
  - each call costs a thread hand-off (tens of microseconds), so keep it for calls that may hang;
  - the workers are daemon threads: an abandoned call never keeps the process from exiting, and is
    cut short if the process exits;
  - the call sees the deadline (:func:`buttress.remaining`) and, when the timeout sits inside a
    retry, knows it is nested, through a copy of the caller's context variables; thread-locals do
    not follow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import queue
import sys
import threading
import time
from asyncio import base_events
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import DEADLINE
from buttress.errors import AttemptTimeout, DeadlineExceeded
from buttress.events import DeadlineHit, Emitter, TimeoutEvent
from buttress.options import REQUIRED, Options, choice, documented, duration, flag, integer

from .base import AsyncNext, Policy, SyncNext, invoke_async, invoke_sync
from .retry_nesting import RETRY_MARK, in_outer_retry, new_mark

__all__ = ["Timeout", "TimeoutOptions"]

_IDLE_EXIT = 30.0  # seconds an idle hard-timeout worker waits for work before it exits
_COMPACT_AT = 64  # the least number of entries an _Expiries holds before it sweeps finished ones
# When asyncio.timeout turns the CancelledError into TimeoutError, by interpreter version: once
# withdrawing its own request leaves no request at all (uncancel() == 0) before 3.11.3; from 3.11.3
# (gh-102780) none beyond those standing when the block was entered; the exception must be a
# CancelledError exactly, or from 3.13 any subclass.
_FROM_ENTRY = sys.version_info >= (3, 11, 3)
_SUBCLASS = sys.version_info >= (3, 13)
_BASE_TIME = base_events.BaseEventLoop.time
# In 3.11, asyncio.current_task(loop) is a Python function returning this mapping's entry for the
# loop (the tasks' C code keeps it); reading it directly saves a call.  From 3.12 it is C itself.
_TASK_OF_LOOP: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = (
    getattr(asyncio.tasks, "_current_tasks", None) if sys.version_info < (3, 12) else None
)


class _DaemonPool:
    """A minimal thread pool of *daemon* workers for hard timeouts.

    :class:`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one
    hung call would hang the process; these workers never hold the process.  Workers start on demand
    (up to ``max_workers``) and exit after ``_IDLE_EXIT`` seconds without work.
    """

    __slots__ = ("_idle", "_lock", "_max", "_name", "_queue", "_threads")

    def __init__(self, max_workers: int, name: str) -> None:
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._queue.put((future, call))
        # _idle counts waiting workers minus queued items no worker has claimed yet; a new worker
        # takes the item it was started for.
        with self._lock:
            start = self._idle <= 0 and self._threads < self._max
            if start:
                self._threads += 1
            else:
                self._idle -= 1
        if start:
            threading.Thread(
                target=self._work, name=f"buttress-{self._name}-{self._threads}", daemon=True
            ).start()
        return future

    def _work(self) -> None:
        while True:
            try:
                future, call = self._queue.get(timeout=_IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            if future.set_running_or_notify_cancel():
                try:
                    result = call()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, call
            with self._lock:
                self._idle += 1

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        return self._threads


# This process's id, kept current across fork: asyncio.get_running_loop() checks the process id
# with a system call on every call (hundreds of ns on a sandboxed VM), which the layer below skips
# when the loop it cached for this thread is still the one running here.
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


class _Expiries:
    """The due times of one async timeout layer's calls on one event loop, oldest first.

    An entry is ``[when, task, fired]`` (``when`` on the loop's clock; ``task`` set to ``None``
    when the call leaves the layer; ``fired`` once the task was cancelled for it).  Every call of
    the layer has the same timeout, so ``when`` never decreases along the queue: one timer, armed
    for the oldest entry, serves them all.  When it fires, every entry due is fired (its task
    cancelled, as :func:`asyncio.timeout` does) and the timer is armed again for the oldest entry
    left.  A call leaving the layer marks its entry and drops finished entries from the front; when
    a long call holds the front, finished entries behind it are swept whenever the queue grows past
    ``max(_COMPACT_AT, 2 * calls running at the last sweep)``, which keeps memory proportional to
    the calls running at an amortised O(1) per call.

    Cost per call: a small list, a deque append and pop, instead of a ``TimerHandle`` in the loop's
    heap and an async context manager.  Each thread keeps the instance of the loop it last ran.
    """

    __slots__ = ("armed", "entries", "ident", "limit", "loop", "pid", "same_clock")

    def __init__(self, loop: asyncio.AbstractEventLoop, mono: Callable[[], float]) -> None:
        self.loop = loop
        self.pid = _PID[0]
        # The thread that made this instance, the only one that reads it (each thread keeps its
        # own): its loop runs here exactly when the loop's ``_thread_id`` is this.
        self.ident = threading.get_ident()
        self.entries: deque[list[Any]] = deque()
        self.armed = False
        self.limit = _COMPACT_AT
        # The loop's clock is time.monotonic, as the policy's: one reading serves both.
        self.same_clock = mono is time.monotonic and type(loop).time is _BASE_TIME

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
        """A call left the layer: forget its entry."""
        entry[1] = None
        entries = self.entries
        while entries and entries[0][1] is None:
            entries.popleft()
        if len(entries) > self.limit:
            live = deque(e for e in entries if e[1] is not None)
            self.entries = live
            self.limit = max(_COMPACT_AT, 2 * len(live))


def _expire_one(entry: list[Any]) -> None:
    """The own timer of a call whose deadline was cut short: cancel its task if still inside."""
    task = entry[1]
    if task is not None:
        entry[2] = True
        task.cancel()


@dataclass(frozen=True, kw_only=True)
class TimeoutOptions(Options):
    """Options of :class:`Timeout` (``timeout:`` and ``attempt_timeout:`` in ``reliability.yaml``;
    the key sets the scope)."""

    policy: ClassVar[str] = "Timeout"

    seconds: float = duration(REQUIRED, "The bound, in seconds", gt=0, ge=None)
    scope: Literal["total", "attempt"] = choice(
        "total",
        "total: a deadline for the whole call, outside the retry (bounds its sleeps); attempt: "
        "innermost, each attempt gets its own bound and a retryable AttemptTimeout",
        ("total", "attempt"),
        spec=False,
    )
    hard: bool = flag(
        False,
        "Sync only: run the call in a worker thread and stop waiting at the bound; async calls "
        "are always cancelled",
    )
    max_workers: int = integer(32, "Worker threads for hard timeouts, per policy", ge=1)


@documented(TimeoutOptions)
class Timeout(Policy):
    """Bound a call (``scope="total"``, the default) or each attempt (``scope="attempt"``).

    ``hard`` has limits (see the module docs): the worker thread cannot be killed, only abandoned.
    """

    kind: ClassVar[str] = "timeout"

    def __init__(
        self,
        seconds: float,
        *,
        scope: Literal["total", "attempt"] = TimeoutOptions.scope,
        hard: bool = TimeoutOptions.hard,
        max_workers: int = TimeoutOptions.max_workers,
        clock: Clock = SYSTEM_CLOCK,
        name: str | None = None,
    ) -> None:
        o = self.options = TimeoutOptions.from_arguments(locals())
        self.seconds = o.seconds
        self.scope = o.scope
        self.hard = o.hard
        self.max_workers = o.max_workers
        self.clock = clock
        self.name = name or ("timeout" if o.scope == "total" else "attempt_timeout")
        self._pool: _DaemonPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def order(self) -> int:  # type: ignore[override]
        # Total timeout sits outside the retry; an attempt timeout innermost.
        return 20 if self.scope == "total" else 70

    def __repr__(self) -> str:
        return f"Timeout({self.seconds:g}, scope={self.scope!r}, hard={self.hard})"

    def _expired(self, em: Emitter) -> Exception:
        """The time is up: report it (when someone listens) and return the error to raise."""
        if em.active:
            cls = TimeoutEvent if self.scope == "attempt" else DeadlineHit
            em.emit(cls(em.pipeline, self.name, self.clock.monotonic(), self.seconds))
        return self._error()

    def _error(self) -> Exception:
        if self.scope == "attempt":
            return AttemptTimeout(self.seconds, policy=self.name)
        return DeadlineExceeded(f"timed out after {self.seconds:g}s", policy=self.name)

    def sync_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = DEADLINE
        em = emitter
        if self.hard:
            return self._hard_layer(nxt, emitter)
        direct = nxt is invoke_sync

        def timeout_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            at = now + seconds
            outer = var.get()
            if outer is not None and outer < at:
                if outer <= now:
                    raise self._expired(em)
                at = outer
            token = var.set(at)
            try:
                return fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
            finally:
                var.reset(token)

        return timeout_call

    def _hard_layer(self, nxt: SyncNext, emitter: Emitter) -> SyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = DEADLINE

        def hard_timeout_call(
            fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            outer = var.get()
            at = now + seconds if outer is None else min(outer, now + seconds)
            if at <= now:
                raise self._expired(emitter)
            pool = self._pool
            if pool is None:
                with self._pool_lock:
                    if self._pool is None:
                        self._pool = _DaemonPool(self.max_workers, self.name)
                    pool = self._pool
            # The worker runs in a copy of our context, with the deadline set and, inside a retry,
            # the mark that tells retries in the call that they are nested.
            ctx = contextvars.copy_context()
            ctx.run(var.set, at)
            mark = new_mark() if in_outer_retry(sys._getframe(1)) else None
            if mark is not None:
                ctx.run(RETRY_MARK.set, mark)
            future = pool.submit(functools.partial(ctx.run, nxt, fn, args, kwargs))
            try:
                return future.result(timeout=max(0.0, at - mono()))
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise self._expired(emitter) from None
            finally:
                if mark is not None:  # an abandoned call is no longer inside our retry
                    mark[0] = False

        return hard_timeout_call

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds
        var = DEADLINE
        em = emitter
        expired = self._expired
        running_loop = asyncio.get_running_loop
        current_task = asyncio.current_task
        task_of_loop = None if _TASK_OF_LOOP is None else _TASK_OF_LOOP.get
        cancelled_error = asyncio.CancelledError
        direct = nxt is invoke_async
        # Per thread: the _Expiries of the event loop last run there (a thread runs one loop at a
        # time; a new loop replaces the old one's).
        local = threading.local()
        pid = _PID

        async def timeout_call_async(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            at = now + seconds
            outer = var.get()
            cut = False
            if outer is not None and outer < at:
                at = outer
                cut = True
            if at <= now:
                raise expired(em)
            try:
                q = local.q
            except AttributeError:
                q = None
            # The loop this thread ran last is the running one if it still runs in this thread
            # (a thread runs one loop at a time) and this is still the process that cached it.
            if q is not None and q.pid == pid[0] and getattr(q.loop, "_thread_id", None) == q.ident:
                loop = q.loop
            else:
                loop = running_loop()
                if q is None or q.loop is not loop or q.pid != pid[0]:
                    q = local.q = _Expiries(loop, mono)
            task = current_task(loop) if task_of_loop is None else task_of_loop(loop)
            if task is None:
                raise RuntimeError("Timeout should be used inside a task")
            # The timer, on the loop's clock: asyncio.timeout(at - now) would set the same.
            when = (now if q.same_clock else loop.time()) + (at - now if cut else seconds)
            entry = [when, task, False]
            if cut:
                handle: asyncio.TimerHandle | None = loop.call_at(when, _expire_one, entry)
            else:
                handle = None
                q.entries.append(entry)
                if not q.armed:
                    q.arm(when)
            cancelling = task.cancelling() if _FROM_ENTRY else 0
            token = var.set(at)
            try:
                result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
            except BaseException as exc:
                var.reset(token)
                if handle is None:
                    q.leave(entry)
                else:
                    handle.cancel()
                    entry[1] = None
                if entry[2]:
                    # Our timer cancelled the task: withdraw that request, as asyncio.timeout does;
                    # the CancelledError is ours only if no other request stands behind it.
                    ours = task.uncancel() <= cancelling and (
                        isinstance(exc, cancelled_error)
                        if _SUBCLASS
                        else type(exc) is cancelled_error
                    )
                    if ours or isinstance(exc, TimeoutError):
                        raise expired(em) from None
                raise
            var.reset(token)
            if handle is None:
                entries = q.entries
                if len(entries) == 1 and entries[0] is entry:  # the only call in flight
                    entries.pop()
                else:
                    q.leave(entry)
            else:
                handle.cancel()
                entry[1] = None
            if entry[2]:
                task.uncancel()
            return result

        return timeout_call_async
