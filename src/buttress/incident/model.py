"""Incidents without I/O: the lifecycle table, the records, and the two webhook payloads parsed.

Lifecycle: ``detected -> acknowledged -> mitigated -> resolved``.  A step may be skipped (an alert
that clears by itself resolves a merely detected incident) but never taken backwards or twice:
:data:`TRANSITIONS` is the whole table, and :func:`check_transition` is the one place it is read.

Two payloads are understood:

* Alertmanager's webhook, version ``"4"``: ``receiver``, ``status`` (``firing`` | ``resolved``),
  ``alerts`` (each with ``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt``,
  ``generatorURL``, ``fingerprint``), ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
  ``externalURL``, ``version``, ``groupKey``, ``truncatedAlerts``.  ``groupKey`` names the alert
  group; the incident is keyed by it.
* A generic JSON webhook for anything else (a CI job, a script, another monitor)::

      {"key": "checkout-latency", "status": "firing", "title": "...", "service": "shop",
       "mode": "db-down", "severity": "page", "started_at": "2026-01-02T03:04:05Z",
       "labels": {...}}

  ``key`` and ``status`` are required; the rest is optional.

Either is turned into a :class:`Notification`: the group key, whether the group is firing, and its
alerts as :class:`AlertRecord` (identity ``fingerprint`` + ``starts``), which the store uses to
deduplicate repeats.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from buttress.errors import ButtressError
from buttress.records import fields_of

__all__ = [
    "STATES",
    "TRANSITIONS",
    "AlertRecord",
    "BadPayload",
    "Entry",
    "Incident",
    "LogEntry",
    "Notification",
    "Record",
    "TransitionRefused",
    "check_transition",
    "parse_alertmanager",
    "parse_generic",
    "parse_time",
    "stamp",
]

State = Literal["detected", "acknowledged", "mitigated", "resolved"]
STATES: Final[tuple[State, ...]] = ("detected", "acknowledged", "mitigated", "resolved")

TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "detected": frozenset({"acknowledged", "mitigated", "resolved"}),
    "acknowledged": frozenset({"mitigated", "resolved"}),
    "mitigated": frozenset({"resolved"}),
    "resolved": frozenset(),
}
"""State -> the states it may move to.  Forward only; skipping ahead is allowed."""

VERBS: Final[Mapping[str, str]] = {
    "acknowledged": "acknowledge",
    "mitigated": "mitigate",
    "resolved": "resolve",
}

MAX_ALERTS = 10_000
"""Alerts accepted in one notification (Alertmanager truncates with ``max_alerts`` anyway)."""


class BadPayload(ButtressError):
    """A webhook body that is not JSON, or not the payload it claims to be (``field`` names the
    offending field)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class TransitionRefused(ButtressError):
    """A lifecycle step out of order (resolve an unknown incident, acknowledge a resolved one)."""


def check_transition(
    incident_id: int,
    current: str | None,
    target: str,
    *,
    when: float | None = None,
    detected: float | None = None,
) -> None:
    """Raise :class:`TransitionRefused` unless ``current -> target`` is in :data:`TRANSITIONS`
    and the step, made ``when``, is not before the incident was ``detected``.

    ``current`` is ``None`` for an incident that does not exist (never detected).
    """
    verb = VERBS.get(target, target)
    if target not in VERBS:
        raise TransitionRefused(f"unknown state {target!r}; one of {', '.join(VERBS.values())}")
    if current is None:
        raise TransitionRefused(
            f"cannot {verb} incident {incident_id}: no such incident (it was never detected)"
        )
    if target not in TRANSITIONS[current]:
        # Skipping ahead is allowed, so a refused step always points backwards (or repeats).
        raise TransitionRefused(
            f"cannot {verb} incident {incident_id}: it is already {current} "
            f"(steps go forward only: {' -> '.join(STATES)})"
        )
    if when is not None and detected is not None and when < detected:
        raise TransitionRefused(
            f"cannot {verb} incident {incident_id} at {when}: before it was detected ({detected})"
        )


