"""Scaffolding the strategy-comparing scenarios share: checking the strategies given, running
each of them on the same requests with progress reports, and the figures of one run."""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from buttress.errors import ConfigError
from buttress.lab.sim.calls import Dependency, feed
from buttress.lab.sim.engine import Simulation
from buttress.lab.sim.measure import recovery_time
from buttress.lab.sim.registry import Progress
from buttress.lab.sim.report import DEFAULT_COLUMNS, Column, ScenarioReport, StrategyResult

__all__ = ["Measured", "TrafficRun", "TrafficScenario", "check_strategies", "run_each"]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Described(_Named, Protocol):
    @property
    def summary(self) -> str: ...


class Measured(Protocol):
    """The parameters of a traffic scenario that its figures depend on."""

    @property
    def capacity(self) -> float: ...
    @property
    def step(self) -> float: ...
    @property
    def window(self) -> float: ...
    @property
    def duration(self) -> float: ...
    @property
    def target(self) -> float: ...


S = TypeVar("S", bound=_Described)
T = TypeVar("T", bound=tuple[Any, ...])
P = TypeVar("P", bound="Measured")


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


class TrafficRun(abc.ABC, Generic[T, S]):
    """One strategy's run of a traffic scenario: the simulation, the :class:`Dependency` (the
    subclass builds it), the requests issued and succeeded per ``step`` bucket (by the time they
    were issued) and the attempts refused locally."""

    dependency: Dependency[Any]

    def __init__(self, params: Measured) -> None:
        self.params = params
        self.sim = Simulation()
        n_buckets = math.ceil(params.duration / params.step) + 1
        self.issued = [0] * n_buckets
        self.succeeded = [0] * n_buckets
        self.refused = 0

    def start(self) -> None:
        """Schedule what runs beside the requests (nothing by default)."""

    @abc.abstractmethod
    def arrive(self, request: T) -> None:
        """A request arrives (``request[0]`` is its time)."""

    @abc.abstractmethod
    def figures(self, strategy: S, requests: int) -> StrategyResult:
        """The row of ``strategy`` once the run is over (see :meth:`result`)."""

    def run(self, requests: Sequence[T], progress: Callable[[float], object] | None) -> None:
        """Feed ``requests`` to :meth:`arrive` and run until everything is over; ``progress``
        hears the fraction of the run's duration simulated so far."""
        feed(self.sim, requests, self.arrive)
        self.start()
        duration = self.params.duration
        self.sim.run(progress=None if progress is None else (lambda t: progress(t / duration)))

    def result(
        self, strategy: S, *, requests: int, recovery_from: float, extra: dict[str, Any]
    ) -> StrategyResult:
        """The row of ``strategy``; recovery is measured from ``recovery_from`` to the end of the
        run (:func:`~buttress.lab.sim.measure.recovery_time`).  ``extra`` gets the simulation's
        own counts last."""
        p, dep = self.params, self.dependency
        extra["simulated_until"] = round(self.sim.now, 6)
        extra["events"] = self.sim.processed
        successes = sum(self.succeeded)
        return StrategyResult(
            name=strategy.name,
            summary=strategy.summary,
            success_rate=successes / requests if requests else 1.0,
            load_amplification=dep.calls / requests if requests else 0.0,
            peak_load_over_capacity=max(dep.per_second) / p.capacity,
            recovery_seconds=recovery_time(
                self.issued,
                self.succeeded,
                step=p.step,
                window=p.window,
                start=recovery_from,
                end=p.duration,
                target=p.target,
            ),
            extra=extra,
        )


class TrafficScenario(abc.ABC, Generic[P, S, T]):
    """A scenario that runs each strategy on the same requests (a :class:`TrafficRun` each) and
    reports one row per strategy.  Subclasses give ``name``, ``summary``, ``notes`` (and
    ``columns``) and its abstract methods."""

    name: str
    summary: str
    notes: tuple[str, ...] = ()
    columns: tuple[Column, ...] = DEFAULT_COLUMNS

    def __init__(self, params: P, strategies: Sequence[S]) -> None:
        self.params = params
        self.strategies = check_strategies(strategies)

    @abc.abstractmethod
    def requests(self, seed: int) -> list[T]:
        """Every request of a run, in time order; depends on ``seed`` only."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The model in a few lines, for the report."""

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The parameters for the report (JSON-ready)."""

    @abc.abstractmethod
    def simulate(self, strategy: S, seed: int) -> TrafficRun[T, S]:
        """A fresh run of ``strategy``."""

    def run(self, seed: int, progress: Progress | None = None) -> ScenarioReport:
        """Run every strategy on the same requests; deterministic for a given ``seed``."""
        todo = self.requests(seed)
        results = run_each(
            self.strategies, lambda s, report: self.run_strategy(s, seed, todo, report), progress
        )
        return ScenarioReport(
            self.name,
            seed,
            self.describe(),
            self.parameters(),
            tuple(results),
            notes=self.notes,
            columns=self.columns,
        )

    def run_strategy(
        self,
        strategy: S,
        seed: int,
        requests: Sequence[T] | None = None,
        progress: Callable[[float], object] | None = None,
    ) -> StrategyResult:
        """Run one strategy (on ``requests``, by default those of ``seed``) and measure it."""
        if requests is None:
            requests = self.requests(seed)
        run = self.simulate(strategy, seed)
        run.run(requests, progress)
        return run.figures(strategy, len(requests))
