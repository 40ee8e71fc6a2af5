"""Events of backups, verifications and the file guard (``buttress_dr_<kind>``).

They flow through the house telemetry like every policy's: with
:func:`buttress.telemetry.prometheus.install` each one counts in ``buttress_events_total`` and its
``duration`` lands in ``buttress_duration_seconds``, labelled ``pipeline="dr"`` and
``policy=<database>``.  Gauges that hold a state rather than count events (time since the last good
backup, the last verification's outcome) come from :mod:`buttress.dr.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

from buttress.events import Emitter, Event

__all__ = [
    "BackupCompleted",
    "BackupVerified",
    "DatabaseFileLost",
    "RestoreCompleted",
    "VerifyFailed",
    "emitter",
]


@dataclass(frozen=True, slots=True)
class BackupCompleted(Event, policy_type="dr", kind="backup_completed"):
    """A backup was written; ``duration`` seconds, ``size`` bytes."""

    backup: str
    duration: float
    size: int


@dataclass(frozen=True, slots=True)
class BackupVerified(Event, policy_type="dr", kind="verify_passed"):
    """A backup was restored into scratch and every check passed."""

    backup: str
    duration: float


@dataclass(frozen=True, slots=True)
class VerifyFailed(Event, policy_type="dr", kind="verify_failed"):
    """A backup failed verification; ``problems`` says which checks."""

    backup: str
    duration: float
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RestoreCompleted(Event, policy_type="dr", kind="restore_completed"):
    """A backup was restored over ``target``."""

    backup: str
    target: str
    duration: float


@dataclass(frozen=True, slots=True)
class DatabaseFileLost(Event, policy_type="dr", kind="file_lost"):
    """The file guard found the database file deleted or replaced; writes are refused from now."""

    path: str
    reason: str


_emitter: Emitter | None = None


def emitter() -> Emitter:
    """The one emitter of DR events (``pipeline="dr"``), made on first use."""
    global _emitter
    if _emitter is None:
        _emitter = Emitter("dr")
    return _emitter
