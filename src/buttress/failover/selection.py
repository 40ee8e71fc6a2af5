"""Choosing one endpoint among the candidates of a priority level.

Two strategies, both sans-I/O (a random source is injected):

* :class:`LeastRequest` (default): *power of two choices*.  Draw ``choice_count`` (default 2)
  candidates at random, with probability proportional to their weight, and take the one with the
  fewest requests in flight per unit of weight (``active / weight``; ties go to the first drawn).
  Mitzenmacher's result: two random choices instead of one cut the maximum load from
  ``O(log n / log log n)`` to ``O(log log n)``, at the cost of reading two counters, and unlike
  "least of all" it never sends a burst to the one endpoint that just became least loaded.
* :class:`WeightedRoundRobin`: *smooth* weighted round robin (nginx's): every pick adds each
  candidate's weight to its running score, takes the highest score and subtracts the total weight
  from it.  Weights 5, 1, 1 give ``a a b a c a a`` rather than ``a a a a a b c``: each endpoint's
  share is exact over every window of ``sum(weights)`` picks, and picks are spread out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from buttress.errors import ConfigError
from buttress.options import check_integer

__all__ = ["Candidate", "LeastRequest", "Selector", "WeightedRoundRobin", "make_selector"]


@runtime_checkable
class Candidate(Protocol):
    """What a selector reads of an endpoint."""

    @property
    def index(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def active(self) -> int: ...


class Selector(Protocol):
    """Chooses one of ``candidates`` (never empty).  Called under the pool's lock."""

    def choose(self, candidates: Sequence[Candidate], rng: random.Random) -> Candidate: ...


def _weighted_draw(candidates: Sequence[Candidate], total: int, rng: random.Random) -> Candidate:
    x = rng.random() * total
    acc = 0
    for c in candidates:
        acc += c.weight
        if x < acc:
            return c
    return candidates[-1]


class LeastRequest:
    """Power of ``choice_count`` choices, least requests in flight per weight (default 2)."""

    __slots__ = ("choice_count",)

    def __init__(self, choice_count: int = 2) -> None:
        self.choice_count = check_integer("choice_count", choice_count, ge=2)

    def __repr__(self) -> str:
        return f"LeastRequest(choice_count={self.choice_count})"

    def choose(self, candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
        if len(candidates) == 1:
            return candidates[0]
        total = 0
        uniform = True
        w0 = candidates[0].weight
        for c in candidates:
            total += c.weight
            uniform = uniform and c.weight == w0
        best: Candidate | None = None
        best_score = 0.0
        for _ in range(self.choice_count):
            if uniform:
                c = candidates[int(rng.random() * len(candidates))]
            else:
                c = _weighted_draw(candidates, total, rng)
            score = c.active / c.weight
            if best is None or score < best_score:
                best, best_score = c, score
        assert best is not None
        return best


class WeightedRoundRobin:
    """Smooth weighted round robin over the candidates (scores kept per endpoint index)."""

    __slots__ = ("_scores",)

    def __init__(self) -> None:
        self._scores: dict[int, int] = {}

    def __repr__(self) -> str:
        return "WeightedRoundRobin()"

    def choose(self, candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
        scores = self._scores
        total = 0
        best: Candidate | None = None
        best_score = 0
        for c in candidates:
            s = scores.get(c.index, 0) + c.weight
            scores[c.index] = s
            total += c.weight
            if best is None or s > best_score:
                best, best_score = c, s
        assert best is not None
        scores[best.index] = best_score - total
        return best


def make_selector(value: str | Selector) -> Selector:
    """``"least_request"`` / ``"round_robin"`` or a selector object."""
    if value == "least_request":
        return LeastRequest()
    if value == "round_robin":
        return WeightedRoundRobin()
    if isinstance(value, str) or not callable(getattr(value, "choose", None)):
        raise ConfigError(
            "selection", value, "must be 'least_request', 'round_robin' or a Selector"
        )
    return value
