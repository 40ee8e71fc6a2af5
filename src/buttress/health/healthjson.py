"""Rendering a :class:`~buttress.health.report.HealthReport` as ``application/health+json``.

The format is draft-inadarei-api-health-check ("Health Check Response Format for HTTP APIs"):

* ``status`` (required): ``pass``, ``warn`` or ``fail``.  HTTP status: 200 for ``pass`` and
  ``warn`` (the draft asks for 2xx-3xx), 503 for ``fail`` (4xx-5xx).
* ``version``, ``releaseId``, ``serviceId``, ``description``: from the registry, when set.
* ``output``: for ``warn``/``fail`` only, the keys of the checks that caused it (never secrets).
* ``checks``: an object keyed ``"componentName:measurementName"``, each value a list of objects
  with ``componentId`` (when set), ``componentType``, ``observedValue`` / ``observedUnit`` (when the
  check observed something), ``status``, ``time`` (ISO 8601, UTC, when the reading was taken) and
  ``output`` (omitted for ``pass``, as the draft recommends).

Exception text is not rendered unless ``expose_errors=True``: by default a failure reads
``"check raised ConnectionRefusedError"`` or ``"timed out after 0.8s"``, never the exception's
message (which may hold hostnames, DSNs or passwords).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .checks import Status
from .report import HealthReport, http_status

__all__ = ["CACHE_CONTROL", "MEDIA_TYPE", "encode", "http_status", "iso_time", "to_health_json"]

MEDIA_TYPE = "application/health+json"
CACHE_CONTROL = "no-cache"


def iso_time(wall: float) -> str:
    """``wall`` (seconds since the epoch) as ISO 8601 in UTC with milliseconds:
    ``2024-05-01T12:00:00.000Z``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def to_health_json(
    report: HealthReport,
    *,
    service_id: str | None = None,
    version: str | None = None,
    release_id: str | None = None,
    description: str | None = None,
    expose_errors: bool = False,
) -> dict[str, Any]:
    """The health+json document for ``report`` (a dict ready for :func:`json.dumps`)."""
    doc: dict[str, Any] = {"status": report.status.value}
    if version is not None:
        doc["version"] = version
    if release_id is not None:
        doc["releaseId"] = release_id
    if service_id is not None:
        doc["serviceId"] = service_id
    if description is not None:
        doc["description"] = description
    failing: list[str] = []
    warning: list[str] = []
    checks: dict[str, list[dict[str, Any]]] = {}
    for entry in report.entries:
        check, r = entry.check, entry.report
        item: dict[str, Any] = {}
        if check.component_id is not None:
            item["componentId"] = check.component_id
        item["componentType"] = check.component_type
        if r.observed_value is not None:
            item["observedValue"] = r.observed_value
        if r.observed_unit is not None:
            item["observedUnit"] = r.observed_unit
        item["status"] = r.status.value
        item["time"] = iso_time(r.time)
        if r.status is not Status.PASS:
            out = r.output or r.status.value
            if expose_errors and r.error is not None:
                out = f"{out}: {type(r.error).__name__}: {r.error}"
            item["output"] = out
        checks.setdefault(check.key, []).append(item)
        if entry.effective is Status.FAIL:
            failing.append(check.key)
        elif entry.effective is Status.WARN:
            warning.append(
                check.key if r.status is Status.WARN else f"{check.key} (non-critical, failing)"
            )
    if report.status is not Status.PASS:
        parts = []
        if failing:
            parts.append("failing: " + ", ".join(failing))
        if warning:
            parts.append("warning: " + ", ".join(warning))
        doc["output"] = "; ".join(parts) or report.status.value
    doc["checks"] = checks
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, default=str).encode()
