"""What supervisors report: one event per start, readiness, exit, restart, hang and escalation.

``pipeline`` is the supervisor's name, ``policy`` the child's (the supervisor's own name for
:class:`SupervisorGaveUp`); names read ``buttress_supervisor_<kind>`` in logs and metrics.
"""

from __future__ import annotations

from buttress.events import EventFamily

__all__ = [
    "ChildCrashLooping",
    "ChildExited",
    "ChildReady",
    "ChildRestarting",
    "ChildStarted",
    "SupervisorEvent",
    "SupervisorGaveUp",
    "WatchdogFired",
]


class SupervisorEvent(EventFamily, policy_type="supervisor"):
    """The family of the supervisors' events."""


class ChildStarted(SupervisorEvent, kind="child_started"):
    pid: int | None


class ChildReady(SupervisorEvent, kind="child_ready"):
    startup: float  # seconds from start to ready


class ChildExited(SupervisorEvent, kind="child_exited"):
    reason: str
    failed: bool
    uptime: float


class ChildRestarting(SupervisorEvent, kind="child_restarting"):
    delay: float
    failures: int  # consecutive failures of the child whose exit caused the restart
    cause: str  # that child's name


class WatchdogFired(SupervisorEvent, kind="watchdog_fired"):
    silence: float  # seconds since the last WATCHDOG=1 (or since the start)


class SupervisorGaveUp(SupervisorEvent, kind="gave_up"):
    restarts: int
    period: float
    reason: str


class ChildCrashLooping(SupervisorEvent, kind="crash_looping"):
    """More consecutive failures than the intensity allows restarts, spread out by the backoff so
    that the intensity alone would not see them: reported, not hidden."""

    failures: int
