"""The async timeout's own timer against asyncio.timeout, case by case.

``Timeout.async_layer`` cancels the awaited work with one timer per event loop and layer instead of
an ``asyncio.timeout`` block per call.  ``Reference`` below is the layer written with
``asyncio.timeout``; every scenario runs through both and must end the same way: the same result or
exception type, the same count of cancellation requests left on the task, the same view of the
cancellation from inside the call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from buttress import AttemptTimeout, Backoff, DeadlineExceeded, Pipeline, Retry, Timeout, deadline
from buttress.context import DEADLINE, current_deadline
from buttress.events import Emitter
from buttress.policies.base import AsyncNext
from buttress.policies.expiries import COMPACT_AT, Expiries
from buttress.testing import FakeClock

SHORT = 0.03  # the timeout in the scenarios, seconds
HANG = 30.0  # longer than any test waits


class Reference(Timeout):
    """The async layer written with asyncio.timeout: the semantics to keep."""

    def async_layer(self, nxt: AsyncNext, emitter: Emitter) -> AsyncNext:
        mono = self.clock.monotonic
        seconds = self.seconds

        async def layer(
            fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            now = mono()
            at = now + seconds
            outer = DEADLINE.get()
            if outer is not None and outer < at:
                at = outer
            left = at - now
            if left <= 0:
                raise self._error()
            token = DEADLINE.set(at)
            try:
                async with asyncio.timeout(left) as cm:
                    return await nxt(fn, args, kwargs)
            except TimeoutError:
                if cm.expired():
                    raise self._error() from None
                raise
            finally:
                DEADLINE.reset(token)

        return layer


# -- the scenarios: each returns the callee; the outcome is compared between the two layers -------


async def hang(log: list[str]) -> str:
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    return "not reached"


async def quick(log: list[str]) -> str:
    await asyncio.sleep(0)
    return "quick"


async def fails_early(log: list[str]) -> str:
    await asyncio.sleep(0)
    raise ValueError("early")


async def own_timeout_error(log: list[str]) -> str:
    raise TimeoutError("the callee's own")


async def swallows_and_returns(log: list[str]) -> str:
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        log.append("swallowed")
    return "kept going"


async def converts_to_value_error(log: list[str]) -> str:
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        raise ValueError("converted") from None
    return "not reached"


async def converts_to_timeout_error(log: list[str]) -> str:
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        raise TimeoutError("converted") from None
    return "not reached"


async def cancelled_again_while_handling(log: list[str]) -> str:
    """Our timer's cancellation arrives, and an outer cancel is requested before it is handled."""
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        log.append(f"requests={task.cancelling()}")
        raise
    return "not reached"


async def swallows_then_raises_cancelled(log: list[str]) -> str:
    """Swallows our cancellation, then raises a CancelledError of its own."""
    try:
        await asyncio.sleep(HANG)
    except asyncio.CancelledError:
        log.append("swallowed")
    await asyncio.sleep(0)
    raise asyncio.CancelledError("its own")


SCENARIOS = [
    hang,
    quick,
    fails_early,
    own_timeout_error,
    swallows_and_returns,
    converts_to_value_error,
    converts_to_timeout_error,
    cancelled_again_while_handling,
    swallows_then_raises_cancelled,
]


async def outcome(
    policy: Timeout,
    callee: Callable[[list[str]], Awaitable[str]],
    *,
    cancel_after: float | None = None,
    pending_request: bool = False,
) -> tuple[Any, ...]:
    """Run ``callee`` through ``policy`` in a task; what happened, as a comparable tuple."""
    log: list[str] = []
    pipe = Pipeline([policy])

    async def body() -> tuple[Any, int]:
        task = asyncio.current_task()
        assert task is not None
        if pending_request:  # a cancellation requested and swallowed before, never withdrawn
            task.cancel()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                pass
        try:
            result: Any = await pipe.call_async(callee, log)
        except asyncio.CancelledError:
            result = "CancelledError"
        except Exception as exc:
            result = type(exc).__name__
        return result, task.cancelling()

    task = asyncio.create_task(body())
    if cancel_after is not None:
        await asyncio.sleep(cancel_after)
        task.cancel()
    try:
        result, requests = await task
    except asyncio.CancelledError:
        return ("task cancelled", log)
    return (result, requests, log)


def policies(scope: str) -> tuple[Timeout, Timeout]:
    return Timeout(SHORT, scope=scope), Reference(SHORT, scope=scope)  # type: ignore[arg-type]


@pytest.mark.parametrize("scope", ["total", "attempt"])
@pytest.mark.parametrize("callee", SCENARIOS, ids=lambda f: f.__name__)
async def test_each_scenario_ends_as_with_asyncio_timeout(
    scope: str, callee: Callable[[list[str]], Awaitable[str]]
) -> None:
    ours, reference = policies(scope)
    expected = await outcome(reference, callee)
    assert expected == await outcome(ours, callee)


