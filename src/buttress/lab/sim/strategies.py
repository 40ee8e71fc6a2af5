"""Client strategies the lab compares: how a caller reacts when a call to the dependency fails.

A strategy is a name, a one-line summary and a *factory* that builds a fresh :class:`ClientPolicy`
for one calling service instance, on the simulation's clock.  Every built-in strategy is a real
:class:`buttress.Retry` (with a real :class:`buttress.Backoff` and, for the last two, a real
:class:`buttress.RetryBudget`) driven through :class:`RetryDriver`, which asks the policy the same
questions, in the same order, as Buttress's own retry executor:

1. once per client request: deposit in the budget (``budget.on_request(now)``);
2. after each failed attempt: ``retry.verdict(error, None)``, then ``retry.decide(...)``; a delay is
   granted only if ``budget.try_withdraw(now)`` agrees (asked last, so other refusals cost no
   token);
3. after each attempt, for outcome-counting budgets: ``budget.on_success()``, or
   ``budget.on_failure()`` when the error is retryable (as the executor does).

The default strategy, ``buttress``, adds a real :class:`buttress.CircuitBreaker` inside the retry,
where the pipeline's default order puts it (retry 30 > breaker 40): :class:`BreakerRetryDriver`
asks the breaker's sans-I/O core before every attempt (``machine.before_call(now)``: a
:class:`~buttress.policies.breaker.Permit` or a :class:`~buttress.policies.breaker.Reject`) and
reports every permitted attempt (``machine.on_result(now, permit, breaker.classify(error),
duration)``).  A refused attempt raises :class:`buttress.CircuitOpen`, which the retry never retries
and the budget never charges, exactly as in the executor.

The only thing the lab does instead of the executor is *waiting*: the delay becomes an entry on the
simulation's event queue rather than a sleep.

To add a strategy, append a :class:`Strategy` to :data:`STRATEGIES`; its factory may return any
object with the :class:`ClientPolicy` methods.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from buttress.clock import Clock
from buttress.errors import CircuitOpen
from buttress.policies.backoff import Backoff
from buttress.policies.breaker import (
    BreakerAlarm,
    BreakerState,
    CircuitBreaker,
    Permit,
    Reject,
    Transition,
)
from buttress.policies.retry import Retry

__all__ = [
    "STRATEGIES",
    "BreakerRetryDriver",
    "ClientPolicy",
    "RetryDriver",
    "Strategy",
    "lab_breaker",
    "strategy_names",
]


Outcome = BaseException | None
"""How an attempt ended: its error, or ``None`` for a success."""

Delay = float | None
"""Seconds to wait before the next attempt, or ``None``: no more attempts."""


class ClientPolicy(Protocol):
    """What the lab's clients ask their policy; one instance per calling service instance."""

    def on_request(self, now: float) -> None:
        """A new client request starts (its first attempt follows)."""
        ...

    def admit(self, now: float) -> object:
        """May an attempt go to the server now?

        An exception means no: the attempt is refused locally (it never reaches the server and
        :meth:`on_result` is not called for it; the lab passes the exception to
        :meth:`next_delay`).  Anything else means yes, and is a *ticket* that the lab hands back to
        :meth:`on_result` when the attempt ends (``None`` is a fine ticket).
        """
        ...

    def on_result(
        self, now: float, error: Outcome, ticket: object = None, sent: float | None = None
    ) -> None:
        """An admitted attempt finished at ``now``: ``error`` is ``None`` on success; ``ticket`` is
        what :meth:`admit` returned for it and ``sent`` when it was sent."""
        ...

    def next_delay(
        self,
        now: float,
        *,
        attempt: int,
        started: float,
        error: BaseException,
        previous_delay: Delay,
    ) -> Delay:
        """After failed attempt number ``attempt``: seconds to wait before the next one, or
        ``None``."""
        ...

    @property
    def give_ups(self) -> Counter[str]:
        """Why requests stopped retrying, by reason (``attempts``, ``budget``,
        ``not_retryable``...)."""
        ...

    def stats(self) -> dict[str, int]:
        """Further counts for the report (e.g. ``breaker_opens``); summed over instances."""
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

    def stats(self) -> dict[str, int]:
        return {}

    def admit(self, now: float) -> object:
        return None

    def on_result(
        self, now: float, error: Outcome, ticket: object = None, sent: float | None = None
    ) -> None:
        if self._counts_outcomes:
            assert self.budget is not None
            if error is None:
                self.budget.on_success()
            else:
                verdict = self.retry.verdict(error, None)
                if verdict is not None and verdict is not False:
                    self.budget.on_failure()

    def next_delay(
        self,
        now: float,
        *,
        attempt: int,
        started: float,
        error: BaseException,
        previous_delay: Delay,
    ) -> Delay:
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


