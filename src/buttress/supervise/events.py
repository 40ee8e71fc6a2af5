"""What supervisors report: one event per start, readiness, exit, restart, hang and escalation.

``pipeline`` is the supervisor's name, ``policy`` the child's (the supervisor's own name for
:class:`SupervisorGaveUp`); names read ``buttress_supervisor_<kind>`` in logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from buttress.events import Event

__all__ = [
    "ChildCrashLooping",
    "ChildExited",
    "ChildReady",
    "ChildRestarting",
    "ChildStarted",
    "SupervisorGaveUp",
    "WatchdogFired",
]


@dataclass(frozen=True, slots=True)
class ChildStarted(Event, policy_type="supervisor", kind="child_started"):
    pid: int | None


@dataclass(frozen=True, slots=True)
class ChildReady(Event, policy_type="supervisor", kind="child_ready"):
    startup: float  # seconds from start to ready


@dataclass(frozen=True, slots=True)
class ChildExited(Event, policy_type="supervisor", kind="child_exited"):
    reason: str
    failed: bool
    uptime: float


@dataclass(frozen=True, slots=True)
class ChildRestarting(Event, policy_type="supervisor", kind="child_restarting"):
    delay: float
    failures: int  # consecutive failures of the child whose exit caused the restart
    cause: str  # that child's name


@dataclass(frozen=True, slots=True)
class WatchdogFired(Event, policy_type="supervisor", kind="watchdog_fired"):
    silence: float  # seconds since the last WATCHDOG=1 (or since the start)


@dataclass(frozen=True, slots=True)
class SupervisorGaveUp(Event, policy_type="supervisor", kind="gave_up"):
    restarts: int
    period: float
    reason: str


@dataclass(frozen=True, slots=True)
class ChildCrashLooping(Event, policy_type="supervisor", kind="crash_looping"):
    """More consecutive failures than the intensity allows restarts, spread out by the backoff so
    that the intensity alone would not see them: reported, not hidden."""

    failures: int
