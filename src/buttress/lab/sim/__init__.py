"""The simulated lab: deterministic experiments on simulated time that compare strategies.

* :mod:`.engine`: the discrete-event engine (:class:`Simulation`, :class:`SimClock`,
  :class:`Server`);
* :mod:`.strategies`: the retry strategies compared, each built from real Buttress policies;
* :mod:`.guards`: the slow-dependency strategies (bulkhead, adaptive limit, shedding);
* :mod:`.calls`: callers, a dependency behind a network, timeouts (what the scenarios share);
* :mod:`.measure`, :mod:`.checks`: recovery and percentiles; parameter checks;
* :mod:`.registry`: scenarios by name (it imports none of them; ``registry.scenarios()`` lists
  them);
* :mod:`.scenarios`: the built-in scenarios, registered when that package is imported (this
  package imports it);
* :mod:`.report`: results, the text table and JSON.
"""

from __future__ import annotations

from .engine import Server, SimClock, Simulation, SimulationError
from .guards import SLOW_STRATEGIES, ProtectedCalls, SlowStrategy
from .registry import LabError, Scenario, get_scenario, register
from .report import Column, ScenarioReport, StrategyResult, render_table, to_json
from .scenarios.retry_storm import RetryStorm, RetryStormParams
from .scenarios.slow_dependency import SlowDependency, SlowDependencyParams
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
    "to_json",
]