class BreakerRetryDriver(RetryDriver):
    """A :class:`buttress.Retry` around a :class:`buttress.CircuitBreaker`, as the pipeline orders
    them (retry outside, breaker inside: every attempt passes the breaker).

    Before each attempt ``breaker.machine.before_call(now)`` decides; a
    :class:`~buttress.policies.breaker.Reject` becomes the :class:`buttress.CircuitOpen` the
    executor raises (with the same ``retry_after``), which the retry does not retry.  After each
    permitted attempt, ``breaker.machine.on_result(now, permit, outcome, now - sent)`` with
    ``outcome`` from ``breaker.classify(error)`` (``"success"`` without an error).  Build the
    breaker on the simulation's clock.

    ``stats()``: ``breaker_opens`` (transitions into open), ``breaker_rejections`` (attempts
    refused).
    """

    __slots__ = ("_opens", "_rejections", "breaker", "machine")

    def __init__(self, retry: Retry, breaker: CircuitBreaker) -> None:
        super().__init__(retry)
        self.breaker = breaker
        self.machine = breaker.machine
        self._opens = 0
        self._rejections = 0

    def stats(self) -> dict[str, int]:
        return {"breaker_opens": self._opens, "breaker_rejections": self._rejections}

    def _count(self, notes: tuple[Transition | BreakerAlarm, ...]) -> None:
        for n in notes:
            if isinstance(n, Transition) and n.to_state is BreakerState.OPEN:
                self._opens += 1

    def admit(self, now: float) -> object:
        d = self.machine.before_call(now)
        if d.notes:
            self._count(d.notes)
        if isinstance(d, Reject):
            self._rejections += 1
            return CircuitOpen(
                f"circuit breaker {self.breaker.name!r} is {d.state.value}",
                policy=self.breaker.name,
                retry_after=d.retry_after,
            )
        return d

    def on_result(
        self, now: float, error: Outcome, ticket: object = None, sent: float | None = None
    ) -> None:
        if isinstance(ticket, Permit):
            outcome = "success" if error is None else self.breaker.classify(error)
            duration = 0.0 if sent is None else now - sent
            notes = self.machine.on_result(now, ticket, outcome, duration)
            if notes:
                self._count(notes)
        super().on_result(now, error, ticket, sent)


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


def _budget(clock: Clock, rng: random.Random) -> ClientPolicy:
    # Retry() as shipped: 3 attempts, exponential 0.1 s x2 capped at 10 s with full jitter, and a
    # RetryBudget(ratio=0.2, min_per_second=10, ttl=10) built on the simulation's clock.  Only the
    # random generator is passed in, so the jitter is reproducible.
    return RetryDriver(Retry(backoff=Backoff.exponential(rng=rng), clock=clock))


def lab_breaker(clock: Clock) -> CircuitBreaker:
    """The circuit breaker of the ``buttress`` strategy, scaled to the retry-storm scenario.

    ``CircuitBreaker(failure_rate_threshold=0.5, minimum_calls=50, window_size=100,
    break_duration=1.0, permitted_calls_in_half_open=10, half_open_timeout=2.0)`` on ``clock``.

    Why these values, for one instance sending about 156 requests per second:

    * a count window of the last 100 calls with at least 50 seen: the breaker decides on about
      0.3 to 0.6 s of traffic, quick next to a 10 s outage yet never on a handful of calls;
    * a failure rate of 0.5 (the shipped default): in this model a healthy dependency fails
      nothing, a failing one fails everything, so any threshold between works alike;
    * a fixed 1 s break: the breaker cannot notice the dependency's recovery before its break is
      over, so the break bounds the recovery delay it adds (the shipped 60 s would keep a
      recovered dependency cut off for the whole rest of the run);
    * 10 probes per break: 10 calls a second of probing, about 6% of the instance's traffic;
    * half-open gives up on probes after 2 s (twice the 1 s attempt timeout).
    """
    return CircuitBreaker(
        failure_rate_threshold=0.5,
        minimum_calls=50,
        window_size=100,
        break_duration=1.0,
        permitted_calls_in_half_open=10,
        half_open_timeout=2.0,
        clock=clock,
    )


def _buttress(clock: Clock, rng: random.Random) -> ClientPolicy:
    # Retry() as shipped (as in "budget") around the scenario's circuit breaker.
    return BreakerRetryDriver(
        Retry(backoff=Backoff.exponential(rng=rng), clock=clock), lab_breaker(clock)
    )


STRATEGIES: tuple[Strategy, ...] = (
    Strategy("no-retry", "one attempt, no retry", _no_retry),
    Strategy("naive", "5 attempts, retried at once, no budget", _naive),
    Strategy("backoff", "3 attempts, exp. backoff 0.1 s x2 + full jitter, no budget", _backoff),
    Strategy(
        "budget", "Retry() defaults: backoff as above + RetryBudget(0.2, 10/s, 10 s)", _budget
    ),
    Strategy(
        "buttress",
        "Retry() defaults + CircuitBreaker(0.5 of >= 50 in 100 calls, 1 s break, 10 probes)",
        _buttress,
    ),
)
"""The strategies compared by default, in table order."""


def strategy_names() -> list[str]:
    return [s.name for s in STRATEGIES]
