"""The fused async layer: a run of timeout, retry, circuit breaker, rate limiter and bulkhead as
one coroutine.

Why it exists: each async layer is a coroutine, and the calls and frames between five of them
cost about as much as their work (``benchmarks/experiments/async_fusion.py``: five layers at about
2.2x the sync pipeline's overhead, their success-path work written in one coroutine at about
1.2x).  Issue 20 asks for at most 1.5x, so when two or more of these five stand next to each other
in a pipeline, in this order, the async path runs them here as one layer (:func:`fused_run_start`
finds the runs; :class:`~buttress.Pipeline` builds them).

What is written here, and what is left to the layers:

* The async timeout, whole (its timers are :mod:`~buttress.policies.expiries`): a
  :class:`~buttress.Timeout`'s own async layer is a fused layer of that one policy, so there is
  one copy.
* Of the other four, only the success path: the retry budget's deposit and the nesting mark, the
  breaker's closed-state check and lock-free success count, the shared rate-limit bucket's
  admission, a bulkhead slot taken and given back.
* Everything else is the layers' own code, called from here.  A breaker that is not closed, a
  rejected or contended admission: the attempt runs through the breaker, limiter and bulkhead
  layers, which decide afresh (nothing was taken before handing over).  No free bulkhead slot:
  the bulkhead's layer queues or rejects.  A failed attempt: the retry's executor
  (:meth:`~buttress.Retry.async_retries`), whose later attempts run through the layers.  An
  outcome other than a plain fast success: the breaker's :meth:`~buttress.CircuitBreaker.recorder`.
* Events: on these success paths the layers emit only the retry's ``AttemptSucceeded`` (when
  someone listens), and so does this; every other event comes from the layers' code.

Which policies may join says each policy's ``fused_slot()``: any timeout; a retry with no
``retry_if_result`` and no budget or a local :class:`~buttress.RetryBudget`; a breaker on its
in-memory store with no ``failure_if_result``; a rate limiter on its in-memory shared bucket (no
``key``) that rejects rather than waits; any bulkhead.  They must read one clock (one reading
serves them all).

``tests/core/test_fused.py`` runs the same calls through fused and layered pipelines and compares
outcomes and the state the policies are left in: a change to a layer's success path must be made
here too, and that test is what says so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from buttress.context import DEADLINE
from buttress.events import AttemptSucceeded, Emitter

from .base import (
    FUSE_BREAKER,
    FUSE_BULKHEAD,
    FUSE_LIMITER,
    FUSE_RETRY,
    FUSE_TIMEOUT,
    AsyncNext,
    Policy,
    invoke_async,
)
from .breaker_state import CLOSED
from .expiries import (
    CANCELLED_SUBCLASS,
    PID,
    TASK_OF_LOOP,
    UNCANCEL_FROM_ENTRY,
    Expiries,
    expire_one,
)
from .retry_nesting import RETRY_MARK

__all__ = ["fused_layer", "fused_run_start"]


def fused_run_start(policies: Sequence[Policy], end: int) -> int:
    """The start of the longest fusable run of ``policies`` ending just before ``end``: policies
    whose own class defines ``fused_slot()`` and whose slot is not ``None``, each in a later slot
    than the one before it, all on one clock."""
    start = end
    after = FUSE_BULKHEAD + 1
    clock = None
    while start > 0:
        p = policies[start - 1]
        # A subclass joins only if it says so itself: it may have changed its layer.
        slot = p.fused_slot() if "fused_slot" in vars(type(p)) else None
        if slot is None or slot >= after:
            break
        c = p.clock  # type: ignore[attr-defined]
        if clock is None:
            clock = c
        elif c is not clock:
            break
        after = slot
        start -= 1
    return start


def _layered(policies: Sequence[Policy], nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
    for p in reversed(policies):
        nxt = p.async_layer(nxt, emitter)
    return nxt


def fused_layer(policies: Sequence[Policy], nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
    """One async layer doing the work of ``policies`` (a run :func:`fused_run_start` found, or
    one timeout: its own async layer) around ``nxt``."""
    by_slot: dict[int | None, Any] = {p.fused_slot(): p for p in policies}
    timeout = by_slot.get(FUSE_TIMEOUT)
    retry = by_slot.get(FUSE_RETRY)
    breaker = by_slot.get(FUSE_BREAKER)
    limiter = by_slot.get(FUSE_LIMITER)
    bulkhead = by_slot.get(FUSE_BULKHEAD)
    em = emitter
    mono = policies[0].clock.monotonic  # type: ignore[attr-defined]
    direct = nxt is invoke_async
    # Breaker, limiter and bulkhead as layers, for the attempts their fast paths do not cover
    # (their state is only read here before handing over, so they decide afresh); the bulkhead's
    # layer alone also serves a call that finds no free slot (it queues or rejects, inside the
    # breaker's recording as in the layers).
    k_layer = nxt if bulkhead is None else bulkhead.async_layer(nxt, em)
    gates = _layered([p for p in (breaker, limiter) if p is not None], k_layer, em)
    gated = breaker is not None or limiter is not None or bulkhead is not None

    t_on = timeout is not None
    if timeout is not None:
        seconds = timeout.seconds
        expiry = timeout.expiry
        deadline = DEADLINE
        running_loop = asyncio.get_running_loop
        current_task = asyncio.current_task
        task_of_loop = None if TASK_OF_LOOP is None else TASK_OF_LOOP.get
        cancelled_error = asyncio.CancelledError
        # Per thread: the Expiries of the event loop last run there (a thread runs one loop at a
        # time; a new loop replaces the old one's).
        local = threading.local()
        pid = PID

    r_on = retry is not None
    marks = False
    if retry is not None:
        ring = retry.budget
        marks = retry.attempts > 1  # only a retry that can retry makes its attempts nested
        on = retry.on
        r_name = retry.name
        retries = retry.async_retries(gates, em)
        mark_var = RETRY_MARK

    b_on = breaker is not None
    if breaker is not None:
        bdata = breaker.machine.store.data
        tick = bdata.ticks.__next__
        record = breaker.recorder(em)
        slow_after = breaker.machine.slow_call_duration

    l_on = limiter is not None
    if limiter is not None:
        bucket = limiter.store
        l_take, l_put = bucket.gate.pop, bucket.gate.append
        interval, tolerance = limiter.interval, limiter.tolerance

    k_on = bulkhead is not None
    if bulkhead is not None:
        free, waiters, serve = bulkhead.slots()
        k_take, k_put = free.pop, free.append
        k_release = bulkhead.release

    async def fused_call_async(
        fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        now = mono()
        if t_on:
            # -- the timeout: the deadline in the context, and the task cancelled when it passes
            at = now + seconds
            outer = deadline.get()
            cut = outer is not None and outer < at
            if cut:
                at = outer
                if at <= now:
                    raise expiry(em)
            # The loop this thread ran last is the running one if it still runs in this thread
            # (a thread runs one loop at a time) and this is still the process that cached it.
            try:
                q = local.q
                fresh = q.pid == pid[0] and q.loop._thread_id == q.ident
            except AttributeError:  # none cached in this thread yet, or a loop without the field
                q = getattr(local, "q", None)
                fresh = False
            if fresh:
                loop = q.loop
            else:
                loop = running_loop()
                if q is None or q.loop is not loop or q.pid != pid[0]:
                    q = local.q = Expiries(loop, mono)
            task: Any = current_task(loop) if task_of_loop is None else task_of_loop(loop)
            if task is None:
                raise RuntimeError("Timeout should be used inside a task")
            # The timer, on the loop's clock: asyncio.timeout(at - now) would set the same.
            entry = [at if q.same_clock else loop.time() + (at - now), task, False]
            if cut:
                handle: asyncio.TimerHandle | None = loop.call_at(entry[0], expire_one, entry)
            else:
                handle = None
                q.entries.append(entry)
                if not q.armed:
                    q.arm(entry[0])
            cancelling = task.cancelling() if UNCANCEL_FROM_ENTRY else 0
            d_token = deadline.set(at)
        try:
            if r_on:
                if ring is not None:  # RetryBudget.on_request, inlined as in the layer
                    cur = ring.current
                    if now < cur.end:
                        cur.deposits += 1
                    else:
                        ring.advance(now).deposits += 1
                if marks:
                    mark = [True, mark_var.get()]
                    m_token = mark_var.set(mark)
            try:
                if not gated:  # a timeout or a retry alone: nothing to admit
                    result = await (fn(*args, **kwargs) if direct else nxt(fn, args, kwargs))
                else:
                    # -- one attempt through breaker, rate limiter and bulkhead
                    admitted = True
                    if b_on:
                        gen = bdata.generation
                        admitted = bdata.state is CLOSED
                    if admitted and l_on:
                        try:
                            l_take()
                        except IndexError:  # contended: the limiter's layer takes its turn
                            admitted = False
                        else:
                            tat = bucket.shared_tat
                            new_tat = (tat if tat > now else now) + interval
                            if new_tat - tolerance - now <= 0.0:
                                bucket.shared_tat = new_tat
                            else:
                                admitted = False
                            l_put(None)
                    if not admitted:
                        result = await gates(fn, args, kwargs)
                    else:
                        held = False
                        if k_on and not waiters:
                            try:
                                k_take()
                                held = True
                            except IndexError:
                                pass
                        try:
                            if k_on and not held:
                                result = await k_layer(fn, args, kwargs)
                            else:
                                result = await (
                                    fn(*args, **kwargs) if direct else nxt(fn, args, kwargs)
                                )
                        except BaseException as exc:
                            if held:
                                k_release()
                            if b_on:
                                record(now, gen, False, exc, None)
                            raise
                        if held:  # Bulkhead.release, inlined as in the layer
                            if waiters:
                                k_release()
                            else:
                                k_put(None)
                                if waiters:
                                    serve()
                        if b_on:
                            t1 = mono()
                            if t1 < bdata.fast_until and t1 - now <= slow_after:
                                tick()  # the breaker's lock-free success count
                            else:
                                record(now, gen, False, None, result)
            except BaseException as e:
                if marks:
                    mark[0] = False
                    mark_var.reset(m_token)
                if r_on and isinstance(e, on):
                    result = await retries(fn, args, kwargs, now, e)
                else:
                    raise
            else:
                if r_on:
                    if marks:
                        mark[0] = False
                        mark_var.reset(m_token)
                    if em.active:
                        em.emit(AttemptSucceeded(em.pipeline, r_name, mono(), 1))
        except BaseException as exc:
            if t_on:
                deadline.reset(d_token)
                if handle is None:
                    q.leave(entry)
                else:
                    handle.cancel()
                    entry[1] = None
                if entry[2]:
                    # Our timer cancelled the task: withdraw that request, as asyncio.timeout
                    # does; the CancelledError is ours only if no other request stands behind it.
                    ours = task.uncancel() <= cancelling and (
                        isinstance(exc, cancelled_error)
                        if CANCELLED_SUBCLASS
                        else type(exc) is cancelled_error
                    )
                    if ours or isinstance(exc, TimeoutError):
                        raise expiry(em) from None
            raise
        if t_on:
            deadline.reset(d_token)
            if handle is not None:
                handle.cancel()
                entry[1] = None
            else:
                # Expiries.leave, its common case inlined (a method call is measurable here).
                entries = q.entries
                if entries and entries[-1] is entry:
                    entries.pop()
                else:
                    q.leave(entry)
            if entry[2]:
                task.uncancel()
        return result

    return fused_call_async
