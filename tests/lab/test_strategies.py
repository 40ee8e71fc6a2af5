"""The lab's strategies are the shipped policies: the driver decides as the executor does."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import Backoff, CircuitBreaker, CircuitOpen, Pipeline, Retry, RetryBudget
from buttress.lab.sim.engine import SimClock
from buttress.lab.sim.strategies import STRATEGIES, BreakerRetryDriver, RetryDriver, lab_breaker
from buttress.policies.budget import TokenBucketBudget
from buttress.testing import FakeClock


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``"ok"``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("boom")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def drive_to_end(
    driver: RetryDriver, fn: Callable[[], object], clock: FakeClock
) -> tuple[list[float], str]:
    """Run ``fn`` as the lab's clients do: ask the driver before each attempt and after each
    failure, wait on the clock.  Returns the delays and ``"ok"`` or the last error's type name."""
    started = clock.monotonic()
    driver.on_request(started)
    attempt, prev, delays = 1, None, []
    while True:
        sent = clock.monotonic()
        ticket = driver.admit(sent)
        try:
            if isinstance(ticket, BaseException):
                raise ticket
            try:
                fn()
            except Exception as exc:
                driver.on_result(clock.monotonic(), exc, ticket, sent)
                raise
        except Exception as exc:
            delay = driver.next_delay(
                clock.monotonic(), attempt=attempt, started=started, error=exc, previous_delay=prev
            )
            if delay is None:
                return delays, type(exc).__name__
            delays.append(delay)
            clock.advance(delay)
            attempt, prev = attempt + 1, delay
        else:
            driver.on_result(clock.monotonic(), None, ticket, sent)
            return delays, "ok"


def drive(
    driver: RetryDriver, fn: Callable[[], object], clock: FakeClock
) -> tuple[list[float], bool]:
    delays, end = drive_to_end(driver, fn, clock)
    return delays, end == "ok"


def executor(retry: Retry, fn: Flaky, clock: FakeClock) -> tuple[list[float], bool]:
    try:
        retry(fn)()
    except Exception:
        return list(clock.sleeps), False
    return list(clock.sleeps), True