async def test_the_scenarios_cover_every_outcome() -> None:
    """The oracle really distinguishes the cases (so the comparison above can fail)."""
    ours, _ = policies("total")
    seen = {(await outcome(ours, callee))[0] for callee in SCENARIOS}
    assert {
        "quick",
        "kept going",
        "ValueError",
        "TimeoutError",
        "DeadlineExceeded",
        "task cancelled",
    } == seen


@pytest.mark.parametrize("callee", [hang, quick, swallows_and_returns], ids=lambda f: f.__name__)
async def test_an_outer_cancellation_is_never_swallowed(
    callee: Callable[[list[str]], Awaitable[str]],
) -> None:
    ours, reference = policies("total")
    expected = await outcome(reference, callee, cancel_after=SHORT / 3)
    assert expected == await outcome(ours, callee, cancel_after=SHORT / 3)
    if callee is hang:
        assert ("CancelledError", 1, ["cancelled"]) == expected


@pytest.mark.parametrize("callee", [hang, swallows_and_returns], ids=lambda f: f.__name__)
async def test_a_request_left_standing_before_the_call_is_treated_as_asyncio_does(
    callee: Callable[[list[str]], Awaitable[str]],
) -> None:
    """Python 3.11 turns the expiry into TimeoutError only if no request at all is left; 3.12
    only counts requests made after the block was entered.  Both layers follow the interpreter."""
    ours, reference = policies("attempt")
    expected = await outcome(reference, callee, pending_request=True)
    assert expected == await outcome(ours, callee, pending_request=True)


# -- timing, nesting, concurrency ------------------------------------------------------------------


async def test_the_work_is_cancelled_at_the_deadline() -> None:
    log: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await Pipeline([Timeout(SHORT)]).call_async(hang, log)
    took = time.monotonic() - t0
    assert ["cancelled"] == log
    assert SHORT * 0.9 <= took < SHORT + 1.0


async def test_a_deadline_in_force_cuts_the_timeout_short() -> None:
    """Inside a tighter deadline the layer uses a timer of its own, at that deadline."""
    log: list[str] = []
    seen: list[float | None] = []

    async def hang_and_see(log: list[str]) -> str:
        seen.append(current_deadline())
        return await hang(log)

    t0 = time.monotonic()
    with deadline(SHORT), pytest.raises(AttemptTimeout):
        outer_at = current_deadline()
        await Pipeline([Timeout(HANG, scope="attempt")]).call_async(hang_and_see, log)
    assert time.monotonic() - t0 < 1.0
    assert [outer_at] == seen
    assert ["cancelled"] == log


async def test_an_attempt_timeout_inside_a_total_one_is_retried() -> None:
    calls = 0

    async def first_hangs() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(HANG)
        return "second"

    pipe = Pipeline(
        [
            Timeout(5.0),
            Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None),
            Timeout(SHORT, scope="attempt"),
        ]
    )
    assert "second" == await pipe.call_async(first_hangs)
    assert 2 == calls


async def test_many_tasks_each_get_their_own_outcome() -> None:
    """1,000 tasks through one layer, every third hangs: exactly those time out, each after at
    least the timeout, and the others finish."""
    # Room for 1,000 tasks to take their turns on a busy machine: a fresh clone's parallel pass
    # once took longer than 0.3 s to finish one that never hangs.
    seconds = 1.5
    pipe = Pipeline([Timeout(seconds)])

    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if i % 3 == 0:
            await asyncio.sleep(HANG)
        await asyncio.sleep(0)
        return i

    async def one(i: int) -> int | str:
        start = time.monotonic()
        try:
            return await pipe.call_async(work, i)
        except DeadlineExceeded:
            assert time.monotonic() - start >= seconds * 0.9
            return "timed out"

    results = await asyncio.gather(*(one(i) for i in range(1000)))
    assert [("timed out" if i % 3 == 0 else i) for i in range(1000)] == results


async def test_staggered_deadlines_fire_in_order() -> None:
    """Calls entering one after another time out one after another, each about SHORT after it
    entered, from one timer."""
    pipe = Pipeline([Timeout(SHORT)])
    ended: list[tuple[int, float]] = []
    t0 = time.monotonic()

    async def one(i: int) -> None:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await pipe.call_async(asyncio.sleep, HANG)
        ended.append((i, time.monotonic() - started))

    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(SHORT / 4)
    await asyncio.gather(*tasks)
    assert [0, 1, 2, 3, 4] == [i for i, _ in ended]
    assert all(SHORT * 0.9 <= took < SHORT + 1.0 for _, took in ended)
    assert time.monotonic() - t0 < 5.0


async def test_no_timer_per_call_is_left_in_the_loop() -> None:
    """asyncio.timeout leaves one cancelled handle per call in the loop's heap until the loop
    turns; the layer's single timer does not."""
    loop = asyncio.get_running_loop()
    fn = Pipeline([Timeout(10.0)])(quick)
    before = len(loop._scheduled)  # type: ignore[attr-defined]
    for _ in range(2000):
        assert "quick" == await fn([])
    assert len(loop._scheduled) - before <= 1  # type: ignore[attr-defined]


