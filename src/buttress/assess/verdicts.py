"""The verdicts of an assessment a pipeline can gate on, and the exit status of ``buttress assess``.

A verdict fails when a journey's availability misses its target, or when an RTO or RPO verdict is
breached (a disruption recovers later, or loses more data, than the journey's target allows).  A
verdict with no target (``rto_met`` None) is not a failure.  Reads the JSON-ready report of
:func:`buttress.assess.report.assess`, so it needs nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXIT_CODES_HELP", "failed_verdicts"]

EXIT_OK = 0
"""Every journey meets its target and no RTO/RPO is breached (or ``--report-only``)."""
EXIT_FAILED = 1
"""A journey misses its availability target, or an RTO or RPO is breached."""
EXIT_BAD_INPUT = 2
"""The file or an option could not be used (one line with file:line:column), as every command."""

EXIT_CODES_HELP = (
    "Exit status: 0 every journey meets its target and no RTO/RPO is breached; "
    "1 a journey misses its availability target or an RTO/RPO is breached (each failed verdict "
    "is named on stderr; --report-only exits 0 instead); "
    "2 bad input (the file, a field or an option), or a missing extra."
)


def _pct(a: float) -> str:
    return f"{a * 100:.4f}%"


def failed_verdicts(report: Mapping[str, Any]) -> list[str]:
    """One line per failed verdict of ``report``, in journey order; empty when all pass."""
    out: list[str] = []
    for j in report.get("journeys", []):
        name = j["name"]
        if not j["meets_target"]:
            out.append(
                f"journey {name}: availability {_pct(j['availability'])} misses its target "
                f"{j['target'] * 100:g}%"
            )
        for v in j.get("recovery", []):
            for what in ("rto", "rpo"):
                if v[f"{what}_met"] is False:
                    got, want = v[f"{what}_seconds"], v[f"{what}_target_seconds"]
                    out.append(
                        f"journey {name}: {what.upper()} breached for disruption "
                        f"{v['disruption']!r} ({_seconds(got)} > target {_seconds(want)})"
                    )
    return out


def _seconds(s: float | None) -> str:
    if s is None:
        return "unbounded"
    if s == float("inf"):
        return "never"
    if s < 120:
        return f"{s:g}s"
    if s < 3600:
        return f"{s / 60:.3g}m"
    return f"{s / 3600:.3g}h"
