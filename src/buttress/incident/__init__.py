"""Incidents: a receiver for alert webhooks, a lifecycle with who and when, timelines, postmortems,
notifications and reliability analytics.

``buttress.incident`` imports only the standard library; the receiver (Starlette) and the
postmortem renderer (Jinja2) load their extra when used.  See ``docs/incidents.md``.
"""

from __future__ import annotations

from .model import (
    STATES,
    TRANSITIONS,
    AlertRecord,
    BadPayload,
    Incident,
    LogEntry,
    Notification,
    TransitionRefused,
    parse_alertmanager,
    parse_generic,
)
from .store import DEFAULT_STORE, ActionItem, Deploy, IncidentStore, Outcome

__all__ = [
    "DEFAULT_STORE",
    "STATES",
    "TRANSITIONS",
    "ActionItem",
    "AlertRecord",
    "BadPayload",
    "Deploy",
    "Incident",
    "IncidentStore",
    "LogEntry",
    "Notification",
    "Outcome",
    "TransitionRefused",
    "parse_alertmanager",
    "parse_generic",
]
