"""How a caller guards its calls to a slow dependency: the strategies of the ``slow-dependency``
scenario (:mod:`buttress.lab.sim.scenarios.slow_dependency`).

A :class:`SlowStrategy` builds one :class:`CallGuard` per calling instance, on the simulation's
clock: :class:`Unprotected`, or :class:`ProtectedCalls` driving real Buttress policies (a
:class:`~buttress.Bulkhead`, an :class:`~buttress.AdaptiveLimit`, a :class:`~buttress.LoadShedder`)
through their own decisions.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from buttress.clock import Clock
from buttress.errors import BulkheadFull, Rejected
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import (
    AIMD,
    AdaptiveLimit,
    ConcurrencyLimitExceeded,
    Gradient2,
    LimitAlgorithm,
    Vegas,
)
from buttress.policies.shed import Criticality, LoadShedder

__all__ = [
    "BULKHEAD_SLOTS",
    "SHED_THRESHOLDS",
    "SLOW_STRATEGIES",
    "CallGuard",
    "ProtectedCalls",
    "SlowStrategy",
    "Unprotected",
    "aimd",
    "gradient2",
    "vegas",
]


class CallGuard(Protocol):
    """What the scenario's callers ask before and after each dependency call; one per instance."""

    def admit(self, now: float, c: Criticality) -> object:
        """May a call of class ``c`` go now?  An exception: refused at once; anything else: a
        ticket handed back to :meth:`on_result`."""
        ...

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        """An admitted call ended at ``now`` (``error`` is ``None`` on success)."""
        ...

    @property
    def limit(self) -> int | None:
        """The current concurrency limit, or ``None`` without one."""
        ...


class Unprotected:
    """No protection: every call goes to the dependency."""

    limit = None

    def admit(self, now: float, c: Criticality) -> object:
        return None

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        return None


class ProtectedCalls:
    """Any of :class:`buttress.LoadShedder` > :class:`buttress.AdaptiveLimit` >
    :class:`buttress.Bulkhead`, in the pipeline's default order (shedding 55, adaptive limit 58,
    bulkhead 60), driven with the policies' own decisions on the simulation's clock.

    Admission, as the executors do it: the shedder's ``try_acquire(c)`` (with the adaptive limit
    as its source: ``inflight < threshold[c] * limit``), then ``limit.try_acquire()``, then
    ``bulkhead.try_acquire()`` (no queue: a full bulkhead refuses at once).  A refusal by an inner
    policy ends the outer ones' calls with that :class:`~buttress.errors.Rejected` error, which the
    adaptive limit does not sample.  When a call ends: ``bulkhead.release()``, then
    ``limit.release(rtt, inflight, dropped)`` with ``rtt = now - sent``, a drop when the error is
    one of ``limit.drop_on`` (timeouts by default), and no sample for other errors.
    """

    __slots__ = ("bulkhead", "refusals", "shedder", "throttle")

    def __init__(
        self,
        *,
        bulkhead: Bulkhead | None = None,
        limit: AdaptiveLimit | None = None,
        shedder: LoadShedder | None = None,
    ) -> None:
        self.bulkhead = bulkhead
        self.throttle = limit
        self.shedder = shedder
        self.refusals: Counter[str] = Counter()

    @property
    def limit(self) -> int | None:
        if self.throttle is not None:
            return self.throttle.limit
        return None if self.bulkhead is None else self.bulkhead.max_concurrent

    def admit(self, now: float, c: Criticality) -> object:
        shedder, throttle, bulkhead = self.shedder, self.throttle, self.bulkhead
        if shedder is not None and not shedder.try_acquire(c):
            self.refusals["shed"] += 1
            return shedder.shed_error(c)
        n = 0
        if throttle is not None:
            n = throttle.try_acquire()
            if n == 0:
                if shedder is not None and shedder.source is None:
                    shedder.release()
                self.refusals["limit"] += 1
                return ConcurrencyLimitExceeded(
                    f"adaptive limit {throttle.name!r} reached",
                    policy=throttle.name,
                    limit=throttle.limit,
                    inflight=throttle.inflight,
                )
        if bulkhead is not None and not bulkhead.try_acquire():
            if throttle is not None:
                throttle.release(None, n)  # a Rejected: not sampled
            if shedder is not None and shedder.source is None:
                shedder.release()
            self.refusals["bulkhead"] += 1
            return BulkheadFull(f"bulkhead {bulkhead.name!r} is full", policy=bulkhead.name)
        return n

    def on_result(
        self, now: float, error: BaseException | None, ticket: object, sent: float
    ) -> None:
        if self.bulkhead is not None:
            self.bulkhead.release()
        throttle = self.throttle
        if throttle is not None:
            assert isinstance(ticket, int)
            if error is None:
                throttle.release(now - sent, ticket, False)
            elif isinstance(error, throttle.drop_on) and not isinstance(error, Rejected):
                throttle.release(now - sent, ticket, True)
            else:
                throttle.release(None, ticket)
        if self.shedder is not None and self.shedder.source is None:
            self.shedder.release()


