"""A scenario of real pipelines on a fake clock, with the events it must produce worked out by hand.

The expected table below is derived from the policies' documented semantics, not from running them:

* ``payments``: retry, 3 attempts, constant 0.5 s backoff, no budget.  Call 1 fails twice then
  succeeds (2 failed attempts, 2 retries, 1 success).  Call 2 always fails (3 failed attempts,
  2 retries, gives up for ``attempts``).  Durations on the fake clock: two 0.5 s sleeps each = 1.0
  s.
* ``search``: fallback + retry whose budget grants nothing (ratio 0, floor 0): the first failure
  finds the budget empty (``retry_budget_exhausted``, ``gave_up`` for ``budget``), the fallback
  answers, and the call succeeds after 0 s.
* ``inventory``: retry + attempt timeout under a deadline that has already passed: the attempt
  timeout refuses to start (``timeout``), the retry sees the deadline and gives up (``deadline``).
* ``async_search``: async retry (2 attempts, 0.5 s) + a real 20 ms attempt timeout around a
  coroutine that would sleep 10 s: both attempts time out, one retry in between, then ``attempts``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from buttress import (
    AttemptTimeout,
    Backoff,
    Fallback,
    Pipeline,
    Retry,
    RetryBudget,
    Timeout,
    deadline,
)
from buttress.testing import FakeClock

Key = tuple[str, str, str]

EXPECTED: dict[Key, int] = {
    ("payments", "retry", "buttress_retry_attempt_failed"): 5,
    ("payments", "retry", "buttress_retry_scheduled"): 4,
    ("payments", "retry", "buttress_retry_attempt_succeeded"): 1,
    ("payments", "retry", "buttress_retry_gave_up"): 1,
    ("payments", "payments", "buttress_pipeline_call_succeeded"): 1,
    ("payments", "payments", "buttress_pipeline_call_failed"): 1,
    ("search", "retry", "buttress_retry_attempt_failed"): 1,
    ("search", "retry", "buttress_retry_budget_exhausted"): 1,
    ("search", "retry", "buttress_retry_gave_up"): 1,
    ("search", "fallback", "buttress_fallback_used"): 1,
    ("search", "search", "buttress_pipeline_call_succeeded"): 1,
    ("inventory", "attempt_timeout", "buttress_timeout_exceeded"): 1,
    ("inventory", "retry", "buttress_retry_attempt_failed"): 1,
    ("inventory", "retry", "buttress_retry_gave_up"): 1,
    ("inventory", "inventory", "buttress_pipeline_call_failed"): 1,
    ("async_search", "attempt_timeout", "buttress_timeout_exceeded"): 2,
    ("async_search", "retry", "buttress_retry_attempt_failed"): 2,
    ("async_search", "retry", "buttress_retry_scheduled"): 1,
    ("async_search", "retry", "buttress_retry_gave_up"): 1,
    ("async_search", "async_search", "buttress_pipeline_call_failed"): 1,
}

# (pipeline, event) -> (count, sum) of the histograms.
EXPECTED_DURATIONS: dict[tuple[str, str], tuple[int, float]] = {
    ("payments", "buttress_pipeline_call_succeeded"): (1, 1.0),
    ("payments", "buttress_pipeline_call_failed"): (1, 1.0),
    ("search", "buttress_pipeline_call_succeeded"): (1, 0.0),
    ("inventory", "buttress_pipeline_call_failed"): (1, 0.0),
    ("async_search", "buttress_pipeline_call_failed"): (1, 0.5),
}
EXPECTED_DELAYS: dict[tuple[str, str], tuple[int, float]] = {
    ("payments", "buttress_retry_scheduled"): (4, 2.0),
    ("async_search", "buttress_retry_scheduled"): (1, 0.5),
}


def _flaky(failures: int) -> object:
    left = [failures]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise ConnectionError("dependency down")
        return "ok"

    return call


def _always_fails() -> str:
    raise ConnectionError("dependency down")


async def run_scenario(clock: FakeClock) -> None:
    """Run the four pipelines of the module docstring once."""
    payments = Pipeline(
        [Retry(attempts=3, backoff=Backoff.constant(0.5), budget=None, clock=clock)],
        name="payments",
        clock=clock,
    )
    assert "ok" == payments.call(_flaky(2))  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        payments.call(_always_fails)

    search = Pipeline(
        [
            Fallback("cached"),
            Retry(
                attempts=3,
                backoff=Backoff.constant(0.5),
                budget=RetryBudget(ratio=0.0, min_per_second=0.0, clock=clock),
                clock=clock,
            ),
        ],
        name="search",
        clock=clock,
    )
    assert "cached" == search.call(_always_fails)

    inventory = Pipeline(
        [
            Retry(attempts=3, backoff=Backoff.constant(0.5), budget=None, clock=clock),
            Timeout(1.0, scope="attempt", clock=clock),
        ],
        name="inventory",
        clock=clock,
    )
    with deadline(0.25, clock=clock):
        clock.advance(1.0)
        with pytest.raises(AttemptTimeout):
            inventory.call(_always_fails)

    async_search = Pipeline(
        [
            Retry(attempts=2, backoff=Backoff.constant(0.5), budget=None, clock=clock),
            Timeout(0.02, scope="attempt", clock=clock),
        ],
        name="async_search",
        clock=clock,
    )

    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    with pytest.raises(AttemptTimeout):
        await async_search.call_async(slow)


def counts(events: list[object]) -> Counter[Key]:
    """Count captured events by (pipeline, policy, name)."""
    out: Counter[Key] = Counter()
    for e in events:
        out[(e.pipeline, e.policy, e.name)] += 1  # type: ignore[attr-defined]
    return out
