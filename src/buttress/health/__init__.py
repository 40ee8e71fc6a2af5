"""Health checks: liveness, readiness and startup groups, ``application/health+json``, drain.

::

    from buttress.health import HealthApp, HealthRegistry, redis_check, breaker_check

    health = HealthRegistry(service_id="payments", version="1")
    health.add(redis_check("redis://cache:6379/0", ttl=2.0))
    health.add(breaker_check(payments_breaker))      # non-critical: an open breaker only warns
    app.mount("/health", HealthApp(health))          # /health/live, /health/ready, /health/started

The gRPC servicer lives in :mod:`buttress.health.grpc` (``grpc`` extra) and is imported only from
there.  See ``docs/health.md`` for what belongs in which probe.
"""

from __future__ import annotations

from . import builtin
from .asgi import DEFAULT_PATHS, HealthApp
from .builtin import *  # noqa: F403 - the built-in checks, listed once in builtin.__all__
from .checks import DEFAULT_TTL, Check, CheckOptions, CheckReport, Result, Status
from .drain import DEFAULT_DRAIN_DELAY, DEFAULT_GRACE, Drainer, draining_server
from .healthjson import MEDIA_TYPE, to_health_json
from .registry import (
    ALL,
    DEFAULT_PROBE_TIMEOUT,
    LIVENESS,
    READINESS,
    STARTUP,
    CheckStatusChanged,
    Entry,
    HealthRegistry,
    HealthReport,
)
from .wsgi import HealthWSGIApp

__all__ = [
    # registry and checks
    "ALL",
    "DEFAULT_PROBE_TIMEOUT",
    "DEFAULT_TTL",
    "LIVENESS",
    "READINESS",
    "STARTUP",
    "Check",
    "CheckOptions",
    "CheckReport",
    "CheckStatusChanged",
    "Entry",
    "HealthRegistry",
    "HealthReport",
    "Result",
    "Status",
    # serving
    "DEFAULT_PATHS",
    "MEDIA_TYPE",
    "HealthApp",
    "HealthWSGIApp",
    "to_health_json",
    # drain
    "DEFAULT_DRAIN_DELAY",
    "DEFAULT_GRACE",
    "Drainer",
    "draining_server",
]
__all__ += builtin.__all__  # the built-in checks
