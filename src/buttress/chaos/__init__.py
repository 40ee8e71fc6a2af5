"""Chaos engineering: in-process faults and failpoints, a fault proxy, experiments, a history
checker.

* :mod:`buttress.chaos.faults`: faults as pipeline policies (error, result, latency, behavior);
* :mod:`buttress.chaos.failpoints`: named failpoints, configured at run time or by environment;
* :mod:`buttress.chaos.proxy`: the TCP/HTTP fault proxy with a toxiproxy-compatible control API;
* :mod:`buttress.chaos.client`: a client for that API (sync and async), with context managers;
* :mod:`buttress.chaos.experiment`: Chaos Toolkit experiments with rollbacks that always run;
* :mod:`buttress.chaos.ctk`: the Chaos Toolkit extension (actions, probes, ``discover``);
* :mod:`buttress.chaos.checker`: the nothing-lost (set) checker.

Only the standard library is imported here; the proxy client and experiments need
``buttress[chaos]``.
"""

from __future__ import annotations

from .checker import History, SetCheckResult, check_set
from .failpoints import configure, configured, disable, failpoint, failpoint_async
from .faults import FaultBehavior, FaultError, FaultInjected, FaultLatency, FaultResult

__all__ = [
    "FaultBehavior",
    "FaultError",
    "FaultInjected",
    "FaultLatency",
    "FaultResult",
    "History",
    "SetCheckResult",
    "check_set",
    "configure",
    "configured",
    "disable",
    "failpoint",
    "failpoint_async",
]
