"""Treynor's dependency budget ("The Calculus of Service Availability", 2017).

A service can be no more available than the product of its critical dependencies, so each unique
critical dependency gets a share of the service's yearly downtime budget:

* budget: ``(1 - target) * 525 600`` minutes a year (99.99% -> 52.56 minutes);
* a dependency with availability ``A_d`` is expected to spend ``(1 - A_d) * 525 600`` of them
  (five dependencies at 99.999% -> 5 * 5.256 = 26.28 minutes, half the budget);
* the *rule of the extra nine*: a critical dependency should offer one more nine than the service,
  ``1 - A_d <= (1 - target) / 10``.

Each unique dependency is counted once, however many paths reach it (a diamond through two callers
is one dependency), and its figure is its *own* availability (its units, redundancy and shared-fate
domains, not its own dependencies: those are counted as dependencies in their own right).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .analytic import MINUTES_PER_YEAR

__all__ = ["BudgetLine", "DependencyBudget", "dependency_budget", "yearly_budget"]


def yearly_budget(target: float) -> float:
    """Minutes of allowed downtime per 365-day year at availability ``target``."""
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    return (1.0 - target) * MINUTES_PER_YEAR


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One critical dependency's share of the budget."""

    name: str
    availability: float
    minutes: float
    share: float
    extra_nine: bool


@dataclass(frozen=True, slots=True)
class DependencyBudget:
    """A journey's yearly budget and what its critical dependencies consume."""

    target: float
    budget_minutes: float
    lines: tuple[BudgetLine, ...]

    @property
    def dependency_minutes(self) -> float:
        return sum(line.minutes for line in self.lines)

    @property
    def remaining_minutes(self) -> float:
        """What is left for the service itself (negative: the dependencies alone break it)."""
        return self.budget_minutes - self.dependency_minutes

    @property
    def bound(self) -> float:
        """Best availability reachable with these dependencies: ``prod A_d``."""
        out = 1.0
        for line in self.lines:
            out *= line.availability
        return out


def dependency_budget(
    target: float, dependencies: Mapping[str, float] | Sequence[tuple[str, float]]
) -> DependencyBudget:
    """Budget lines for ``dependencies`` (name -> availability), each name counted once.

    >>> b = dependency_budget(0.9999, [(f"d{i}", 0.99999) for i in range(5)])
    >>> round(b.budget_minutes, 2), round(b.dependency_minutes, 2)
    (52.56, 26.28)
    """
    items = list(dependencies.items()) if isinstance(dependencies, Mapping) else list(dependencies)
    budget = yearly_budget(target)
    seen: dict[str, float] = {}
    for name, a in items:
        if not 0 < a <= 1:
            raise ValueError(f"availability of {name!r} must be in (0, 1], got {a}")
        seen.setdefault(name, a)
    lines = []
    for name, a in seen.items():
        minutes = (1.0 - a) * MINUTES_PER_YEAR
        lines.append(
            BudgetLine(
                name=name,
                availability=a,
                minutes=minutes,
                share=minutes / budget if budget > 0 else float("inf"),
                extra_nine=(1.0 - a) <= (1.0 - target) / 10 * (1 + 1e-9),
            )
        )
    lines.sort(key=lambda line: -line.minutes)
    return DependencyBudget(target, budget, tuple(lines))
