"""The run journal, in Chaos Toolkit's journal format (``journal.json``).

Top-level keys, as Chaos Toolkit writes them: ``chaoslib-version``, ``platform``, ``node``,
``experiment``, ``start``, ``status`` (``completed``, ``failed``, ``aborted``, ``interrupted``),
``deviated``, ``steady_states`` (``before``, ``after``, ``during``), ``run`` (one record per method
activity), ``rollbacks``, ``end``, ``duration``.  Each activity record has ``activity``, ``status``
(``succeeded`` / ``failed``), ``output``, ``start``, ``end``, ``duration`` and, on failure,
``exception`` (lines of text); probes checked against a tolerance add ``tolerance_met`` (and
``tolerance_exception``, lines of text, when judging the tolerance raised).

Buttress adds ``buttress-version``, ``dry`` and ``abort_reason`` (what stopped the run, if
anything).
"""

from __future__ import annotations

import json
import platform
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .versions import buttress_version, dist_version

__all__ = ["Journal", "iso"]


def iso(t: float) -> str:
    """Wall time ``t`` as ISO 8601 in UTC, as Chaos Toolkit writes it."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class Journal:
    """Collects what happened during one run; :meth:`to_dict` gives the journal."""

    def __init__(self, experiment: dict[str, Any], *, dry: bool = False) -> None:
        self.experiment = experiment
        self.dry = dry
        self.started = time.time()
        self.ended: float | None = None
        self.status = "completed"
        self.deviated = False
        self.abort_reason: str | None = None
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        self.during: list[dict[str, Any]] = []
        self.run: list[dict[str, Any]] = []
        self.rollbacks: list[dict[str, Any]] = []

    def to_dict(self) -> dict[str, Any]:
        end = self.ended if self.ended is not None else time.time()
        return {
            "chaoslib-version": dist_version("chaostoolkit-lib"),
            "buttress-version": buttress_version(),
            "platform": platform.platform(),
            "node": socket.gethostname(),
            "experiment": self.experiment,
            "start": iso(self.started),
            "status": self.status,
            "deviated": self.deviated,
            "abort_reason": self.abort_reason,
            "dry": self.dry,
            "steady_states": {"before": self.before, "after": self.after, "during": self.during},
            "run": self.run,
            "rollbacks": self.rollbacks,
            "end": iso(end),
            "duration": end - self.started,
        }

    def write(self, path: str | Path) -> None:
        """Write the journal as JSON (values that are not JSON become their ``repr``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=repr) + "\n")
