"""Client strategies the lab compares: how a caller reacts when a call to the dependency fails.

A strategy is a name, a one-line summary and a *factory* that builds a fresh :class:`ClientPolicy`
for one calling service instance, on the simulation's clock.  Every built-in strategy is a real
:class:`buttress.Retry` (with a real :class:`buttress.Backoff` and, for the default, a real
:class:`buttress.RetryBudget`) driven through :class:`RetryDriver`, which asks the policy the same
questions, in the same order, as Buttress's own retry executor:

1. once per client request: deposit in the budget (``budget.on_request(now)``);
2. after each failed attempt: ``retry.verdict(error, None)``, then ``retry.decide(...)``; a delay is
   granted only if ``budget.try_withdraw(now)`` agrees (asked last, so other refusals cost no
   token);
3. after each attempt, for outcome-counting budgets: ``budget.on_success()`` /
   ``budget.on_failure()``.

The only thing the lab does instead of the executor is *waiting*: the delay becomes an entry on the
simulation's event queue rather than a sleep.

To add a strategy (a later issue adds the circuit breaker), append a :class:`Strategy` to
:data:`STRATEGIES`; its factory may return any object with the :class:`ClientPolicy` methods, e.g.
one whose :meth:`ClientPolicy.admit` refuses calls while a breaker is open.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from buttress.clock import Clock
from buttress.policies.backoff import Backoff
from buttress.policies.retry import Retry

__all__ = ["STRATEGIES", "ClientPolicy", "RetryDriver", "Strategy", "strategy_names"]


class ClientPolicy(Protocol):
    """What the lab's clients ask their policy; one instance per calling service instance."""

    def on_request(self, now: float) -> None:
        """A new client request starts (its first attempt follows)."""
        ...

    def admit(self, now: float) -> BaseException | None:
        """May an attempt go to the server now?  ``None``: yes; an error: refused locally."""
        ...

    def on_result(self, now: float, error: BaseException | None) -> None:
        """An attempt finished: ``error`` is ``None`` on success."""
        ...

    def next_delay(
        self,
        now: float,
        *,
        attempt: int,
        started: float,
        error: BaseException,
        previous_delay: float | None,
    ) -> float | None:
        """After failed attempt number ``attempt``: seconds to wait before the next one, or
        ``None``."""
        ...

    @property
    def give_ups(self) -> Counter[str]:
        """Why requests stopped retrying, by reason (``attempts``, ``budget``,
        ``not_retryable``...)."""
        ...


class RetryDriver:
    """Drive a :class:`buttress.Retry` the way its executor does, with waits left to the caller.

    :param retry: the policy; its ``budget`` (if any) is used as is, so build it on the
        simulation's clock.
    """

    __slots__ = ("_counts_outcomes", "_deposit", "_give_ups", "budget", "retry")

    def __init__(self, retry: Retry) -> None:
        self.retry = retry
        self.budget = retry.budget
        b = self.budget
        self._deposit = b.on_request if b is not None and b.counts_requests else None
        self._counts_outcomes = b is not None and b.counts_outcomes
        self._give_ups: Counter[str] = Counter()

    @property
    def give_ups(self) -> Counter[str]:
        return self._give_ups

    def on_request(self, now: float) -> None:
        if self._deposit is not None:
            self._deposit(now)

    def admit(self, now: float) -> BaseException | None:
        return None

    def on_result(self, now: float, error: BaseException | None) -> None:
        if self._counts_outcomes:
            assert self.budget is not None
            if error is None:
                self.budget.on_success()
            else:
                self.budget.on_failure()

    def next_delay(
        self,
        now: float,
        *,
        attempt: int,
        started: float,
        error: BaseException,
        previous_delay: float | None,
    ) -> float | None:
        retry = self.retry
        decision = retry.decide(
            attempt=attempt,
            started=started,
            now=now,
            verdict=retry.verdict(error, None),
            previous_delay=previous_delay,
        )
        if isinstance(decision, str):
            self._give_ups[decision] += 1
            return None
        if self.budget is not None and not self.budget.try_withdraw(now):
            self._give_ups["budget"] += 1
            return None
        return decision


@dataclass(frozen=True, slots=True)
class Strategy:
    """A named way of calling the dependency.

    ``build(clock, rng)`` returns a fresh :class:`ClientPolicy` for one client instance: ``clock``
    is the simulation's clock, ``rng`` seeds the jitter so a run is reproducible.
    """

    name: str
    summary: str
    build: Callable[[Clock, random.Random], ClientPolicy]


def _no_retry(clock: Clock, rng: random.Random) -> ClientPolicy:
    return RetryDriver(Retry(attempts=1, budget=None, clock=clock))


def _naive(clock: Clock, rng: random.Random) -> ClientPolicy:
    return RetryDriver(
        Retry(attempts=5, backoff=Backoff.constant(0.0, rng=rng), budget=None, clock=clock)
    )


def _backoff(clock: Clock, rng: random.Random) -> ClientPolicy:
    # Buttress's default retry with its budget removed: the same attempts and the same backoff.
    return RetryDriver(Retry(backoff=Backoff.exponential(rng=rng), budget=None, clock=clock))


def _buttress(clock: Clock, rng: random.Random) -> ClientPolicy:
    # Retry() as shipped: 3 attempts, exponential 0.1 s x2 capped at 10 s with full jitter, and a
    # RetryBudget(ratio=0.2, min_per_second=10, ttl=10) built on the simulation's clock.  Only the
    # random generator is passed in, so the jitter is reproducible.
    return RetryDriver(Retry(backoff=Backoff.exponential(rng=rng), clock=clock))


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("no-retry", "one attempt, no retry", _no_retry),
    Strategy("naive", "5 attempts, retried at once, no budget", _naive),
    Strategy("backoff", "3 attempts, exp. backoff 0.1 s x2 + full jitter, no budget", _backoff),
    Strategy(
        "buttress", "Retry() defaults: backoff as above + RetryBudget(0.2, 10/s, 10 s)", _buttress
    ),
)
"""The strategies compared by default, in table order."""


def strategy_names() -> list[str]:
    return [s.name for s in STRATEGIES]
