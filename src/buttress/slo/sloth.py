"""sloth ``prometheus/v1`` files: read them, and write them when an SLO fits sloth's model.

Mapping: ``slos[].name/objective/description/labels`` are the same; the service's ``labels`` are
added to every SLO; ``sli.events.error_query``/``total_query`` -> a ratio SLI's ``bad``/``total``;
``sli.raw.error_ratio_query`` -> ``error_ratio``; ``alerting.name/labels/annotations`` ->
``alerting``; ``page_alert``/``ticket_alert`` (``disable``, ``labels``, ``annotations``) -> the two
page and the two ticket tiers of the Workbook.  sloth's period is 30 days (it has no window field),
so SLOs read from sloth have a 30-day rolling window, and only such SLOs (with the default tiers)
can be written back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from buttress.errors import SpecError
from buttress.spec.source import Document
from buttress.spec.validation import validate

from .spec import DEFAULT_TIERS, LatencySLI, RatioSLI, SLOSpec
from .translate import validate_slo_at

__all__ = ["slos_from_sloth", "slos_to_sloth"]

VERSION = "prometheus/v1"
SLOTH_PERIOD = 30 * 86400.0


class _S(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _scalar_text(v: Any) -> Any:
    """A YAML scalar as the text sloth (Go, yaml.v2 into a string map) reads it: ``true`` ->
    ``"true"``, ``1`` -> ``"1"``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return v


Text = Annotated[str, BeforeValidator(_scalar_text)]
"""A label or annotation value: sloth accepts booleans and numbers and reads them as text."""


class Events(_S):
    error_query: str
    total_query: str


class Raw(_S):
    error_ratio_query: str


class Plugin(_S):
    id: str
    options: dict[str, Any] = Field(default_factory=dict)


class SLI(_S):
    events: Events | None = None
    raw: Raw | None = None
    plugin: Plugin | None = None


class Alert(_S):
    disable: bool = False
    labels: dict[str, Text] = Field(default_factory=dict)
    annotations: dict[str, Text] = Field(default_factory=dict)


class Alerting(_S):
    name: str | None = None
    labels: dict[str, Text] = Field(default_factory=dict)
    annotations: dict[str, Text] = Field(default_factory=dict)
    page_alert: Alert = Field(default_factory=Alert)
    ticket_alert: Alert = Field(default_factory=Alert)


class SLO(_S):
    name: str
    objective: float
    description: str = ""
    labels: dict[str, Text] = Field(default_factory=dict)
    sli: SLI
    alerting: Alerting = Field(default_factory=Alerting)


class Spec(_S):
    version: Literal["prometheus/v1"]
    service: str
    labels: dict[str, Text] = Field(default_factory=dict)
    slos: list[SLO] = Field(min_length=1)


def slos_from_sloth(doc: Document) -> list[SLOSpec]:
    """Buttress SLOs from a sloth ``prometheus/v1`` document."""
    if not isinstance(doc.data, dict):
        raise doc.error((), "a sloth file is a mapping with version, service and slos")
    spec = validate(Spec, doc)
    out = []
    for i, s in enumerate(spec.slos):
        loc: tuple[str | int, ...] = ("slos", i)
        if s.sli.plugin is not None:
            raise doc.error(
                (*loc, "sli", "plugin"),
                f"sloth SLI plugins ({s.sli.plugin.id}) are not supported; use events or raw",
            )
        if (s.sli.events is None) == (s.sli.raw is None):
            raise doc.error((*loc, "sli"), "give exactly one of events or raw")
        sli: dict[str, Any] = {"kind": "ratio"}
        if s.sli.events is not None:
            sli["bad"] = s.sli.events.error_query
            sli["total"] = s.sli.events.total_query
        else:
            assert s.sli.raw is not None
            sli["error_ratio"] = s.sli.raw.error_ratio_query
        a = s.alerting
        tiers = []
        disable = []
        for t in DEFAULT_TIERS:
            alert = a.page_alert if t.severity == "page" else a.ticket_alert
            tiers.append(
                t.model_copy(
                    update={"labels": dict(alert.labels), "annotations": dict(alert.annotations)}
                )
            )
            if alert.disable:
                disable.append(t.name)
        data: dict[str, Any] = {
            "name": s.name,
            "service": spec.service,
            "description": s.description,
            "objective": s.objective,
            "labels": {**spec.labels, **s.labels},
            "sli": sli,
            "window": "30d",
            "alerting": {
                "name": a.name,
                "labels": a.labels,
                "annotations": a.annotations,
                "tiers": [t.model_dump(exclude_none=True) for t in tiers],
                "disable": disable,
            },
        }
        # Errors name sloth's own fields (slos[0].objective) at their lines.
        same = {k: ((*loc, k), True) for k in ("name", "objective", "description", "labels")}
        fields: dict[str, tuple[tuple[str | int, ...], bool]] = {
            **same,
            "sli": ((*loc, "sli"), False),
            "sli.bad": ((*loc, "sli", "events", "error_query"), False),
            "sli.total": ((*loc, "sli", "events", "total_query"), False),
            "sli.error_ratio": ((*loc, "sli", "raw", "error_ratio_query"), False),
            "alerting": ((*loc, "alerting"), False),
        }
        out.append(validate_slo_at(doc, data, fields, loc))
    return out