async def test_a_fake_clock_still_times_out_on_the_loops_clock() -> None:
    """The policy's clock sets the deadline; the cancellation runs on the loop's clock."""
    clock = FakeClock()
    log: list[str] = []
    seen: list[float | None] = []

    async def see_then_hang(log: list[str]) -> str:
        seen.append(current_deadline())
        return await hang(log)

    with pytest.raises(AttemptTimeout):
        await Pipeline([Timeout(SHORT, scope="attempt", clock=clock)]).call_async(
            see_then_hang, log
        )
    assert [clock.monotonic() + SHORT] == seen
    assert ["cancelled"] == log


def test_one_layer_serves_event_loops_on_several_threads_and_in_turn() -> None:
    """The same pipeline from two threads' loops at once, then from a fresh loop in this one."""
    pipe = Pipeline([Timeout(SHORT)])
    results: dict[str, list[Any]] = {}

    async def batch() -> list[Any]:
        async def one(i: int) -> Any:
            try:
                return await pipe.call_async(asyncio.sleep, HANG if i % 2 else 0, i)
            except DeadlineExceeded:
                return "timed out"

        return await asyncio.gather(*(one(i) for i in range(100)))

    def run(name: str) -> None:
        results[name] = asyncio.run(batch())

    threads = [threading.Thread(target=run, args=(f"t{k}",)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    run("main, first loop")
    run("main, second loop")
    expected = [("timed out" if i % 2 else i) for i in range(100)]
    names = ("t0", "t1", "main, first loop", "main, second loop")
    assert dict.fromkeys(names, expected) == results


def test_outside_a_task_the_error_is_asyncios() -> None:
    """Driven from a loop callback (a running loop, no task), as asyncio.timeout refuses."""
    errors: list[BaseException] = []

    def drive(policy: Timeout) -> None:
        coro = Pipeline([policy]).call_async(quick, [])
        try:
            coro.send(None)
        except BaseException as exc:
            errors.append(exc)
        coro.close()

    loop = asyncio.new_event_loop()
    try:
        for policy in policies("total"):
            loop.call_soon(drive, policy)
        loop.run_until_complete(asyncio.sleep(0.01))
    finally:
        loop.close()
    assert [(RuntimeError, "Timeout should be used inside a task")] * 2 == [
        (type(e), str(e)) for e in errors
    ]


# -- the queue of due times ------------------------------------------------------------------------


async def test_finished_entries_behind_a_long_call_are_swept() -> None:
    """A long call at the front keeps later entries queued; finished ones are swept once the queue
    passes its bound, so it holds at most about twice the calls still running."""
    loop = asyncio.get_running_loop()
    q = Expiries(loop, time.monotonic)
    task = asyncio.current_task()
    front = [loop.time() + HANG, task, False]
    q.entries.append(front)
    peak = 0
    for _ in range(10 * COMPACT_AT):
        e = [loop.time() + HANG, task, False]
        q.entries.append(e)
        peak = max(peak, len(q.entries))
        q.leave(e)
    assert peak <= COMPACT_AT + 1
    assert [front] == list(q.entries)
    q.leave(front)
    assert [] == list(q.entries)


async def test_the_timer_fires_due_entries_and_rearms_for_the_rest() -> None:
    loop = asyncio.get_running_loop()
    q = Expiries(loop, time.monotonic)
    victims = [asyncio.create_task(asyncio.sleep(HANG)) for _ in range(3)]
    now = loop.time()
    due = [[now - 1.0, victims[0], False], [now, victims[1], False]]
    later = [now + HANG, victims[2], False]
    q.entries.extend([*due, later])
    q.fire(now)
    assert [True, True, False] == [e[2] for e in (*due, later)]
    assert [later] == list(q.entries)
    assert q.armed
    await asyncio.sleep(0)
    assert [True, True, False] == [t.cancelled() for t in victims]
    victims[2].cancel()


async def test_a_child_forked_inside_a_running_loop_times_out_on_its_own_loop() -> None:
    """The layer skips asyncio.get_running_loop when the loop it cached for this thread still runs
    here; in a child forked from inside that loop, the parent's loop object still looks like it
    runs on this thread, so the process id decides."""
    import os

    timeout = Pipeline([Timeout(0.05)])

    async def hang() -> str:
        await asyncio.sleep(2.0)
        return "hung"

    async def child() -> str:
        try:
            return await timeout.call_async(hang)
        except DeadlineExceeded:
            return "timed out"

    assert "timed out" == await child()  # caches this loop for this thread
    pid = os.fork()
    if pid == 0:  # the child: a loop of its own, the parent's cached one never runs again
        code = 0 if asyncio.run(child()) == "timed out" else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert 0 == os.waitstatus_to_exitcode(status)
