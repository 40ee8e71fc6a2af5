"""The lab's strategies are the shipped policies: the driver decides as the executor does."""

from __future__ import annotations

import random

import pytest

from buttress import Backoff, CircuitOpen, Retry, RetryBudget, TokenBucketBudget
from buttress.lab.sim import SimClock
from buttress.lab.strategies import STRATEGIES, RetryDriver
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


def drive(driver: RetryDriver, fn: Flaky, clock: FakeClock) -> tuple[list[float], bool]:
    """Run ``fn`` as the lab's clients do: ask the driver after each failure, wait on the clock."""
    started = clock.monotonic()
    driver.on_request(started)
    attempt, prev, delays = 1, None, []
    while True:
        try:
            fn()
        except Exception as exc:
            driver.on_result(clock.monotonic(), exc)
            delay = driver.next_delay(
                clock.monotonic(), attempt=attempt, started=started, error=exc, previous_delay=prev
            )
            if delay is None:
                return delays, False
            delays.append(delay)
            clock.advance(delay)
            attempt, prev = attempt + 1, delay
        else:
            driver.on_result(clock.monotonic(), None)
            return delays, True


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
    assert ["no-retry", "naive", "backoff", "buttress"] == list(built)
    retries = {name: p.retry for name, p in built.items() if isinstance(p, RetryDriver)}
    assert 4 == len(retries)
    assert (1, None) == (retries["no-retry"].attempts, retries["no-retry"].budget)
    naive = retries["naive"]
    assert (5, None, (0.0, 0.0)) == (naive.attempts, naive.budget, naive.backoff.bounds(3))
    # "buttress" is Retry() as shipped, on the simulation's clock: same attempts, backoff, budget.
    shipped = Retry(clock=clock)
    assert repr(shipped) == repr(retries["buttress"])
    assert isinstance(retries["buttress"].budget, RetryBudget)
    assert clock is retries["buttress"].budget.clock
    # "backoff" is the same retry with the budget taken away.
    assert repr(Retry(clock=clock, budget=None)) == repr(retries["backoff"])
