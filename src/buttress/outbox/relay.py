"""Relays: take messages from the outbox under leases and deliver them.

One round (:meth:`Relay.run_once`)::

    claim up to `batch` due messages, each under a lease with a new fence (of a key, its
    oldest live message; on SQLite a run of them from it)
    for each message, in id order:
        an earlier message of its key failed this round -> give it back untried
        lease already expired by our clock?      -> skip it (another relay may hold it now)
        handler(message)
          returned                               -> to acknowledge
          raised PermanentError                  -> dead-letter ("permanent")
          raised anything else                   -> ask the Retry policy (below)
    acknowledge the delivered ones in one transaction (fenced: a stale fence deletes nothing)

A heartbeat thread (one per relay, from its first round until :meth:`Relay.close`) renews the
leases of the round's messages every ``heartbeat`` seconds while the handler runs; a renewal that
finds a lease gone drops the message from the round.

**The retry decision** is the :class:`~buttress.Retry` policy's own (:meth:`Retry.verdict` and
:meth:`Retry.decide`), made once per failed delivery, with the attempt count kept in the row so it
survives relay crashes and moves between relays: a delay means "due again after the delay";
``attempts``, ``elapsed`` (``max_elapsed`` since the message was enqueued) or ``not_retryable``
mean the dead-letter queue.  Before scheduling a retry the relay withdraws from the policy's retry
budget; when the budget is empty the message is not dead-lettered (nothing is lost for want of
budget) but waits one lease period, its attempt not counted.

**Delivery is at least once.**  A relay killed after the handler ran and before the acknowledgement
leaves the message to be delivered again when its lease expires; the consumer's
:class:`~buttress.outbox.Inbox` makes the *effect* happen once.  Ordering per key holds because a
message is acknowledged only after its handler returned, and the next message of its key becomes
claimable only then.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

from buttress.errors import ConfigError
from buttress.events import Emitter
from buttress.options import documented
from buttress.policies.retry import Retry

from .errors import PermanentError, StoreUnavailable
from .events import MessageDeadLettered, MessageDelivered, MessageFenced, MessageRetryScheduled
from .options import RelayOptions
from .store import Message, Outbox

__all__ = ["Relay"]

Handler = Callable[[Message], object]


def _default_retry() -> Retry:
    return Retry(attempts=8)


@documented(RelayOptions)
class _Batch:
    """One claimed batch, in delivery order (sans-I/O): :meth:`due` yields the messages to
    deliver, holding back those whose key's run already stopped at a failure (they are given back
    and come again in order); :meth:`record` takes each delivery's outcome."""

    __slots__ = ("delivered", "held_back", "messages", "stopped")

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.delivered: list[Message] = []
        self.held_back: list[Message] = []
        self.stopped: set[str] = set()  # keys whose run stopped at a failure: the rest waits

    def due(self) -> Iterator[Message]:
        for m in self.messages:
            if m.key is not None and m.key in self.stopped:
                self.held_back.append(m)
            else:
                yield m

    def record(self, m: Message, delivered: bool) -> None:
        if delivered:
            self.delivered.append(m)
        elif m.key is not None:
            self.stopped.add(m.key)