class Record:
    """A base of the incident records (frozen dataclasses) whose JSON form is their fields by name:
    a nested record as its own JSON, a list item by item, a mapping as a plain dict."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {name: _json(value) for name, value in fields_of(self).items()}


def _json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert of a group: ``fingerprint`` and ``starts`` identify one firing of it."""

    fingerprint: str
    status: str
    starts: float | None
    ends: float | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Notification:
    """A webhook payload, parsed: one alert group's current state."""

    source: str  # "alertmanager" | "webhook"
    group_key: str
    firing: bool
    alerts: tuple[AlertRecord, ...]
    labels: Mapping[str, str]
    title: str
    service: str
    mode: str
    severity: str
    started: float | None
    body: Mapping[str, Any] = field(default_factory=dict)
    truncated: int = 0  # alerts Alertmanager left out (its max_alerts)

    @property
    def firing_ids(self) -> frozenset[tuple[str, float | None]]:
        """The ``(fingerprint, starts)`` of each firing alert: what makes a notification new."""
        return frozenset((a.fingerprint, a.starts) for a in self.alerts if a.status == "firing")


@dataclass(frozen=True, slots=True)
class Incident(Record):
    """An incident as stored (times are Unix seconds; ``None`` until reached)."""

    id: int
    group_key: str
    title: str
    service: str
    mode: str
    severity: str
    state: str
    started: float
    detected: float
    acknowledged: float | None
    acknowledged_by: str | None
    mitigated: float | None
    mitigated_by: str | None
    resolved: float | None
    resolved_by: str | None
    notifications: int
    labels: Mapping[str, str]
    source: str


@dataclass(frozen=True, slots=True)
class LogEntry(Record):
    """One line of an incident's own log (opened, repeat, acknowledged, ...)."""

    seq: int
    incident: int
    time: float
    kind: str
    actor: str
    detail: Mapping[str, Any]


