"""What one evaluation of a health group reports: :class:`HealthReport` and its :class:`Entry`
items.  A leaf module: the registry makes reports, :mod:`~buttress.health.healthjson` renders them,
and neither needs the other to know their shape."""

from __future__ import annotations

from dataclasses import dataclass

from .checks import Check, CheckReport, Status

__all__ = ["Entry", "HealthReport", "http_status"]

_HTTP = {Status.PASS: 200, Status.WARN: 200, Status.FAIL: 503}


def http_status(status: Status) -> int:
    """200 for ``pass`` and ``warn``, 503 for ``fail``."""
    return _HTTP[status]


@dataclass(frozen=True, slots=True)
class Entry:
    """One check's report inside a group report, with the status it contributes to the group."""

    check: Check
    report: CheckReport
    effective: Status


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One evaluation of one group."""

    group: str
    status: Status
    entries: tuple[Entry, ...]
    draining: bool

    @property
    def ok(self) -> bool:
        """True unless the status is ``fail`` (``warn`` is ok: HTTP 200)."""
        return self.status is not Status.FAIL

    @property
    def http_status(self) -> int:
        """200 for ``pass`` and ``warn``, 503 for ``fail``."""
        return http_status(self.status)
