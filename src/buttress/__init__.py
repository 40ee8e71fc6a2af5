"""Buttress: reliability engineering for Python services.

The public API, re-exported here; everything else is private or lives in a documented subpackage
(``buttress.spec``, ``buttress.telemetry``, ``buttress.testing``, ...).
"""

from __future__ import annotations

from .chaos.failpoints import failpoint, failpoint_async
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
from .health import HealthApp, HealthRegistry
from .pipeline import Pipeline, PipelineBuilder
from .policies.backoff import Backoff
from .policies.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from .policies.budget import RetryBudget, TokenBucketBudget
from .policies.bulkhead import Bulkhead
from .policies.fallback import Fallback
from .policies.hedge import AdaptiveDelay, Hedge
from .policies.limits import (
    AIMD,
    AdaptiveLimit,
    ConcurrencyLimitExceeded,
    Gradient2,
    Vegas,
    WindowSpec,
)
from .policies.ratelimit import MemoryBucketStore, RateLimiter, context_key
from .policies.retry import Retry
from .policies.shed import Criticality, LoadShedder, criticality, current_criticality
from .policies.timeout import Timeout
from .policies.windows import CountWindow, TimeWindow, WindowSnapshot

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
    # health
    "HealthApp",
    "HealthRegistry",
    # chaos
    "failpoint",
    "failpoint_async",
    # circuit breaker and hedging
    "AdaptiveDelay",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "CountWindow",
    "Hedge",
    "TimeWindow",
    "WindowSnapshot",
    # limits: bulkhead, rate limiter, adaptive concurrency, load shedding
    "AIMD",
    "AdaptiveLimit",
    "Bulkhead",
    "ConcurrencyLimitExceeded",
    "Criticality",
    "Gradient2",
    "LoadShedder",
    "MemoryBucketStore",
    "RateLimiter",
    "Vegas",
    "WindowSpec",
    "context_key",
    "criticality",
    "current_criticality",
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
