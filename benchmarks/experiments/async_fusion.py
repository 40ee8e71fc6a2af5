"""Experiment (not part of ``make bench``): how much of the async five-policy pipeline's overhead is
its structure (one coroutine per layer) and how much is the layers' work?

Issue 20 asks the async pipeline for at most 1.5x the sync pipeline's overhead.  This measures the
success path of ``Timeout(10) > Retry() > CircuitBreaker() > RateLimiter(1e9) > Bulkhead(1000)``
built five ways, each against the same sync pipeline, in interleaved rounds:

* ``fused``: the pipeline as shipped since session 21 (:mod:`buttress.policies.fused`: the five
  as one coroutine, every path but the success path through the layers);
* ``layered``: each policy's own async layer, one coroutine per policy (the pipeline before);
* ``gates-inline``: timeout and retry as layers, then breaker, rate limiter and bulkhead written
  inline in one coroutine;
* ``gates-closures``: each of the five split into ``enter()`` / ``ok()`` closures with the shipped
  layers' success-path work, driven by one coroutine (what a protocol without code generation
  would cost);
* ``one-coroutine``: the five's success-path work written inline in one coroutine, with fewer
  checks than the shipped layers make (a lower bound for a generated, fused coroutine).

Only the success path is written in the last three (a failure raises ``RuntimeError``): they are
measurements, not policies.  They read private attributes of the policies on purpose.

Run: ``.venv/bin/python benchmarks/experiments/async_fusion.py``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from buttress import Bulkhead, CircuitBreaker, Pipeline, RateLimiter, Retry, Timeout
from buttress.context import DEADLINE
from buttress.events import Emitter
from buttress.policies.base import Policy
from buttress.policies.breaker_state import CLOSED
from buttress.policies.expiries import PID, TASK_OF_LOOP, Expiries
from buttress.policies.retry_nesting import RETRY_MARK

ROUNDS = 15
CALLS = 20_000


class _Experiment(Policy):
    """A policy whose async layer is built by ``make`` and whose sync layer passes through."""

    order = 20

    def __init__(self, make: Callable[[Any], Any]) -> None:
        self.make = make

    def sync_layer(self, nxt: Any, emitter: Emitter) -> Any:
        return nxt

    def async_layer(self, nxt: Any, emitter: Emitter) -> Any:
        return self.make(nxt)


def _layers(*policies: Policy) -> Callable[[Any], Any]:
    """Wrap ``nxt`` in each policy's own async layer (no fusion)."""

    def make(nxt: Any) -> Any:
        for p in reversed(policies):
            nxt = p.async_layer(nxt, Emitter("x"))
        return nxt

    return make


def _admit(limiter: RateLimiter) -> Callable[[float], None]:
    """The shared bucket's admission (the store's own step; refused: ``RuntimeError``)."""
    acquire = limiter.store.acquire_shared
    interval, tolerance = limiter.interval, limiter.tolerance

    def admit(now: float) -> None:
        if acquire(now, interval, tolerance, 0.0) < 0.0:
            raise RuntimeError("refused")

    return admit


def gates_inline(nxt: Any) -> Any:
    breaker, limiter, bulkhead = CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000)
    data = breaker.machine.store.data
    tick = data.ticks.__next__
    record = breaker._record_fn(Emitter("x"))
    mono = time.monotonic
    admit = _admit(limiter)
    take, put = bulkhead._pool.pop, bulkhead._pool.append

    async def gates(fn: Any, args: Any, kwargs: Any) -> Any:
        if data.state is not CLOSED:
            raise RuntimeError("not closed")
        t0 = mono()
        admit(t0)
        take()
        try:
            result = await nxt(fn, args, kwargs)
        finally:
            put(None)
        t1 = mono()
        if t1 < data.fast_until:
            tick()
        else:
            record(t0, data.generation, False, None, result)
        return result

    return gates


def _timeout_gate(seconds: float) -> tuple[Callable[[], Any], Callable[[Any, Any], Any]]:
    mono, var, local, pid = time.monotonic, DEADLINE, threading.local(), PID
    assert TASK_OF_LOOP is not None  # Python 3.11
    task_of_loop = TASK_OF_LOOP.get

    def enter() -> Any:
        now = mono()
        outer = var.get()
        if outer is not None and outer < now + seconds:
            raise RuntimeError("a shorter outer deadline")
        q = getattr(local, "q", None)
        if q is not None and q.pid == pid[0] and getattr(q.loop, "_thread_id", None) == q.ident:
            loop = q.loop
        else:
            loop = asyncio.get_running_loop()
            q = local.q = Expiries(loop, mono)
        task = task_of_loop(loop)
        entry = [now + seconds, task, False]
        q.entries.append(entry)
        if not q.armed:
            q.arm(now + seconds)
        return (q, entry, var.set(now + seconds), task, task.cancelling())

    def ok(state: Any, result: Any) -> Any:
        q, entry, token, task, _ = state
        var.reset(token)
        if len(q.entries) == 1 and q.entries[0] is entry:
            q.entries.pop()
        else:
            q.leave(entry)
        if entry[2]:
            task.uncancel()
        return result

    return enter, ok


