"""Buttress: reliability engineering for Python services.

The top level holds what a service author needs to build pipelines and handle what they raise:
the pipeline, the policies, the errors, and the deadline and criticality of a call.  Everything
else lives in a documented subpackage, imported when you need it:

=============================  ===============================================================
``buttress.policies.*``        each policy's module: its options type, events, algorithms
``buttress.context``           the call context, deadlines (``current_deadline``, ...)
``buttress.clock``             the ``Clock`` protocol and the system clock
``buttress.events``            event records and process-wide listeners
``buttress.spec``              ``reliability.yaml``: loading, validation, building pipelines
``buttress.health``            health checks, ``application/health+json``, probes
``buttress.chaos``             faults, failpoints, the fault proxy, experiments
``buttress.slo``, ``.assess``  SLOs and error budgets; availability assessment
``buttress.testing``           a fake clock and pytest helpers
=============================  ===============================================================

``import buttress`` loads almost nothing: each name loads its module (the policy core, standard
library only) on first use.  Names that used to live here still resolve, with a
``DeprecationWarning`` naming their new home.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from . import errors as _errors  # small, standard library only: its names list the errors below
from .version import __version__

if TYPE_CHECKING:  # the names below load on first use (see __getattr__), so the CLI starts fast
    from .chaos.failpoints import failpoint, failpoint_async
    from .context import deadline, remaining
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
    from .pipeline import Pipeline, PipelineBuilder
    from .policies.backoff import Backoff
    from .policies.breaker import CircuitBreaker
    from .policies.budget import RetryBudget
    from .policies.bulkhead import Bulkhead
    from .policies.fallback import Fallback
    from .policies.hedge import Hedge
    from .policies.limits import AdaptiveLimit, ConcurrencyLimitExceeded
    from .policies.ratelimit import RateLimiter
    from .policies.retry import Retry
    from .policies.shed import LoadShedder, criticality
    from .policies.timeout import Timeout

__all__ = [
    # pipelines
    "Pipeline",
    "PipelineBuilder",
    # policies, in their default order, outermost first
    "Fallback",
    "Timeout",
    "Retry",
    "Backoff",
    "RetryBudget",
    "Hedge",
    "CircuitBreaker",
    "RateLimiter",
    "LoadShedder",
    "AdaptiveLimit",
    "Bulkhead",
    # the call: its deadline and criticality
    "criticality",
    "deadline",
    "remaining",
    # failpoints: named places where chaos experiments inject faults (loaded on first use)
    "failpoint",
    "failpoint_async",
    # errors
    "ButtressError",
    "Rejected",
    "AttemptTimeout",
    "BulkheadFull",
    "CircuitOpen",
    "ConcurrencyLimitExceeded",
    "DeadlineExceeded",
    "LoadShed",
    "RateLimited",
    "RetryBudgetExhausted",
    "ConfigError",
    "SpecError",
    "MissingExtra",
    "__version__",
]

# Names that lived here before the public surface was trimmed, and where they live now.
_MOVED = {
    "SYSTEM_CLOCK": "buttress.clock",
    "Clock": "buttress.clock",
    "SystemClock": "buttress.clock",
    "Context": "buttress.context",
    "current_context": "buttress.context",
    "current_deadline": "buttress.context",
    "use_context": "buttress.context",
    "Event": "buttress.events",
    "add_listener": "buttress.events",
    "remove_listener": "buttress.events",
    "HealthApp": "buttress.health",
    "HealthRegistry": "buttress.health",
    "AdaptiveDelay": "buttress.policies.hedge",
    "BreakerSnapshot": "buttress.policies.breaker",
    "BreakerState": "buttress.policies.breaker",
    "CountWindow": "buttress.policies.windows",
    "TimeWindow": "buttress.policies.windows",
    "WindowSnapshot": "buttress.policies.windows",
    "AIMD": "buttress.policies.limits",
    "Gradient2": "buttress.policies.limits",
    "Vegas": "buttress.policies.limits",
    "WindowSpec": "buttress.policies.limits",
    "MemoryBucketStore": "buttress.policies.ratelimit",
    "context_key": "buttress.policies.ratelimit",
    "Criticality": "buttress.policies.shed",
    "current_criticality": "buttress.policies.shed",
    "TokenBucketBudget": "buttress.policies.budget",
}


# Where each public name is defined.
_HOME = {
    "Pipeline": "buttress.pipeline",
    "PipelineBuilder": "buttress.pipeline",
    "Fallback": "buttress.policies.fallback",
    "Timeout": "buttress.policies.timeout",
    "Retry": "buttress.policies.retry",
    "Backoff": "buttress.policies.backoff",
    "RetryBudget": "buttress.policies.budget",
    "Hedge": "buttress.policies.hedge",
    "CircuitBreaker": "buttress.policies.breaker",
    "RateLimiter": "buttress.policies.ratelimit",
    "LoadShedder": "buttress.policies.shed",
    "AdaptiveLimit": "buttress.policies.limits",
    "Bulkhead": "buttress.policies.bulkhead",
    "criticality": "buttress.policies.shed",
    "deadline": "buttress.context",
    "failpoint": "buttress.chaos.failpoints",
    "failpoint_async": "buttress.chaos.failpoints",
    "remaining": "buttress.context",
    "ConcurrencyLimitExceeded": "buttress.policies.limits",
    # every error the errors module defines is public here
    **dict.fromkeys(_errors.__all__, "buttress.errors"),
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (and keep it here), or a moved name with a
    ``DeprecationWarning``."""
    home = _HOME.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module 'buttress' has no attribute {name!r}")
    warnings.warn(f"buttress.{name} moved: import it from {home}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
