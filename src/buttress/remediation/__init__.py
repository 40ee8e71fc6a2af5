"""Remediation: when a signal holds, act, with cooldowns, limits, dry runs and a journal.

See ``docs/degraded-modes.md``.
"""

from __future__ import annotations

from .core import Holds, RuleGate, RuleOptions
from .engine import (
    Journal,
    JournalEntry,
    RemediationActed,
    RemediationEscalated,
    Remediator,
    Rule,
    Signal,
    signal_from_event,
    signal_from_health_report,
    signals_from_slo_statuses,
)

__all__ = [
    "Remediator",
    "Rule",
    "RuleOptions",
    "Signal",
    "Journal",
    "JournalEntry",
    "RemediationActed",
    "RemediationEscalated",
    "RuleGate",
    "Holds",
    "signal_from_event",
    "signal_from_health_report",
    "signals_from_slo_statuses",
]