class Relay:
    """Deliver the messages of ``queue`` in ``outbox`` to ``handler`` (a callable taking a
    :class:`~buttress.outbox.Message`; it raises to fail the delivery).

    ``retry`` decides what a failed delivery becomes (default ``Retry(attempts=8)``: exponential
    backoff from 0.1 s capped at 10 s, then the dead-letter queue); its budget limits retries.
    ``name`` identifies the relay in leases and events (default host, pid and a random suffix).
    Run it in a thread (:meth:`start` / :meth:`stop`), in the caller (:meth:`run`), as an asyncio
    task (:meth:`run_async`), or one per process.
    """

    def __init__(
        self,
        outbox: Outbox,
        queue: str,
        handler: Handler,
        *,
        retry: Retry | None = None,
        lease: float = RelayOptions.lease,
        heartbeat: float | None = RelayOptions.heartbeat,
        batch: int = RelayOptions.batch,
        poll: float = RelayOptions.poll,
        name: str | None = None,
    ) -> None:
        self.options = RelayOptions(lease=lease, heartbeat=heartbeat, batch=batch, poll=poll)
        outbox._known(queue)
        self.outbox = outbox
        self.queue = queue
        self.handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
        self._call = handler
        self._call_async: Callable[[Message], Awaitable[object]]
        if self._is_async:
            self._call_async = handler  # type: ignore[assignment]
        else:

            async def in_thread(msg: Message) -> object:  # a sync handler blocks: in a thread
                return await asyncio.to_thread(handler, msg)

            self._call_async = in_thread
        self.retry = retry if retry is not None else _default_retry()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.emitter = Emitter(self.name)
        self._held: dict[int, int] = {}  # message id -> fence, for the heartbeat
        self._held_lock = threading.Lock()
        self._until = 0.0  # when the round's leases end, by our clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._beat: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Relay(queue={self.queue!r}, name={self.name!r}, {self.options})"

    # -- one round -----------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and deliver it; the number of messages claimed (0: nothing due).  A
        sync handler only (an ``async def`` handler runs with :meth:`run_once_async`)."""
        if self._is_async:
            raise ConfigError("handler", self.handler, "is async: use run_once_async or run_async")
        batch = self._take()
        if batch:
            self._deliver_batch(batch)
        return len(batch)

    async def run_once_async(self) -> int:
        """:meth:`run_once` for an ``async def`` handler (a sync one runs in a worker thread);
        the database work runs in a worker thread (the drivers block)."""
        batch = await asyncio.to_thread(self._take)
        if batch:
            await self._deliver_batch_async(batch)
        return len(batch)

    # The twins: _deliver_batch / _deliver_batch_async and _deliver_one / _deliver_one_async are
    # the same code but for ``await`` and worker threads (tests/outbox/test_relay.py compares their
    # syntax trees).

    def _deliver_batch(self, batch: list[Message]) -> None:
        run = _Batch(batch)
        try:
            for m in run.due():
                run.record(m, self._deliver_one(m))
        except BaseException:
            self._drop_all()
            raise
        self._finish(run)

    async def _deliver_batch_async(self, batch: list[Message]) -> None:
        run = _Batch(batch)
        try:
            for m in run.due():
                run.record(m, await self._deliver_one_async(m))
        except BaseException:
            self._drop_all()
            raise
        await asyncio.to_thread(self._finish, run)

    def _take(self) -> list[Message]:
        """Claim a batch, hold it for the heartbeat (started on the first round)."""
        o = self.options
        batch = self.outbox.claim(self.queue, self.name, o.batch, o.lease)
        if not batch:
            return batch
        with self._held_lock:
            self._held = {m.id: m.fence for m in batch}
            self._until = self.outbox.now() + o.lease
        if self._beat is None or not self._beat.is_alive():
            self._closed.clear()
            self._beat = threading.Thread(
                target=self._heartbeat, name=f"relay-heartbeat:{self.queue}", daemon=True
            )
            self._beat.start()
        return batch

    def _drop_all(self) -> None:
        with self._held_lock:
            self._held = {}

    def _finish(self, run: _Batch) -> None:
        if run.held_back:
            self._give_back(run.held_back)
        self._acknowledge(run.delivered)

    def _give_back(self, msgs: list[Message]) -> None:
        with self._held_lock:
            held = [(m.id, m.fence) for m in msgs if self._held.pop(m.id, None) is not None]
        try:
            self.outbox.release(held)
        except StoreUnavailable:
            pass  # they come back when their leases expire

    def _deliver_one(self, msg: Message) -> bool:
        """Run the handler for one message; ``True`` when it is to be acknowledged."""
        if not self._admit(msg):
            return False
        try:
            self._call(msg)
        except Exception as exc:  # the handler's failure is the message's, not the relay's
            self._failed(msg, exc)
            return False
        self._succeeded()
        return True

    async def _deliver_one_async(self, msg: Message) -> bool:
        """Run the handler for one message; ``True`` when it is to be acknowledged."""
        if not self._admit(msg):
            return False
        try:
            await self._call_async(msg)
        except Exception as exc:  # the handler's failure is the message's, not the relay's
            await asyncio.to_thread(self._failed, msg, exc)
            return False
        self._succeeded()
        return True

    def _admit(self, msg: Message) -> bool:
        """Is the lease still ours (then the delivery counts as a request in the budget)?"""
        # No lock: one dict lookup and one float read are atomic, and a lease the heartbeat drops
        # just after this check is refused at the acknowledgement anyway (fenced).
        if msg.id not in self._held or self.outbox.now() >= self._until:
            return False  # the lease is gone or about to be: another relay may hold it
        budget = self.retry.budget
        if budget is not None and budget.counts_requests:
            budget.on_request(self.retry.clock.monotonic())
        return True

    def _succeeded(self) -> None:
        budget = self.retry.budget
        if budget is not None and budget.counts_outcomes:
            budget.on_success()

    def _failed(self, msg: Message, exc: Exception) -> None:
        retry, now = self.retry, self.outbox.now()
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, PermanentError):
            decision: float | str = "permanent"
        else:
            verdict = retry.verdict(exc, None)
            budget = retry.budget
            if budget is not None and budget.counts_outcomes and verdict not in (None, False):
                budget.on_failure()
            decision = retry.decide(
                attempt=msg.attempts + 1, started=msg.created, now=now, verdict=verdict
            )
        em = self.emitter
        if isinstance(decision, str):
            done = self.outbox.dead_letter(msg, error)
            if done and em.active:
                em.emit(
                    MessageDeadLettered(
                        self.name,
                        self.queue,
                        time.monotonic(),
                        msg.id,
                        msg.attempts + 1,
                        decision,
                        error,
                    )
                )
        else:
            budget = retry.budget
            counted = budget is None or budget.try_withdraw(retry.clock.monotonic())
            delay = decision if counted else max(decision, self.options.lease)
            done = self.outbox.retry_later(msg, delay, error, count_attempt=counted)
            if done and em.active:
                em.emit(
                    MessageRetryScheduled(
                        self.name,
                        self.queue,
                        time.monotonic(),
                        msg.id,
                        msg.attempts + 1,
                        delay,
                        error,
                    )
                )
        if not done:
            self._fenced(msg.id, "verdict")

    def _acknowledge(self, delivered: list[Message]) -> None:
        with self._held_lock:
            held = [(m.id, m.fence) for m in delivered if m.id in self._held]
            self._held = {}
        if not held:
            return
        results = self.outbox.ack(held)
        em = self.emitter
        if not em.active:
            return
        now, mono = self.outbox.now(), time.monotonic()
        by_id = {m.id: m for m in delivered}
        for (mid, _), ok in zip(held, results, strict=True):
            if ok:
                m = by_id[mid]
                em.emit(
                    MessageDelivered(
                        self.name, self.queue, mono, mid, max(0.0, now - m.created), m.attempts + 1
                    )
                )
            else:
                self._fenced(mid, "ack")

    def _fenced(self, message: int, operation: str) -> None:
        if self.emitter.active:
            self.emitter.emit(
                MessageFenced(self.name, self.queue, time.monotonic(), message, operation)
            )

    def _heartbeat(self) -> None:
        # One thread per relay, for its whole life (a thread per round would cost more than the
        # round's database work); it renews whatever the round in progress holds.
        o = self.options
        while not self._closed.wait(o.beat):
            with self._held_lock:
                held = list(self._held.items())
            if not held:
                continue
            until = self.outbox.now() + o.lease
            try:
                kept = self.outbox.renew(held, o.lease)
            except StoreUnavailable:
                continue  # the lease may still be valid; the next beat tries again
            lost = [mid for (mid, _), ok in zip(held, kept, strict=True) if not ok]
            with self._held_lock:
                self._until = until
                for mid in lost:
                    self._held.pop(mid, None)
            for mid in lost:
                self._fenced(mid, "renew")

    # -- drivers -------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Deliver until ``stop`` (or :meth:`stop`) is set; a round that finds nothing due waits
        ``poll`` seconds.  An unavailable store is waited out the same way."""
        stop = stop or self._stop
        while not stop.is_set():
            try:
                taken = self.run_once()
            except StoreUnavailable:
                taken = 0
            if taken == 0:
                stop.wait(self.options.poll)

    async def run_async(self) -> None:
        """:meth:`run` as an asyncio task, with :meth:`run_once_async` (the database work in a
        worker thread, an ``async def`` handler awaited on the loop); cancel the task to stop
        it.  A round cancelled half-way leaves its messages to be delivered again when their
        leases expire."""
        try:
            while True:
                try:
                    taken = await self.run_once_async()
                except StoreUnavailable:
                    taken = 0
                if taken == 0:
                    await asyncio.sleep(self.options.poll)
        finally:
            await asyncio.to_thread(self.close)

    def start(self) -> Relay:
        """Run in a daemon thread until :meth:`stop` (a sync handler; see :meth:`run_async`)."""
        if self._is_async:
            raise ConfigError("handler", self.handler, "is async: use run_once_async or run_async")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=f"relay:{self.queue}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop after its round, wait for it, and end the heartbeat thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def close(self) -> None:
        """End the heartbeat thread (started by the first round); a later round starts it
        again."""
        self._closed.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
