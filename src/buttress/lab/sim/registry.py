"""The scenarios ``buttress lab`` knows, by name.

This module imports no scenario: each built-in one is registered by
:mod:`buttress.lab.sim.scenarios` when that package is imported (the CLI and
:mod:`buttress.lab` import it), and a scenario of your own by calling :func:`register`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Protocol

from buttress.lab.errors import LabError

from .report import ScenarioReport

__all__ = ["LabError", "Progress", "Scenario", "get_scenario", "register", "scenarios"]

Progress = Callable[[str, float], object]
"""``progress(stage, fraction)``: a scenario reports how far it is (``fraction`` in ``[0, 1]``)."""


class Scenario(Protocol):
    """A runnable, deterministic experiment: the same seed gives the same report."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str: ...

    def run(self, seed: int, progress: Progress | None = None) -> ScenarioReport: ...


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    """Add ``scenario`` under its name; a name can be registered once."""
    if scenario.name in _REGISTRY:
        raise LabError(f"a scenario named {scenario.name!r} is already registered")
    _REGISTRY[scenario.name] = scenario
    return scenario


def scenarios() -> list[Scenario]:
    """Every registered scenario, sorted by name."""
    return [_REGISTRY[n] for n in sorted(_REGISTRY)]


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; :class:`LabError` naming the closest known one otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        pass
    known = sorted(_REGISTRY)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise LabError(f"unknown scenario {name!r}{hint} (known: {', '.join(known)})")
