"""In-process faults as pipeline policies: the real policies react to them."""

from __future__ import annotations

import itertools
import time

import pytest

from buttress import Fallback, Pipeline, Retry, Timeout
from buttress.chaos.faults import (
    FaultBehavior,
    FaultError,
    FaultInjected,
    FaultLatency,
    FaultResult,
)
from buttress.errors import ConfigError, DeadlineExceeded
from buttress.events import Event
from buttress.policies.backoff import Backoff
from buttress.testing import FakeClock


def ok() -> str:
    return "real"


async def aok() -> str:
    return "real"


def test_faults_sit_innermost_so_retry_sees_them() -> None:
    fault = FaultError(ConnectionError("chaos"), when=[True, True, False])
    retry = Retry(attempts=3, backoff=Backoff.constant(0), budget=None)
    p = Pipeline([fault, retry])
    assert [retry, fault] == list(p.policies)
    assert "real" == p.call(ok)
    assert 2 == fault.injected


def test_rate_zero_and_one_are_exact() -> None:
    never = FaultResult("fake", rate=0.0)
    always = FaultResult("fake", rate=1.0)
    pn, pa = Pipeline([never]), Pipeline([always])
    assert ["real"] * 1000 == [pn.call(ok) for _ in range(1000)]
    assert ["fake"] * 1000 == [pa.call(ok) for _ in range(1000)]


def test_rate_in_between_is_near_its_value() -> None:
    f = FaultResult("fake", rate=0.25, seed=3)
    p = Pipeline([f])
    hits = sum(p.call(ok) == "fake" for _ in range(8000))
    assert 1800 <= hits <= 2200


def test_enabled_switch_at_run_time() -> None:
    f = FaultError(RuntimeError)
    p = Pipeline([f])
    with pytest.raises(RuntimeError):
        p.call(ok)
    f.enabled = False
    assert "real" == p.call(ok)


def test_per_call_generator_schedule() -> None:
    f = FaultResult(factory=lambda: "fake", when=itertools.cycle([False, False, True]))
    p = Pipeline([f])
    assert ["real", "real", "fake"] * 3 == [p.call(ok) for _ in range(9)]


def test_fallback_catches_an_injected_error_and_events_are_emitted(
    captured_events: list[Event],
) -> None:
    p = Pipeline([Fallback("fallback"), FaultError(lambda: ValueError("x"))], name="pay")
    assert "fallback" == p.call(ok)
    injected = [e for e in captured_events if isinstance(e, FaultInjected)]
    assert 1 == len(injected)
    assert "buttress_chaos_fault_injected" == injected[0].name
    assert "error" == injected[0].fault


def test_latency_uses_the_clock() -> None:
    clock = FakeClock()
    f = FaultLatency((0.1, 0.3), clock=clock, seed=1)
    p = Pipeline([f], clock=clock)
    for _ in range(50):
        assert "real" == p.call(ok)
    assert 50 == len(clock.sleeps)
    assert all(0.1 <= s <= 0.3 for s in clock.sleeps)


async def test_async_latency_is_cut_by_an_outer_timeout() -> None:
    p = Pipeline([Timeout(0.05), FaultLatency(5.0)])
    t0 = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        await p.call_async(aok)
    assert time.perf_counter() - t0 < 1.0


async def test_behavior_sync_and_async() -> None:
    seen: list[str] = []

    async def drop_cache() -> None:
        seen.append("async")

    p = Pipeline([FaultBehavior(drop_cache)])
    assert "real" == await p.call_async(aok)
    assert ["async"] == seen
    with pytest.raises(ConfigError, match="async pipelines only"):
        p.call(ok)
    p2 = Pipeline([FaultBehavior(lambda: seen.append("sync"))])
    assert "real" == p2.call(ok)
    assert "sync" == seen[-1]


async def test_async_error_and_result() -> None:
    p = Pipeline([FaultError(TimeoutError)])
    with pytest.raises(TimeoutError):
        await p.call_async(aok)
    assert "fake" == await Pipeline([FaultResult("fake")]).call_async(aok)


@pytest.mark.parametrize(
    ("build", "param"),
    [
        (lambda: FaultResult(1, rate=1.5), "rate"),
        (lambda: FaultResult(1, rate=float("nan")), "rate"),
        (lambda: FaultError(42), "error"),  # type: ignore[arg-type]
        (lambda: FaultLatency(-1), "seconds"),
        (lambda: FaultLatency((2, 1)), "seconds"),
        (lambda: FaultBehavior("x"), "behavior"),  # type: ignore[arg-type]
        (lambda: FaultResult(1, when=5), "when"),  # type: ignore[arg-type]
    ],
)
def test_bad_parameters_are_named(build: object, param: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()  # type: ignore[operator]
    assert param == info.value.parameter
