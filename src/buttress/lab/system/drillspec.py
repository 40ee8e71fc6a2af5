"""The ``experiments.drill:`` section: a disaster-recovery drill (``buttress lab PATH --drill``).

Run by :mod:`buttress.lab.system.drill`.  ``every`` declares how often the drill is due (a
quarterly drill: ``every: 90d``); ``buttress report --spec`` reads it and says, from the drill
reports kept, whether the schedule was kept or a drill is overdue
(:func:`buttress.incident.exercises.schedule`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from buttress.spec.types import PositiveDuration

__all__ = ["DrillSpec"]


class DrillSpec(BaseModel):
    """A disaster-recovery drill of one service's SQLite database (``buttress lab PATH --drill``):
    one run with the policies, load as ``load:`` says, the database backed up online every
    ``backup_every``; at ``at`` the service is SIGKILLed and its database file deleted, ``detect``
    later the newest backup is restored and the service started again.  The achieved RTO (the
    disaster to the first order acknowledged after it) and RPO (the disaster to the newest order
    the restored backup holds) are judged against the journey's objectives in ``architecture:``
    (disruption ``instance``), next to the assessment's estimates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(description="The service whose database is lost (one instance).")
    file: str = Field(description="Its database file, in its data directory (orders.db).")
    backup_every: PositiveDuration = Field(default=5.0, description="Seconds between backups.")
    at: PositiveDuration = Field(default=12.0, description="When the disaster strikes.")
    detect: PositiveDuration = Field(
        default=1.0, description="From the disaster to the start of the restore (detection)."
    )
    duration: PositiveDuration = Field(default=30.0, description="Length of the drill's run.")
    journey: str | None = Field(
        default=None, description="Whose RTO/RPO objectives (default: the only journey)."
    )
    every: PositiveDuration | None = Field(
        default=None,
        description="How often the drill is due (90d: quarterly); buttress report --spec says "
        "whether the drills kept met it.",
    )
    nothing_lost: bool = Field(
        default=False,
        description="The drill also checks that no acknowledged order was lost (a design that "
        "keeps a copy elsewhere fills the backup's gap).",
    )

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError(f"{v!r} must be a file name in the service's data directory")
        return v

    @model_validator(mode="after")
    def _times(self) -> DrillSpec:
        if self.at + self.detect >= self.duration:
            raise ValueError("the disaster and its detection must end before the drill does")
        if self.backup_every >= self.at:
            raise ValueError("back up at least once before the disaster (backup_every < at)")
        return self
