"""Events of backups, verifications and the file guard (``buttress_dr_<kind>``).

They flow through the house telemetry like every policy's: with
:func:`buttress.telemetry.prometheus.install` each one counts in ``buttress_events_total`` and its
``duration`` lands in ``buttress_duration_seconds``, labelled ``pipeline="dr"`` and
``policy=<database>``.  Gauges that hold a state rather than count events (time since the last good
backup, the last verification's outcome) come from :mod:`buttress.dr.metrics`.
"""

from __future__ import annotations

from buttress.events import Emitter, EventFamily

__all__ = [
    "BackupCompleted",
    "BackupEvent",
    "BackupVerified",
    "DatabaseFileLost",
    "DrEvent",
    "RestoreCompleted",
    "VerifyFailed",
    "emitter",
]


class DrEvent(EventFamily, policy_type="dr"):
    """The family of the DR events."""


class BackupEvent(DrEvent):
    """The family of the events about one backup (its id), which took ``duration`` seconds."""

    backup: str
    duration: float


class BackupCompleted(BackupEvent, kind="backup_completed"):
    """A backup was written, ``size`` bytes."""

    size: int


class BackupVerified(BackupEvent, kind="verify_passed"):
    """A backup was restored into scratch and every check passed."""


class VerifyFailed(BackupEvent, kind="verify_failed"):
    """A backup failed verification; ``problems`` says which checks."""

    problems: tuple[str, ...]


class RestoreCompleted(BackupEvent, kind="restore_completed"):
    """A backup was restored over ``target``."""

    target: str


class DatabaseFileLost(DrEvent, kind="file_lost"):
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
