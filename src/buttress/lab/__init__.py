"""The lab: deterministic experiments on simulated time that compare reliability strategies.

``buttress lab`` runs a registered scenario (default ``retry-storm``; also ``slow-dependency``)
and prints one row per strategy.  The pieces are public so that tests, notebooks and later
scenarios can reuse them:

* :mod:`buttress.lab.sim`: the discrete-event engine (:class:`Simulation`, :class:`SimClock`,
  :class:`Server`);
* :mod:`buttress.lab.strategies`: the strategies compared, each built from real Buttress policies;
* :mod:`buttress.lab.registry`: scenarios by name;
* :mod:`buttress.lab.report`: results, the text table and JSON.
"""

from __future__ import annotations

from .registry import LabError, Scenario, get_scenario, register, scenarios
from .report import Column, ScenarioReport, StrategyResult, render_table, to_json
from .scenarios.retry_storm import RetryStorm, RetryStormParams
from .scenarios.slow_dependency import (
    SLOW_STRATEGIES,
    ProtectedCalls,
    SlowDependency,
    SlowDependencyParams,
    SlowStrategy,
)
from .sim import Server, SimClock, Simulation, SimulationError
from .strategies import STRATEGIES, BreakerRetryDriver, ClientPolicy, RetryDriver, Strategy

__all__ = [
    "SLOW_STRATEGIES",
    "STRATEGIES",
    "BreakerRetryDriver",
    "ClientPolicy",
    "Column",
    "LabError",
    "ProtectedCalls",
    "RetryDriver",
    "RetryStorm",
    "RetryStormParams",
    "Scenario",
    "ScenarioReport",
    "Server",
    "SimClock",
    "Simulation",
    "SimulationError",
    "SlowDependency",
    "SlowDependencyParams",
    "SlowStrategy",
    "Strategy",
    "StrategyResult",
    "get_scenario",
    "register",
    "render_table",
    "scenarios",
    "to_json",
]
