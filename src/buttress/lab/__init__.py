"""The lab: deterministic experiments on simulated time that compare reliability strategies.

``buttress lab`` runs a registered scenario (default ``retry-storm``) and prints one row per
strategy. The pieces are public so that tests, notebooks and later scenarios can reuse them:

* :mod:`buttress.lab.sim`: the discrete-event engine (:class:`Simulation`, :class:`SimClock`,
  :class:`Server`);
* :mod:`buttress.lab.strategies`: the strategies compared, each built from real Buttress policies;
* :mod:`buttress.lab.registry`: scenarios by name;
* :mod:`buttress.lab.report`: results, the text table and JSON.
"""

from __future__ import annotations

from .registry import LabError, Scenario, get_scenario, register, scenarios
from .report import ScenarioReport, StrategyResult, render_table, to_json
from .scenarios.retry_storm import RetryStorm, RetryStormParams
from .sim import Server, SimClock, Simulation, SimulationError
from .strategies import STRATEGIES, ClientPolicy, RetryDriver, Strategy

__all__ = [
    "STRATEGIES",
    "ClientPolicy",
    "LabError",
    "RetryDriver",
    "RetryStorm",
    "RetryStormParams",
    "Scenario",
    "ScenarioReport",
    "Server",
    "SimClock",
    "Simulation",
    "SimulationError",
    "Strategy",
    "StrategyResult",
    "get_scenario",
    "register",
    "render_table",
    "scenarios",
    "to_json",
]