def make(clock: FakeClock, seed: int, **options: object) -> Retry:
    backoff = Backoff.exponential(rng=random.Random(seed))
    return Retry(backoff=backoff, clock=clock, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("failures", [0, 1, 2, 4, 9])
@pytest.mark.parametrize(
    "options",
    [
        {"attempts": 5, "budget": None},
        {"attempts": 3},  # the default budget
        {"attempts": 6, "max_elapsed": 0.5, "budget": None},
        {"attempts": 5, "budget": "tight"},
        {"attempts": 5, "budget": "tokens"},
    ],
    ids=["no-budget", "default-budget", "max-elapsed", "tight-budget", "token-bucket"],
)
def test_driver_and_executor_agree_on_every_delay_and_outcome(
    failures: int, options: dict[str, object]
) -> None:
    results = []
    for run in ("executor", "driver"):
        clock = FakeClock()
        opts = dict(options)
        if opts.get("budget") == "tight":
            opts["budget"] = RetryBudget(ratio=0.0, min_per_second=0.2, ttl=10.0, clock=clock)
        elif opts.get("budget") == "tokens":
            opts["budget"] = TokenBucketBudget(max_tokens=4, token_ratio=0.5)
        retry = make(clock, seed=11, **opts)
        fn = Flaky(failures)
        if run == "executor":
            results.append((*executor(retry, fn, clock), fn.calls))
        else:
            results.append((*drive(RetryDriver(retry), fn, clock), fn.calls))
    assert results[0] == results[1]


def test_driver_reports_why_it_gave_up() -> None:
    clock = FakeClock()
    budgetless = RetryDriver(make(clock, 1, attempts=2, budget=None))
    delays, ok = drive(budgetless, Flaky(5), clock)
    assert (1, False) == (len(delays), ok)
    assert {"attempts": 1} == dict(budgetless.give_ups)

    broke = RetryDriver(make(clock, 1, budget=RetryBudget(ratio=0.0, min_per_second=0.0)))
    assert ([], False) == drive(broke, Flaky(5), clock)
    assert {"budget": 1} == dict(broke.give_ups)

    rejected = RetryDriver(make(clock, 1, budget=None))
    assert ([], False) == drive(rejected, Flaky(5, CircuitOpen(policy="breaker")), clock)
    assert {"not_retryable": 1} == dict(rejected.give_ups)


def test_builtin_strategies_are_the_documented_configurations() -> None:
    clock = SimClock()
    built = {s.name: s.build(clock, random.Random(0)) for s in STRATEGIES}
    assert ["no-retry", "naive", "backoff", "budget", "buttress"] == list(built)
    retries = {name: p.retry for name, p in built.items() if isinstance(p, RetryDriver)}
    assert 5 == len(retries)
    assert (1, None) == (retries["no-retry"].attempts, retries["no-retry"].budget)
    naive = retries["naive"]
    assert (5, None, (0.0, 0.0)) == (naive.attempts, naive.budget, naive.backoff.bounds(3))
    # "budget" is Retry() as shipped, on the simulation's clock: same attempts, backoff, budget.
    shipped = Retry(clock=clock)
    assert repr(shipped) == repr(retries["budget"])
    assert isinstance(retries["budget"].budget, RetryBudget)
    assert clock is retries["budget"].budget.clock
    # "backoff" is the same retry with the budget taken away.
    assert repr(Retry(clock=clock, budget=None)) == repr(retries["backoff"])
    # "buttress" is the same retry around the scenario's breaker, on the same clock.
    guarded = built["buttress"]
    assert isinstance(guarded, BreakerRetryDriver)
    assert repr(shipped) == repr(guarded.retry)
    assert repr(lab_breaker(clock)) == repr(guarded.breaker)
    assert clock is guarded.breaker.clock
    m = guarded.machine
    assert (0.5, 50, 10, 2.0) == (
        m.failure_rate_threshold,
        m.minimum_calls,
        m.permitted_calls_in_half_open,
        m.half_open_timeout,
    )
    assert {"breaker_opens": 0, "breaker_rejections": 0} == guarded.stats()
    assert {} == built["budget"].stats()


class Scripted:
    """Each call takes ``duration`` seconds on ``clock``, then fails when ``fail`` says so."""

    def __init__(self, clock: FakeClock, script: list[tuple[bool, float]]) -> None:
        self.clock = clock
        self.script = script
        self.calls = 0

    def __call__(self) -> str:
        fail, duration = self.script[self.calls % len(self.script)]
        self.calls += 1
        self.clock.advance(duration)
        if fail:
            raise ConnectionError("boom")
        return "ok"


def small_breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        failure_rate_threshold=0.5,
        slow_call_rate_threshold=0.75,
        slow_call_duration=0.3,
        minimum_calls=4,
        window_size=6,
        break_duration=0.5,
        permitted_calls_in_half_open=2,
        half_open_timeout=1.0,
        clock=clock,
    )


requests = st.lists(
    st.tuples(
        st.lists(
            st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.4])), min_size=1, max_size=4
        ),
        st.sampled_from([0.0, 0.05, 0.3, 0.6, 1.5]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(requests, st.integers(0, 3))
def test_breaker_driver_and_executor_agree_on_every_attempt_and_state(
    script: list[tuple[list[tuple[bool, float]], float]], seed: int
) -> None:
    """The lab's retry-around-breaker driver and a real Retry > CircuitBreaker pipeline, given the
    same requests (each a script of attempt outcomes and durations, then a pause), make the same
    attempts, wait the same delays, end the same way, and leave the breaker in the same state."""
    runs = []
    for run in ("executor", "driver"):
        clock = FakeClock()
        retry = make(clock, seed=seed)
        breaker = small_breaker(clock)
        seen = []
        if run == "executor":
            call = Pipeline([breaker, retry], clock=clock)  # default order: retry outside
            for attempts, pause in script:
                fn = Scripted(clock, attempts)
                before = len(clock.sleeps)
                try:
                    call.call(fn)
                    end = "ok"
                except Exception as exc:
                    end = type(exc).__name__
                s = breaker.snapshot()
                seen.append((clock.sleeps[before:], end, fn.calls, s))
                clock.advance(pause)
        else:
            driver = BreakerRetryDriver(retry, breaker)
            for attempts, pause in script:
                fn = Scripted(clock, attempts)
                delays, end = drive_to_end(driver, fn, clock)
                s = breaker.snapshot()
                seen.append((delays, end, fn.calls, s))
                clock.advance(pause)
        runs.append(seen)
    assert runs[0] == runs[1]
