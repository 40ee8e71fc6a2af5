"""Scaffolding the strategy-comparing scenarios share: checking the strategies given and running
each of them on the same requests with progress reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from buttress.errors import ConfigError
from buttress.lab.sim.report import StrategyResult

__all__ = ["check_strategies", "run_each"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=_Named)


def check_strategies(strategies: Sequence[S]) -> tuple[S, ...]:
    """``strategies`` as a tuple; :class:`~buttress.errors.ConfigError` when it is empty or two
    strategies share a name."""
    if not strategies:
        raise ConfigError("strategies", strategies, "give at least one strategy")
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise ConfigError("strategies", names, "strategy names must be unique")
    return tuple(strategies)


def run_each(
    strategies: Sequence[S],
    run_one: Callable[[S, Callable[[float], object]], StrategyResult],
    progress: Callable[[str, float], object] | None,
) -> list[StrategyResult]:
    """``run_one(strategy, report)`` for each strategy in order.  ``report(fraction)`` of the
    ``i``-th of ``n`` strategies calls ``progress(name, (i + min(1, fraction)) / n)``; after the
    last, ``progress("done", 1.0)``."""
    results = []
    total = len(strategies)
    for i, strategy in enumerate(strategies):

        def report(fraction: float, i: int = i, name: str = strategy.name) -> None:
            if progress is not None:
                progress(name, (i + min(1.0, fraction)) / total)

        results.append(run_one(strategy, report))
    if progress is not None:
        progress("done", 1.0)
    return results
