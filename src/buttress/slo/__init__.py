"""SLOs and error budgets: the ``slos:`` spec section, the math, Prometheus rules with generated
promtool tests, an embedded SQLite evaluator, a backtest, and OpenSLO / sloth import and export.

numpy (the ``slo`` extra) is needed by the evaluator and the backtest only.
"""

from __future__ import annotations

from . import math
from .load import load_slos
from .recorder import SLIRecorder
from .spec import (
    DEFAULT_TIERS,
    AlertingSpec,
    ExclusionSpec,
    LatencySLI,
    RatioSLI,
    SLOSpec,
    TierSpec,
    WindowSLI,
    WindowSpec,
)
from .store import SLIStore

__all__ = [
    "DEFAULT_TIERS",
    "AlertingSpec",
    "ExclusionSpec",
    "LatencySLI",
    "RatioSLI",
    "SLIRecorder",
    "SLIStore",
    "SLOSpec",
    "TierSpec",
    "WindowSLI",
    "WindowSpec",
    "load_slos",
    "math",
]
