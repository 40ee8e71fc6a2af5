"""The fused async layer does what the layers do.

``buttress.policies.fused`` writes the success path of timeout, retry, breaker, rate limiter and
bulkhead in one coroutine and hands every other path to the layers.  These tests run the same
calls through a fused layer and through the policies' own layers, built alike on fake clocks, and
compare what callers get, the events listeners hear and the state the policies are left in; and
they check with real timers that the fused timeout cancels, converts and gives back as the layer
does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress import (
    Backoff,
    Bulkhead,
    CircuitBreaker,
    DeadlineExceeded,
    Fallback,
    Pipeline,
    RateLimiter,
    Retry,
    Timeout,
)
from buttress.events import Emitter, Event
from buttress.policies.base import AsyncNext, Policy, invoke_async
from buttress.policies.fused import fused_layer, fused_run_start
from buttress.testing import FakeClock

KINDS = ("timeout", "retry", "breaker", "limiter", "bulkhead")


class Flaky(Exception):
    """Retried by the retry (its ``on`` is Exception) and counted by the breaker."""


@st.composite
def policy_specs(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=2, max_size=5, unique=True))
    kinds.sort(key=KINDS.index)
    specs = []
    for kind in kinds:
        if kind == "timeout":
            args = {"seconds": draw(st.sampled_from([0.5, 2.0, 30.0]))}
        elif kind == "retry":
            args = {
                "attempts": draw(st.integers(1, 4)),
                "delay": draw(st.sampled_from([0.0, 0.1, 0.7])),
                "budget": draw(st.booleans()),
            }
        elif kind == "breaker":
            args = {
                "minimum_calls": draw(st.integers(1, 4)),
                "failure_rate_threshold": draw(st.sampled_from([0.25, 0.5, 1.0])),
                "slow_call_duration": draw(st.sampled_from([0.3, 5.0])),
                "break_duration": draw(st.sampled_from([0.5, 3.0])),
            }
        elif kind == "limiter":
            rate = draw(st.sampled_from([2.0, 10.0, 1e6]))
            args = {"rate": rate, "burst": draw(st.integers(1, 3))}
        else:
            args = {"max_concurrent": draw(st.integers(1, 3)), "max_queue": draw(st.integers(0, 2))}
        specs.append((kind, args))
    return specs


def build(specs: list[tuple[str, dict[str, Any]]], clock: FakeClock) -> list[Policy]:
    out: list[Policy] = []
    for kind, a in specs:
        if kind == "timeout":
            out.append(Timeout(a["seconds"], clock=clock))
        elif kind == "retry":
            budget: dict[str, Any] = {} if a["budget"] else {"budget": None}  # default: RetryBudget
            out.append(
                Retry(
                    attempts=a["attempts"],
                    backoff=Backoff.constant(a["delay"]),
                    clock=clock,
                    **budget,
                )
            )
        elif kind == "breaker":
            out.append(
                CircuitBreaker(
                    minimum_calls=a["minimum_calls"],
                    failure_rate_threshold=a["failure_rate_threshold"],
                    slow_call_duration=a["slow_call_duration"],
                    break_duration=a["break_duration"],
                    window_size=4,
                    clock=clock,
                )
            )
        elif kind == "limiter":
            out.append(RateLimiter(a["rate"], burst=a["burst"], clock=clock))
        else:
            out.append(
                Bulkhead(a["max_concurrent"], max_queue=a["max_queue"], max_wait=5.0, clock=clock)
            )
    return out


def layered(policies: list[Policy], em: Emitter) -> AsyncNext:
    nxt: AsyncNext = invoke_async
    for p in reversed(policies):
        nxt = p.async_layer(nxt, em)
    return nxt


# One attempt's outcome: ("ok" | "flaky" | "fatal", how long it takes on the fake clock).
attempts = st.tuples(st.sampled_from(["ok", "ok", "flaky", "fatal"]), st.sampled_from([0.0, 0.4]))
# A wave of calls started together, and the time that passes before it.
waves = st.tuples(st.sampled_from([0.0, 0.2, 1.0]), st.integers(1, 3))


def _shown(value: Any) -> Any:
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    if isinstance(value, Event):
        fields = [getattr(value, f.name) for f in dataclasses.fields(value)]
        return (type(value).__name__, *(_shown(v) for v in fields))
    return value


def _state(policies: list[Policy], clock: FakeClock) -> list[Any]:
    out: list[Any] = []
    for p in policies:
        if isinstance(p, CircuitBreaker):
            out.append(p.snapshot())
        elif isinstance(p, Bulkhead):
            out.append((p.available, p.queued))
        elif isinstance(p, RateLimiter):
            out.append(p.store.shared_tat)  # type: ignore[attr-defined]
        elif isinstance(p, Retry) and p.budget is not None:
            out.append(p.budget.balance(clock.monotonic()))  # type: ignore[attr-defined]
    return out


def run(
    specs: list[tuple[str, dict[str, Any]]],
    script: list[tuple[str, float]],
    plan: list[tuple[float, int]],
    listen: bool,
    make: Callable[[list[Policy], Emitter], AsyncNext],
) -> tuple[list[Any], list[Any], list[Any]]:
    clock = FakeClock()
    policies = build(specs, clock)
    em = Emitter("p")
    heard: list[Any] = []
    if listen:
        em.add_listener(lambda e: heard.append(_shown(e)))
    chain = make(policies, em)
    outcomes = iter(script)

    async def work(i: int) -> int:
        kind, takes = next(outcomes, ("ok", 0.0))
        await asyncio.sleep(0)  # let the wave's other calls in
        clock.advance(takes)
        if kind == "flaky":
            raise Flaky(f"attempt for call {i}")
        if kind == "fatal":
            raise KeyError(i)
        return i

    async def one(i: int) -> Any:
        try:
            return await chain(work, (i,), {})
        except Exception as e:  # what the caller gets is what is compared
            return _shown(e)

    async def main() -> list[Any]:
        got: list[Any] = []
        n = 0
        for gap, width in plan:
            clock.advance(gap)
            got += await asyncio.gather(*(one(n + k) for k in range(width)))
            n += width
        return got

    got = asyncio.run(main())
    return got, heard, _state(policies, clock)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=policy_specs(),
    script=st.lists(attempts, max_size=40),
    plan=st.lists(waves, min_size=1, max_size=12),
    listen=st.booleans(),
)
def test_a_fused_run_does_what_the_layers_do(
    specs: list[tuple[str, dict[str, Any]]],
    script: list[tuple[str, float]],
    plan: list[tuple[float, int]],
    listen: bool,
) -> None:
    fused = run(specs, script, plan, listen, lambda ps, em: fused_layer(ps, invoke_async, em))
    reference = run(specs, script, plan, listen, layered)
    assert fused[0] == reference[0], "callers got different outcomes"
    assert fused[1] == reference[1], "listeners heard different events"
    assert fused[2] == reference[2], "the policies were left in different states"


def test_the_default_five_fuse_into_one_run() -> None:
    five = [Timeout(10.0), Retry(), CircuitBreaker(), RateLimiter(1e9), Bulkhead(1000)]
    assert fused_run_start(five, 5) == 0


def test_runs_stop_where_a_policy_needs_its_own_layer() -> None:
    policies = [
        Fallback(value=0),
        Timeout(10.0),
        Retry(),
        CircuitBreaker(),
        RateLimiter(5.0, mode="wait"),  # waits: its own layer
        Bulkhead(3),
    ]
    assert fused_run_start(policies, 6) == 5  # the bulkhead alone
    assert fused_run_start(policies, 4) == 1  # timeout, retry, breaker
    assert fused_run_start(policies, 1) == 1  # the fallback never joins


def test_policies_on_different_clocks_are_not_fused() -> None:
    a, b = FakeClock(), FakeClock()
    assert fused_run_start([Timeout(1.0, clock=a), Retry(clock=b)], 2) == 1


def test_a_subclass_keeps_its_own_layer_unless_it_opts_in() -> None:
    class Counted(CircuitBreaker):
        pass

    class Joins(CircuitBreaker):
        def fused_slot(self) -> int | None:
            return super().fused_slot()

    assert fused_run_start([Timeout(1.0), Counted()], 2) == 2  # no run ends at the subclass
    assert fused_run_start([Timeout(1.0), Joins()], 2) == 0


def test_out_of_order_policies_are_not_fused() -> None:
    # order="given" keeps a bulkhead outside the breaker: two runs of one.
    assert fused_run_start([Bulkhead(3), CircuitBreaker()], 2) == 1


async def test_a_fused_pipeline_times_out_gives_back_and_can_be_cancelled() -> None:
    five = Pipeline([Timeout(0.05), Retry(), CircuitBreaker(), RateLimiter(1e6), Bulkhead(2)])
    bulkhead = five.policies[-1]
    assert isinstance(bulkhead, Bulkhead)

    async def hangs() -> None:
        await asyncio.sleep(10)

    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await five.call_async(hangs)
    assert time.monotonic() - t0 < 2.0
    assert bulkhead.available == 2

    # A cancellation from outside is not ours: it stays a CancelledError (a long timeout here,
    # so that a slow machine cannot let the timer fire first).
    patient = Pipeline([Timeout(60.0), Retry(), CircuitBreaker(), RateLimiter(1e6), Bulkhead(2)])
    slots = patient.policies[-1]
    assert isinstance(slots, Bulkhead)
    task = asyncio.ensure_future(patient.call_async(hangs))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert slots.available == 2

    async def quick() -> str:
        return "done"

    assert await five.call_async(quick) == "done"


async def test_a_fused_retry_makes_retries_in_child_tasks_nested() -> None:
    clock = FakeClock()
    leaf_calls = 0

    @Retry(attempts=4, backoff=Backoff.constant(0.0), budget=None, clock=clock)
    async def leaf() -> None:
        nonlocal leaf_calls
        leaf_calls += 1
        raise ConnectionError

    outer = Pipeline(
        [
            Timeout(30.0, clock=clock),
            Retry(attempts=2, backoff=Backoff.constant(0.0), clock=clock),
            CircuitBreaker(minimum_calls=100, clock=clock),
        ]
    )
    assert fused_run_start(outer.policies, 3) == 0

    async def fan_out() -> None:
        results = await asyncio.gather(leaf(), leaf(), return_exceptions=True)
        raise results[0]

    with pytest.raises(ConnectionError):
        await outer.call_async(fan_out)
    assert 2 * 2 == leaf_calls  # one attempt per child per outer attempt, not four
