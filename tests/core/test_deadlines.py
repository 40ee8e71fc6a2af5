"""Deadlines and timeouts: nesting, remaining(), async cancellation, sync cooperation, hard mode."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from buttress import (
    AttemptTimeout,
    Backoff,
    ConfigError,
    DeadlineExceeded,
    Pipeline,
    Retry,
    Timeout,
    deadline,
    remaining,
)
from buttress.context import Context, current_deadline, use_context
from buttress.events import Event, add_listener
from buttress.testing import FakeClock


def test_deadline_sets_and_restores(fake_clock: FakeClock) -> None:
    assert current_deadline() is None
    assert remaining(fake_clock) is None
    with deadline(5.0, clock=fake_clock) as d:
        assert fake_clock.monotonic() + 5.0 == d.at == current_deadline()
        fake_clock.advance(2.0)
        assert 3.0 == remaining(fake_clock) == d.remaining()
        assert not d.expired()
        fake_clock.advance(4.0)
        assert 0.0 == remaining(fake_clock)  # never negative
        assert d.expired()
    assert current_deadline() is None


def test_nested_deadlines_take_the_earliest(fake_clock: FakeClock) -> None:
    t0 = fake_clock.monotonic()
    with deadline(5.0, clock=fake_clock):
        with deadline(10.0, clock=fake_clock) as later:
            assert t0 + 5.0 == later.at
        with deadline(2.0, clock=fake_clock) as sooner:
            assert t0 + 2.0 == sooner.at
            assert 2.0 == remaining(fake_clock)
        assert t0 + 5.0 == current_deadline()


def test_timeout_policy_nests_inside_a_deadline(fake_clock: FakeClock) -> None:
    seen: list[float | None] = []
    p = Pipeline([Timeout(10.0, clock=fake_clock)])
    with deadline(3.0, clock=fake_clock):
        p.call(lambda: seen.append(remaining(fake_clock)))
    p.call(lambda: seen.append(remaining(fake_clock)))
    assert [3.0, 10.0] == seen


def test_sync_timeout_refuses_to_start_after_the_deadline(fake_clock: FakeClock) -> None:
    ran = []
    p = Pipeline([Timeout(1.0, clock=fake_clock)])
    with deadline(1.0, clock=fake_clock):
        fake_clock.advance(1.5)
        with pytest.raises(DeadlineExceeded):
            p.call(lambda: ran.append(1))
    assert [] == ran


def test_sync_timeout_is_cooperative(fake_clock: FakeClock) -> None:
    """A sync call is not interrupted: it sees the deadline and its result is kept."""
    p = Pipeline([Timeout(1.0, clock=fake_clock)])

    def slow() -> str:
        fake_clock.advance(2.0)
        return "late but done"

    assert "late but done" == p.call(slow)


def test_context_deadline_is_the_deadline_in_force(fake_clock: FakeClock) -> None:
    ctx = Context(deadline=fake_clock.monotonic() + 4.0)
    with use_context(ctx):
        assert 4.0 == remaining(fake_clock)
        with deadline(1.0, clock=fake_clock):
            assert 1.0 == ctx.remaining(fake_clock)
    assert current_deadline() is None


async def test_async_deadline_cancels_the_awaited_work() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        async with deadline(0.05):
            await slow()
    assert cancelled.is_set()
    assert time.monotonic() - t0 < 2.0


async def test_async_total_timeout_cancels_and_raises_deadline_exceeded() -> None:
    cancelled = asyncio.Event()
    seen: list[Event] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    p = Pipeline([Timeout(0.05)], name="deadlined")
    remove = add_listener(seen.append)
    try:
        with pytest.raises(DeadlineExceeded):
            await p.call_async(slow)
    finally:
        remove()
    assert cancelled.is_set()
    assert ["buttress_timeout_deadline_exceeded"] == [
        e.name for e in seen if e.pipeline == "deadlined" and e.policy_type == "timeout"
    ]


async def test_async_attempt_timeout_is_retried() -> None:
    calls = 0

    async def first_hangs() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        return "second was quick"

    p = Pipeline(
        [
            Timeout(0.05, scope="attempt"),
            Retry(attempts=3, backoff=Backoff.constant(0.0), budget=None),
        ]
    )
    assert "second was quick" == await p.call_async(first_hangs)
    assert 2 == calls


async def test_async_timeout_does_not_swallow_the_callees_own_timeout_error() -> None:
    async def raises_timeout() -> None:
        raise TimeoutError("from the callee")

    with pytest.raises(TimeoutError, match="from the callee"):
        await Pipeline([Timeout(5.0)]).call_async(raises_timeout)


def test_hard_timeout_stops_waiting_at_the_deadline() -> None:
    release = threading.Event()
    finished = threading.Event()

    def hung() -> None:
        release.wait(5)
        finished.set()

    p = Pipeline([Timeout(0.05, scope="attempt", hard=True)])
    t0 = time.monotonic()
    with pytest.raises(AttemptTimeout):
        p.call(hung)
    waited = time.monotonic() - t0
    assert waited < 1.0
    assert not finished.is_set()  # abandoned, still running in the background
    release.set()
    assert finished.wait(2)


def test_hard_timeout_passes_results_errors_and_the_deadline_through() -> None:
    policy = Timeout(2.0, hard=True)
    p = Pipeline([policy])
    assert 2.0 >= p.call(remaining) > 1.0  # type: ignore[operator]

    def boom() -> None:
        raise KeyError("inner")

    with pytest.raises(KeyError):
        p.call(boom)
    assert threading.current_thread().name not in p.call(lambda: threading.current_thread().name)


def test_hard_timeout_workers_are_daemons_and_bounded() -> None:
    release = threading.Event()
    policy = Timeout(0.02, hard=True, max_workers=2, name="bounded")
    p = Pipeline([policy])
    for _ in range(4):
        with pytest.raises(DeadlineExceeded):
            p.call(release.wait, 5)
    names = [t for t in threading.enumerate() if t.name.startswith("buttress-bounded-")]
    assert 2 == len(names)  # two calls hang in the workers, two more wait in the queue
    assert all(t.daemon for t in names)
    release.set()


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2s", True])
def test_negative_or_bad_timeouts_fail_at_build(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        Timeout(bad)  # type: ignore[arg-type]
    assert "seconds" == info.value.parameter
    assert f"invalid seconds={bad!r}" in str(info.value)


def test_negative_deadline_fails_naming_the_value() -> None:
    with pytest.raises(ConfigError, match=r"invalid seconds=-1"):
        deadline(-1)


def test_bad_timeout_options_are_named() -> None:
    with pytest.raises(ConfigError, match="invalid scope='each'"):
        Timeout(1.0, scope="each")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="invalid max_workers=0"):
        Timeout(1.0, hard=True, max_workers=0)


@pytest.mark.parametrize("bad", [-1, float("nan"), "5s", None, True])
def test_bad_deadlines_fail_naming_the_value(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        deadline(bad)  # type: ignore[arg-type]
    assert ("seconds", f"invalid seconds={bad!r}") == (
        info.value.parameter,
        str(info.value).split(":")[0],
    )
