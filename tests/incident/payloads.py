"""Payload builders shared by the incident tests (Alertmanager's webhook, version 4)."""

from __future__ import annotations

from typing import Any


def am_alert(
    name: str = "HighErrorRate",
    *,
    status: str = "firing",
    fingerprint: str = "f1",
    starts: str = "2026-01-02T03:04:05.123456789Z",
    ends: str = "0001-01-01T00:00:00Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on {labels.get('service', 'shop')}"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": fingerprint,
    }


def am_payload(
    alerts: list[dict[str, Any]],
    *,
    group_key: str = '{}:{alertname="HighErrorRate"}',
    status: str | None = None,
) -> dict[str, Any]:
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    common = dict(alerts[0]["labels"]) if alerts else {}
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a["labels"].get(k) == v}
    return {
        "receiver": "buttress",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": common.get("alertname", "")},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://127.0.0.1:9093",
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
    }
