"""Supervision trees for OS processes and asyncio tasks: restarts the way Erlang/OTP does them,
readiness and watchdogs the way systemd does them (``sd_notify``), no orphans.

.. code-block:: python

    from buttress.supervise import ProcessChild, Supervisor, TcpReady

    tree = Supervisor(
        "shop",
        [
            ProcessChild("db", ["python", "db.py"], ready=TcpReady(5433)),
            ProcessChild("api", ["python", "api.py"], depends_on=["db"], watchdog=2.0),
        ],
        strategy="rest_for_one",
        intensity=5,
        period=30.0,
    )
    await tree.run()

See ``docs/supervise.md``.
"""

from __future__ import annotations

from .child import Child, ChildFailed, Exit
from .core import CycleError, Escalate, Leave, Restart, SupervisorCore, start_order
from .notify import NotifySocket, parse_notification
from .options import ChildOptions, SupervisorOptions
from .process import ProcessChild
from .ready import HealthReady, NotifyReady, Readiness, TcpReady
from .supervisor import CrashLoop, Supervisor
from .tasks import TaskChild, TaskContext

__all__ = [
    # building a tree
    "Supervisor",
    "ProcessChild",
    "TaskChild",
    "TaskContext",
    "SupervisorOptions",
    "ChildOptions",
    # readiness
    "HealthReady",
    "NotifyReady",
    "Readiness",
    "TcpReady",
    # the child protocol
    "Child",
    "ChildFailed",
    "Exit",
    # the decisions, sans I/O
    "SupervisorCore",
    "Restart",
    "Leave",
    "Escalate",
    "CycleError",
    "start_order",
    # notify socket
    "NotifySocket",
    "parse_notification",
    # errors
    "CrashLoop",
]