def slos_to_sloth(slos: list[SLOSpec]) -> dict[str, Any]:
    """One sloth document for ``slos`` (all of one service; 30-day rolling windows, default tiers).

    Raises :class:`~buttress.errors.SpecError` naming the SLO and the field sloth cannot express.
    """
    services = {s.service for s in slos}
    if len(services) != 1:
        raise SpecError(f"a sloth file describes one service, got {sorted(map(str, services))}")
    out_slos = []
    for slo in slos:
        where = f"slos.{slo.name}"
        if slo.window.rolling != SLOTH_PERIOD:
            raise SpecError(
                f"sloth has a fixed 30-day period; this SLO's window is {slo.window.describe()}",
                field=f"{where}.window",
            )
        names = [t.name for t in slo.alerting.tiers]
        if names != [t.name for t in DEFAULT_TIERS] or any(
            t.threshold(SLOTH_PERIOD) != d.threshold(SLOTH_PERIOD)
            or (t.long_window, t.short_window) != (d.long_window, d.short_window)
            for t, d in zip(slo.alerting.tiers, DEFAULT_TIERS, strict=True)
        ):
            raise SpecError(
                "sloth only has the Workbook's four tiers", field=f"{where}.alerting.tiers"
            )
        sli = slo.sli
        if isinstance(sli, RatioSLI) and sli.error_ratio is not None:
            sloth_sli: dict[str, Any] = {"raw": {"error_ratio_query": sli.error_ratio}}
        elif isinstance(sli, RatioSLI | LatencySLI) and sli.has_prometheus:
            bad, good, total = sli.queries()
            assert total is not None
            error = bad if bad is not None else f"({total})\n-\n({good})"
            sloth_sli = {"events": {"error_query": error, "total_query": total}}
        else:
            raise SpecError(
                "sloth needs Prometheus queries of a ratio or latency SLI", field=f"{where}.sli"
            )
        alerting: dict[str, Any] = {"name": slo.alert_name}
        if slo.alerting.labels:
            alerting["labels"] = dict(slo.alerting.labels)
        if slo.alerting.annotations:
            alerting["annotations"] = dict(slo.alerting.annotations)
        for sev, key in (("page", "page_alert"), ("ticket", "ticket_alert")):
            group = [t for t in slo.alerting.tiers if t.severity == sev]
            alert: dict[str, Any] = {}
            if all(t.name in slo.alerting.disable for t in group):
                alert["disable"] = True
            if group[0].labels:
                alert["labels"] = dict(group[0].labels)
            if group[0].annotations:
                alert["annotations"] = dict(group[0].annotations)
            if alert:
                alerting[key] = alert
        entry: dict[str, Any] = {"name": slo.name, "objective": slo.objective}
        if slo.description:
            entry["description"] = slo.description
        if slo.labels:
            entry["labels"] = dict(slo.labels)
        entry["sli"] = sloth_sli
        entry["alerting"] = alerting
        out_slos.append(entry)
    return {"version": VERSION, "service": next(iter(services)), "slos": out_slos}
