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
  oldest call still running, serves them all (:mod:`buttress.policies.expiries`).  A call whose
  deadline is cut short by an earlier one in force gets a timer of its own.  The async layer is
  written in :mod:`buttress.policies.fused`, which also runs it inline with the policies next
  to it.
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

import concurrent.futures
import contextvars
import functools
import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.context import DEADLINE
from buttress.errors import AttemptTimeout, DeadlineExceeded
from buttress.events import DeadlineHit, Emitter, TimeoutEvent
from buttress.options import REQUIRED, Options, choice, documented, duration, flag, integer

from .base import FUSE_TIMEOUT, AsyncNext, Policy, SyncNext, invoke_sync
from .fused import fused_layer
from .retry_nesting import RETRY_MARK, in_outer_retry, new_mark

__all__ = ["Timeout", "TimeoutOptions"]

_IDLE_EXIT = 30.0  # seconds an idle hard-timeout worker waits for work before it exits


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

    def expiry(self, em: Emitter) -> Exception:
        """The time is up: report it to ``em``'s listeners (if any) and return the error to
        raise."""
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
                    raise self.expiry(em)
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
                raise self.expiry(emitter)
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
                raise self.expiry(emitter) from None
            finally:
                if mark is not None:  # an abandoned call is no longer inside our retry
                    mark[0] = False

        return hard_timeout_call

    def fused_slot(self) -> int | None:
        # Either scope: the scope decides the error and the default order, and a run keeps the
        # order of the pipeline (an attempt timeout, innermost by default, is a run of one).
        return FUSE_TIMEOUT

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        # The async timeout is written once, in the fused layer (a run of this one policy).
        return fused_layer([self], nxt, emitter)
