"""The dashboard's incidents section: open incidents and the incident history's time-to-x figures.

Read from the incident store (:class:`buttress.incident.IncidentStore`, the file ``buttress
incident serve`` records into).  Per open incident: its state with who took each step, its start
and detection times (the page shows their age, ticking), and, with the spec's SLOs and the SLI
store, its impact so far in error-budget terms (:func:`buttress.incident.timeline.slo_impact` over
the same window as its timeline: from ``started - 30 min`` to now).  Below, the latest resolved
incidents and the medians and 90th percentiles of time to detect, acknowledge, mitigate and
recover over the whole history (:func:`buttress.incident.analytics.by_group`): distributions,
because incident durations are heavy-tailed.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from buttress.incident import Incident, IncidentStore
    from buttress.slo.spec import SLOSpec
    from buttress.slo.store import SLIStore

__all__ = ["IncidentsView"]

HISTORY = 100_000
"""Incidents read for the time-to-x figures (the newest)."""
RESOLVED_SHOWN = 5


def _steps(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "title": i.title,
        "service": i.service,
        "mode": i.mode,
        "severity": i.severity,
        "state": i.state,
        "started": i.started,
        "detected": i.detected,
        "acknowledged": i.acknowledged,
        "acknowledged_by": i.acknowledged_by,
        "mitigated": i.mitigated,
        "mitigated_by": i.mitigated_by,
        "resolved": i.resolved,
        "resolved_by": i.resolved_by,
    }


def _not_an_incident_store(path: Path) -> str | None:
    from buttress.sqlite import connect

    try:
        conn = connect(path, read_only=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'incidents'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        return f"not an incident store ({e})"
    return None if found else "not an incident store (no incidents table)"


class IncidentsView:
    """Builds the incidents payload from the store at ``path`` (opened once it exists: the
    dashboard never creates it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._store: IncidentStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> IncidentStore | str:
        """The store, or why there is none (yet)."""
        from buttress.incident import IncidentStore

        if self._store is not None:
            return self._store
        if not self.path.is_file():
            return "no incident store yet (buttress incident serve creates it)"
        # Opening migrates the schema: never do that to a file that is something else.
        reason = _not_an_incident_store(self.path)
        if reason is not None:
            return reason
        self._store = IncidentStore(self.path)
        return self._store

    def payload(
        self,
        now: float,
        *,
        slos: Sequence[SLOSpec] = (),
        sli_store: SLIStore | None = None,
        sli_lock: Any = None,
    ) -> dict[str, Any]:
        """The section's data (``note`` says why there is none yet)."""
        from buttress.incident.analytics import by_group

        base: dict[str, Any] = {"enabled": True, "file": str(self.path)}
        with self._lock:
            store = self._open()
            if isinstance(store, str):
                return base | {"note": store}
            history = store.incidents(limit=HISTORY)
        open_ = [i for i in history if i.state != "resolved"]
        resolved = [i for i in history if i.state == "resolved"][:RESOLVED_SHOWN]
        rows = []
        for i in sorted(open_, key=lambda i: i.detected):
            row = _steps(i)
            row["impact"] = self._impact(i, now, slos, sli_store, sli_lock)
            rows.append(row)
        stats = by_group(history).get("all", {})
        return base | {
            "at": now,
            "open": rows,
            "resolved": [_steps(i) for i in resolved],
            "total": len(history),
            "mttx": {metric: s.to_json() for metric, s in stats.items()},
        }

    @staticmethod
    def _impact(
        i: Incident, now: float, slos: Sequence[SLOSpec], sli_store: SLIStore | None, sli_lock: Any
    ) -> list[dict[str, Any]]:
        """The SLOs the incident has cost something so far (none without SLOs)."""
        if sli_store is None or not slos:
            return []
        from buttress.incident.timeline import DEFAULT_BEFORE, slo_impact

        end = max(now, i.started + 1)
        lock = sli_lock if sli_lock is not None else threading.Lock()
        with lock:
            impacts = slo_impact(slos, sli_store, i.started - DEFAULT_BEFORE, end)
        return [
            {
                "slo": x.slo,
                "failed": x.failed,
                "total": x.total,
                "budget_minutes": x.budget_minutes,
                "budget_share": x.budget_share,
                "peak_failing_share": x.peak_failing_share,
            }
            for x in impacts
            if x.failed > 0
        ]

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
