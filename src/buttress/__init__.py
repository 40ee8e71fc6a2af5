"""Buttress: reliability engineering for Python services.

The public API, re-exported here; everything else is private or lives in a documented subpackage
(``buttress.spec``, ``buttress.telemetry``, ``buttress.testing``, ...).
"""

from __future__ import annotations

from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .context import Context, current_context, current_deadline, deadline, remaining, use_context
from .errors import (
    AttemptTimeout,
    BulkheadFull,
    ButtressError,
    CircuitOpen,
    ConfigError,
    DeadlineExceeded,
    LoadShed,
    MissingExtra,
    RateLimited,
    Rejected,
    RetryBudgetExhausted,
    SpecError,
)
from .events import Event, add_listener, remove_listener
from .pipeline import Pipeline, PipelineBuilder
from .policies.backoff import Backoff
from .policies.budget import RetryBudget, TokenBucketBudget
from .policies.fallback import Fallback
from .policies.retry import Retry
from .policies.timeout import Timeout

__version__ = "0.1.0"

__all__ = [
    # time and context
    "SYSTEM_CLOCK",
    "Clock",
    "Context",
    "SystemClock",
    "current_context",
    "current_deadline",
    "deadline",
    "remaining",
    "use_context",
    # errors
    "AttemptTimeout",
    "BulkheadFull",
    "ButtressError",
    "CircuitOpen",
    "ConfigError",
    "DeadlineExceeded",
    "LoadShed",
    "MissingExtra",
    "RateLimited",
    "Rejected",
    "RetryBudgetExhausted",
    "SpecError",
    # events
    "Event",
    "add_listener",
    "remove_listener",
    # policies and pipelines
    "Backoff",
    "Fallback",
    "Pipeline",
    "PipelineBuilder",
    "Retry",
    "RetryBudget",
    "Timeout",
    "TokenBucketBudget",
    "__version__",
]