def gates_closures(nxt: Any) -> Any:
    t_enter, t_ok = _timeout_gate(10.0)
    ring, mono, mark_var = Retry().budget, time.monotonic, RETRY_MARK
    assert ring is not None
    breaker, limiter, bulkhead = CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000)
    data = breaker.machine.store.data
    tick = data.ticks.__next__
    record = breaker._record_fn(Emitter("x"))
    admit = _admit(limiter)
    take, put = bulkhead._pool.pop, bulkhead._pool.append

    def r_enter() -> Any:
        started = mono()
        cur = ring.current
        if started < cur.end:
            cur.deposits += 1
        else:
            ring.advance(started).deposits += 1
        mark = [True, mark_var.get()]
        return (mark, mark_var.set(mark))

    def r_ok(state: Any, result: Any) -> Any:
        state[0][0] = False
        mark_var.reset(state[1])
        return result

    def b_enter() -> Any:
        if data.state is not CLOSED:
            raise RuntimeError("not closed")
        return (mono(), data.generation)

    def b_ok(state: Any, result: Any) -> Any:
        if mono() < data.fast_until:
            tick()
        else:
            record(state[0], state[1], False, None, result)
        return result

    def l_enter() -> None:
        admit(mono())

    def k_enter() -> None:
        take()

    def k_ok(state: Any, result: Any) -> Any:
        put(None)
        return result

    async def five(fn: Any, args: Any, kwargs: Any) -> Any:
        s0 = t_enter()
        s1 = r_enter()
        s2 = b_enter()
        l_enter()
        k_enter()
        result = await nxt(fn, args, kwargs)
        result = k_ok(None, result)
        result = b_ok(s2, result)
        result = r_ok(s1, result)
        return t_ok(s0, result)

    return five


def one_coroutine(nxt: Any) -> Any:
    ring, mono, mark_var, deadline = Retry().budget, time.monotonic, RETRY_MARK, DEADLINE
    assert ring is not None and TASK_OF_LOOP is not None
    breaker, limiter, bulkhead = CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000)
    data = breaker.machine.store.data
    tick = data.ticks.__next__
    record = breaker._record_fn(Emitter("x"))
    store, interval, tolerance = limiter.store, limiter.interval, limiter.tolerance
    take, put = store.gate.pop, store.gate.append
    k_take, k_put = bulkhead._pool.pop, bulkhead._pool.append
    task_of_loop = TASK_OF_LOOP.get
    entries: list[Any] = []
    loops: list[asyncio.AbstractEventLoop] = []  # the loop, found once (the shipped layer checks)

    async def five(fn: Any, args: Any, kwargs: Any) -> Any:
        now = mono()
        at = now + 10.0
        outer = deadline.get()
        if outer is not None and outer < at:
            raise RuntimeError("a shorter outer deadline")
        if not loops:
            loops.append(asyncio.get_running_loop())
        task = task_of_loop(loops[0])
        entry = [at, task, False]
        entries.append(entry)
        cancelling = task.cancelling()
        d_token = deadline.set(at)
        cur = ring.current
        if now < cur.end:
            cur.deposits += 1
        mark = [True, mark_var.get()]
        m_token = mark_var.set(mark)
        if data.state is not CLOSED:
            raise RuntimeError("not closed")
        take()
        tat = store.shared_tat
        new_tat = (tat if tat > now else now) + interval
        wait = new_tat - tolerance - now
        if wait <= 0.0:
            store.shared_tat = new_tat
        put(None)
        if wait > 0.0:
            raise RuntimeError("refused")
        k_take()
        try:
            result = await nxt(fn, args, kwargs)
        finally:
            k_put(None)
        if mono() < data.fast_until:
            tick()
        else:
            record(now, data.generation, False, None, result)
        mark[0] = False
        mark_var.reset(m_token)
        deadline.reset(d_token)
        entries.pop()
        if entry[2] and task.uncancel() <= cancelling:
            raise TimeoutError
        return result

    return five


def shapes() -> dict[str, Callable[[], list[Policy]]]:
    return {
        "fused": lambda: [
            Timeout(10.0),
            Retry(),
            CircuitBreaker(),
            RateLimiter(1e9),
            Bulkhead(1000),
        ],
        "layered": lambda: [
            _Experiment(
                _layers(Timeout(10.0), Retry(), CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000))
            )
        ],
        "gates-inline": lambda: [
            _Experiment(lambda nxt: _layers(Timeout(10.0), Retry())(gates_inline(nxt)))
        ],
        "gates-closures": lambda: [_Experiment(gates_closures)],
        "one-coroutine": lambda: [_Experiment(one_coroutine)],
        "empty": list,
    }


async def main() -> None:
    async def awork(x: int) -> int:
        return x

    def work(x: int) -> int:
        return x

    async def bare_async() -> float:
        t0 = time.perf_counter()
        for i in range(CALLS):
            await awork(i)
        return (time.perf_counter() - t0) / CALLS

    def bare_sync() -> float:
        t0 = time.perf_counter()
        for i in range(CALLS):
            work(i)
        return (time.perf_counter() - t0) / CALLS

    times: dict[str, list[tuple[float, float]]] = {}
    bare: list[tuple[float, float]] = []
    for _ in range(ROUNDS):
        bare.append((bare_sync(), await bare_async()))
        for name, make in shapes().items():
            pipeline = Pipeline(make())
            a, s = pipeline(awork), pipeline(work)
            t0 = time.perf_counter()
            for i in range(CALLS):
                await a(i)
            t_async = (time.perf_counter() - t0) / CALLS
            t0 = time.perf_counter()
            for i in range(CALLS):
                s(i)
            times.setdefault(name, []).append(((time.perf_counter() - t0) / CALLS, t_async))
    b_sync = statistics.median(b[0] for b in bare)
    b_async = statistics.median(b[1] for b in bare)
    sync_five = statistics.median(t[0] for t in times["fused"]) - b_sync
    print(f"sync five-policy pipeline: {sync_five * 1e9:,.0f} ns over a bare call")
    for name, rows in times.items():
        over = statistics.median(t[1] for t in rows) - b_async
        print(f"{name:15} async {over * 1e9:6,.0f} ns  = {over / sync_five:.2f}x the sync five")


if __name__ == "__main__":
    asyncio.run(main())