def stamp(t: float | None) -> str:
    """Unix seconds -> ``2026-01-02 03:04:05Z`` (``-`` for not yet)."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def parse_time(value: object, field_name: str) -> float | None:
    """RFC 3339 (nanoseconds allowed, ``Z`` or an offset) or Unix seconds -> Unix seconds.

    Go's zero time (``0001-01-01T00:00:00Z``), empty strings and ``None`` mean "not set".
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadPayload(field_name, "must be an RFC 3339 time or Unix seconds")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise BadPayload(field_name, "must be an RFC 3339 time or Unix seconds")
    if value.startswith("0001-01-01"):
        return None
    text = value
    if "." in text:  # Python keeps at most microseconds: trim Go's nanoseconds
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadPayload(field_name, f"not an RFC 3339 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise BadPayload(field_name, f"time without a zone: {value!r}")
    return parsed.timestamp()


def _obj(body: Mapping[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    value = body.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise BadPayload(name, "must be a JSON object" if name in body else "is required")
    return value


def _labels(value: Mapping[str, Any], name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise BadPayload(f"{name}.{k}", "label values must be strings")
        out[str(k)] = str(v)
    return out


def _text(body: Mapping[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadPayload(name, "must be a string")
    return value


def _status(body: Mapping[str, Any], where: str = "status") -> str:
    """The ``status`` field, ``firing`` or ``resolved`` (``where`` names it in the error)."""
    status = _text(body, "status")
    if status not in ("firing", "resolved"):
        raise BadPayload(where, f"must be 'firing' or 'resolved', not {status!r}")
    return status


def _pick(labels: Mapping[str, str], *names: str, default: str = "") -> str:
    for n in names:
        if labels.get(n):
            return labels[n]
    return default


def parse_alertmanager(body: object) -> Notification:
    """Alertmanager's webhook payload (version 4) -> :class:`Notification`.

    Service: the ``service`` label, else ``job``; failure mode: ``failure_mode``, else
    ``alertname``; severity: ``severity``.  Labels are the group's ``commonLabels``.
    """
    if not isinstance(body, dict):
        raise BadPayload("body", "must be a JSON object")
    version = body.get("version")
    if version != "4":
        raise BadPayload(
            "version", f"unsupported Alertmanager payload version {version!r} (want '4')"
        )
    group_key = _text(body, "groupKey")
    if not group_key:
        raise BadPayload("groupKey", "is required")
    status = _status(body)
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list):
        raise BadPayload("alerts", "must be a JSON array")
    if len(raw_alerts) > MAX_ALERTS:
        raise BadPayload("alerts", f"more than {MAX_ALERTS} alerts in one notification")
    alerts = tuple(_am_alert(a, i) for i, a in enumerate(raw_alerts))
    common = _labels(_obj(body, "commonLabels"), "commonLabels")
    annotations = _labels(_obj(body, "commonAnnotations"), "commonAnnotations")
    firing_starts = [a.starts for a in alerts if a.status == "firing" and a.starts is not None]
    all_starts = [a.starts for a in alerts if a.starts is not None]
    title = annotations.get("summary") or common.get("alertname") or group_key
    return Notification(
        source="alertmanager",
        group_key=group_key,
        firing=status == "firing",
        alerts=alerts,
        labels=common,
        title=title,
        service=_pick(common, "service", "job", default="unknown"),
        mode=_pick(common, "failure_mode", "alertname", default="unknown"),
        severity=_pick(common, "severity", default="unknown"),
        started=min(firing_starts or all_starts) if (firing_starts or all_starts) else None,
        body=body,
        truncated=_count(body, "truncatedAlerts"),
    )


def _count(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadPayload(name, "must be a non-negative integer")
    return value


def _am_alert(raw: object, index: int) -> AlertRecord:
    where = f"alerts[{index}]"
    if not isinstance(raw, dict):
        raise BadPayload(where, "must be a JSON object")
    status = _status(raw, f"{where}.status")
    labels = _labels(_obj(raw, "labels"), f"{where}.labels")
    fingerprint = _text(raw, "fingerprint")
    if not fingerprint:  # older senders: derive one from the labels, as Alertmanager does
        blob = json.dumps(labels, sort_keys=True).encode()
        fingerprint = hashlib.sha256(blob).hexdigest()[:16]
    return AlertRecord(
        fingerprint=fingerprint,
        status=status,
        starts=parse_time(raw.get("startsAt"), f"{where}.startsAt"),
        ends=parse_time(raw.get("endsAt"), f"{where}.endsAt"),
        labels=labels,
        annotations=_labels(_obj(raw, "annotations"), f"{where}.annotations"),
    )


def parse_generic(body: object) -> Notification:
    """The generic JSON webhook -> :class:`Notification` (one alert, keyed by ``key``)."""
    if not isinstance(body, dict):
        raise BadPayload("body", "must be a JSON object")
    key = _text(body, "key")
    if not key:
        raise BadPayload("key", "is required (the alert group this notification belongs to)")
    status = _status(body)
    unknown = set(body) - {
        "key", "status", "title", "service", "mode", "severity", "started_at", "labels",
    }  # fmt: skip
    if unknown:
        raise BadPayload(sorted(unknown)[0], "unknown field")
    labels = _labels(_obj(body, "labels"), "labels")
    started = parse_time(body.get("started_at"), "started_at")
    alert = AlertRecord(
        fingerprint=key, status=status, starts=started, ends=None, labels=labels, annotations={}
    )
    return Notification(
        source="webhook",
        group_key=key,
        firing=status == "firing",
        alerts=(alert,),
        labels=labels,
        title=_text(body, "title") or key,
        service=_text(body, "service") or _pick(labels, "service", "job", default="unknown"),
        mode=_text(body, "mode") or _pick(labels, "failure_mode", "alertname", default=key),
        severity=_text(body, "severity") or _pick(labels, "severity", default="unknown"),
        started=started,
        body=body,
    )


@dataclass(frozen=True, slots=True)
class Entry(Record):
    """One line of an incident's timeline (:mod:`buttress.incident.timeline`): ``source`` is
    ``incident``, ``slo``, ``feed``, ``supervisor``, ``remediation``, ``chaos`` or ``deploy``."""

    time: float
    source: str
    kind: str
    text: str
    detail: dict[str, Any] = field(default_factory=dict)