@dataclass(frozen=True, slots=True)
class SlowStrategy:
    """A named way of guarding the calls: ``build(clock, rng)`` makes one instance's guard."""

    name: str
    summary: str
    build: Callable[[Clock, random.Random], CallGuard]


BULKHEAD_SLOTS = 250
"""Each instance's bulkhead: 250 calls at once, no queue.  Sized for the caller's own resources
(its connection pool), not for the dependency: 500 in all, 20 times what a healthy dependency
needs in flight (1,000 calls per second x 25 ms) and 5 times its 100 workers."""

SHED_THRESHOLDS: Mapping[str | Criticality, float] = {"sheddable": 0.5, "low": 0.6, "high": 0.7}
"""The shedder's utilisation thresholds (critical keeps 1.0).  ``high`` at 0.7 reserves 30% of
the limit for critical traffic: its share of the dependency during the slowdown (100 of 400 calls
per second, 25%) plus a margin.  The shipped 0.9 reserves 10%, less than critical needs here."""


def _none(clock: Clock, rng: random.Random) -> CallGuard:
    return Unprotected()


def _bulkhead(clock: Clock, rng: random.Random) -> CallGuard:
    return ProtectedCalls(bulkhead=Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock))


def _static(clock: Clock, rng: random.Random) -> CallGuard:
    bulkhead = Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock)
    shedder = LoadShedder(bulkhead, thresholds=SHED_THRESHOLDS, clock=clock)
    return ProtectedCalls(bulkhead=bulkhead, shedder=shedder)


def _guard(algorithm: LimitAlgorithm, clock: Clock) -> CallGuard:
    limit = AdaptiveLimit(algorithm, clock=clock)
    return ProtectedCalls(
        bulkhead=Bulkhead(BULKHEAD_SLOTS, max_queue=0, clock=clock),
        limit=limit,
        shedder=LoadShedder(limit, thresholds=SHED_THRESHOLDS, clock=clock),
    )


def aimd() -> AIMD:
    """The scenario's AIMD: the shipped defaults (``min_limit=20``, ``backoff_ratio=0.9``) with a
    call slower than 0.5 s (half the caller's timeout) counted as a drop (the shipped 5 s is longer
    than any call can last here) and ``max_limit`` at the bulkhead's size."""
    return AIMD(max_limit=BULKHEAD_SLOTS, timeout=0.5)


def gradient2() -> Gradient2:
    """The scenario's Gradient2: the shipped defaults, ``max_limit`` at the bulkhead's size."""
    return Gradient2(max_limit=BULKHEAD_SLOTS)


def vegas(rng: random.Random) -> Vegas:
    """The scenario's Vegas: the shipped defaults, ``max_limit`` at the bulkhead's size, seeded."""
    return Vegas(max_limit=BULKHEAD_SLOTS, rng=rng)


SLOW_STRATEGIES: tuple[SlowStrategy, ...] = (
    SlowStrategy("none", "no protection (the caller's 1 s timeout only)", _none),
    SlowStrategy("bulkhead", f"Bulkhead({BULKHEAD_SLOTS}), no queue", _bulkhead),
    SlowStrategy("bulkhead+shed", "bulkhead + LoadShedder(bulkhead), a static limit", _static),
    SlowStrategy(
        "buttress",
        "bulkhead + AdaptiveLimit(AIMD) + LoadShedder(limit)",
        lambda clock, rng: _guard(aimd(), clock),
    ),
    SlowStrategy(
        "buttress-gradient2",
        "as buttress, with Gradient2",
        lambda clock, rng: _guard(gradient2(), clock),
    ),
    SlowStrategy(
        "buttress-vegas", "as buttress, with Vegas", lambda clock, rng: _guard(vegas(rng), clock)
    ),
)
"""The strategies compared by default, in table order."""
