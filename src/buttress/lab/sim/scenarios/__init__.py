"""The built-in scenarios, one module each; importing this package registers them with
:mod:`buttress.lab.sim.registry` (which imports none of them)."""

from __future__ import annotations

from buttress.lab.sim.registry import register

from .retry_storm import RetryStorm
from .shared_breaker import SharedBreaker
from .slow_dependency import SlowDependency

__all__ = ["BUILTIN"]

BUILTIN = (RetryStorm(), SharedBreaker(), SlowDependency())
"""One instance of each built-in scenario, with its default parameters."""

for _scenario in BUILTIN:
    register(_scenario)
