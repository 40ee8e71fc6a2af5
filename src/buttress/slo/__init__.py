"""SLOs and error budgets: the ``slos:`` spec section, the math, Prometheus rules with generated
promtool tests, an embedded SQLite evaluator, a backtest, and OpenSLO / sloth import and export.

numpy (the ``slo`` extra) is needed by the evaluator and the backtest only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import math
from .load import load_slos
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

if TYPE_CHECKING:
    from .recorder import SLIRecorder

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


def __getattr__(name: str) -> Any:
    # The recorder listens to the policies' events (it imports the event machinery): services
    # need it, ``buttress slo status`` does not.
    if name == "SLIRecorder":
        from .recorder import SLIRecorder

        return SLIRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
