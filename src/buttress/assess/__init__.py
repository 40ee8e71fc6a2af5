"""Reliability assessment: from an ``architecture:`` section to availability, single points of
failure, a dependency budget, a risk register, recommendations and RTO/RPO verdicts.

The exact path (fault trees, BDD, closed forms) needs only the standard library and pydantic;
the Monte Carlo cross-check needs numpy (``pip install 'buttress[assess]'``).
"""

from __future__ import annotations

from .analysis import Analysis, CutSet, JourneyResult, analyse, explain_cut_set
from .analytic import (
    ActivePassive,
    active_passive,
    active_passive_2,
    k_of_n,
    nines,
    parallel,
    point_availability,
    series,
    steady_state,
)
from .bdd import BDD
from .budget import DependencyBudget, dependency_budget, yearly_budget
from .compiler import Compiled, compile_system
from .faulttree import And, AtLeast, Event, Or, minimal_cut_sets
from .model import ArchitectureSpec, architecture_problems, check_architecture, load_architecture
from .montecarlo import SimulationResult, simulate
from .recovery import RecoveryVerdict, recovery_verdicts
from .report import assess, render_markdown, render_text
from .risk import Risk, risk_register
from .system import System
from .whatif import Recommendation, recommend

__all__ = [
    "ActivePassive",
    "Analysis",
    "And",
    "ArchitectureSpec",
    "AtLeast",
    "BDD",
    "Compiled",
    "CutSet",
    "DependencyBudget",
    "Event",
    "JourneyResult",
    "Or",
    "Recommendation",
    "RecoveryVerdict",
    "Risk",
    "SimulationResult",
    "System",
    "active_passive",
    "active_passive_2",
    "analyse",
    "architecture_problems",
    "assess",
    "check_architecture",
    "compile_system",
    "dependency_budget",
    "explain_cut_set",
    "k_of_n",
    "load_architecture",
    "minimal_cut_sets",
    "nines",
    "parallel",
    "point_availability",
    "recommend",
    "recovery_verdicts",
    "render_markdown",
    "render_text",
    "risk_register",
    "series",
    "simulate",
    "steady_state",
    "yearly_budget",
]
