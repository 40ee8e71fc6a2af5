"""OpenSLO v1: read SLO, SLI, AlertPolicy, AlertCondition, Service and DataSource objects; write
them.

Mapping (OpenSLO -> Buttress):

- ``SLO.spec.objectives[i].target`` (or ``targetPercent``) -> ``objective`` (percent); an SLO with
  several objectives becomes one Buttress SLO per objective (``<name>-<displayName or i>``).
- ``ratioMetric`` good/bad/total ``metricSource.spec.query`` -> the ratio SLI's queries; ``raw``
  with ``rawType: failure`` -> ``error_ratio`` (``success`` -> ``1 - (query)``).  Queries should use
  the ``{{.window}}`` placeholder; a counter query without it is wrapped as
  ``rate((query)[{{.window}}:])``.
- ``timeWindow``: rolling ``duration`` -> ``window``; calendar ``1w``/``1M``/``1Q`` with
  ``timeZone`` -> a calendar window.
- ``budgetingMethod: Timeslices``/``RatioTimeslices`` with ``timeSliceWindow``/``timeSliceTarget``
  -> a window SLI.
- each ``AlertCondition`` (``kind: burnrate``, ``op: gt|gte``) -> a tier: ``threshold`` -> burn
  rate, ``lookbackWindow`` -> long window, severity; the short window is read from the annotation
  ``buttress.dev/short-window`` (default: 1/12 of the long window, the Workbook's ratio).
- Fields OpenSLO has no place for travel in ``metadata.annotations`` under ``buttress.dev/``.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from buttress.errors import SpecError
from buttress.spec.source import Document, _dotted, validate
from buttress.spec.types import parse_duration

from .spec import (
    AlertingSpec,
    ExclusionSpec,
    LatencySLI,
    RatioSLI,
    SLOSpec,
    TierSpec,
    WindowSLI,
    WindowSpec,
    format_duration,
)
from .translate import validate_slo_at

__all__ = ["slos_from_openslo", "slos_to_openslo"]

API = "openslo/v1"
ANN = "buttress.dev/"


class _O(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(_O):
    name: str = Field(min_length=1)
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class MetricSource(_O):
    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class MetricSpec(_O):
    metricSource: MetricSource


class RatioMetric(_O):
    counter: bool | None = None
    good: MetricSpec | None = None
    bad: MetricSpec | None = None
    total: MetricSpec | None = None
    rawType: Literal["success", "failure"] | None = None
    raw: MetricSpec | None = None


class SLISpecO(_O):
    description: str | None = None
    thresholdMetric: MetricSpec | None = None
    ratioMetric: RatioMetric | None = None


class InlineSLI(_O):
    metadata: Metadata
    spec: SLISpecO


class CalendarO(_O):
    startTime: str | None = None
    timeZone: str = "UTC"


class TimeWindowO(_O):
    duration: str | int
    isRolling: bool | None = None
    calendar: CalendarO | None = None


class ObjectiveO(_O):
    displayName: str | None = None
    op: Literal["lte", "gte", "lt", "gt"] | None = None
    value: float | None = None
    target: float | None = Field(default=None, ge=0, lt=1)
    targetPercent: float | None = Field(default=None, ge=0, lt=100)
    timeSliceTarget: float | None = Field(default=None, gt=0, le=1)
    timeSliceWindow: str | int | None = None


class ConditionO(_O):
    kind: Literal["burnrate"] = "burnrate"
    op: Literal["lte", "gte", "lt", "gt"]
    threshold: float = Field(gt=0)
    lookbackWindow: str
    alertAfter: str | None = None


class AlertConditionSpecO(_O):
    description: str | None = None
    severity: str
    condition: ConditionO


class PolicyConditionO(_O):
    conditionRef: str | None = None
    kind: Literal["AlertCondition"] | None = None
    metadata: Metadata | None = None
    spec: AlertConditionSpecO | None = None


class AlertPolicySpecO(_O):
    description: str | None = None
    alertWhenNoData: bool = False
    alertWhenResolved: bool = False
    alertWhenBreaching: bool = True
    conditions: list[PolicyConditionO] = Field(min_length=1)
    notificationTargets: list[dict[str, Any]] = Field(default_factory=list)


class SLOPolicyO(_O):
    alertPolicyRef: str | None = None
    kind: Literal["AlertPolicy"] | None = None
    metadata: Metadata | None = None
    spec: AlertPolicySpecO | None = None


class SLOSpecO(_O):
    description: str | None = None
    service: str
    indicator: InlineSLI | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindowO] = Field(min_length=1, max_length=1)
    budgetingMethod: Literal["Occurrences", "Timeslices", "RatioTimeslices"]
    objectives: list[ObjectiveO] = Field(min_length=1)
    alertPolicies: list[SLOPolicyO] = Field(default_factory=list)


class DataSourceSpecO(_O):
    description: str | None = None
    type: str
    connectionDetails: dict[str, Any] = Field(default_factory=dict)


class ServiceSpecO(_O):
    description: str | None = None


class Obj(_O):
    apiVersion: Literal["openslo/v1"]
    kind: Literal[
        "SLO",
        "SLI",
        "AlertPolicy",
        "AlertCondition",
        "AlertNotificationTarget",
        "Service",
        "DataSource",
    ]
    metadata: Metadata
    spec: dict[str, Any]


_SPEC_MODELS: dict[str, type[BaseModel]] = {
    "SLO": SLOSpecO,
    "SLI": SLISpecO,
    "AlertPolicy": AlertPolicySpecO,
    "AlertCondition": AlertConditionSpecO,
    "DataSource": DataSourceSpecO,
    "Service": ServiceSpecO,
}


def parse_shorthand(value: str | int, *, number_unit: float = 60.0) -> float:
    """OpenSLO's duration-shorthand in seconds: ``m h d w`` plus ``M`` (30d), ``Q`` (90d), ``Y``
    (365d).

    A bare number is in minutes (OpenSLO's default for ``timeSliceWindow``).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) * number_unit
    m = re.fullmatch(r"\s*(\d+)\s*([MQY])\s*", str(value))
    if m:
        n = int(m.group(1))
        return n * {"M": 30, "Q": 90, "Y": 365}[m.group(2)] * 86400.0
    return parse_duration(value)


class _Ctx:
    """Objects found in the documents, by kind and name, with where they came from."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[Any, Obj, Document, tuple[str | int, ...]]] = {}
        self.order: list[tuple[str, str]] = []

    def get(self, kind: str, name: str, doc: Document, loc: tuple[str | int, ...]) -> Any:
        key = (kind, name)
        if key not in self.objects:
            known = sorted(n for k, n in self.objects if k == kind)
            raise doc.error(
                loc,
                f"no {kind} named {name!r} in the file(s)"
                + (f" (found: {', '.join(known)})" if known else ""),
            )
        return self.objects[key]


Loc = tuple[str | int, ...]


class _Ann:
    """``buttress.dev/`` annotations gathered from several objects, each remembering where it was
    written, so that a malformed value is reported at its own line (later sources override)."""

    def __init__(self) -> None:
        self.where: dict[str, tuple[str, Document, Loc]] = {}

    def add(self, meta: Metadata, doc: Document, meta_loc: Loc) -> _Ann:
        for key, value in meta.annotations.items():
            self.where[key] = (value, doc, (*meta_loc, "annotations", key))
        return self

    def merged(self, other: _Ann) -> _Ann:
        out = _Ann()
        out.where = {**self.where, **other.where}
        return out

    def __contains__(self, key: str) -> bool:
        return ANN + key in self.where

    def get(self, key: str) -> str | None:
        hit = self.where.get(ANN + key)
        return hit[0] if hit is not None else None

    def error(self, key: str, message: str) -> SpecError:
        _, doc, loc = self.where[ANN + key]
        return doc.error(loc, message)

    def json(self, key: str, expect: type[dict[str, Any]] | type[list[Any]]) -> Any:
        """The JSON value of annotation ``key`` (``None`` when absent): an object (``dict``) or
        an array (``list``)."""
        text = self.get(key)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise self.error(key, f"not valid JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(value, expect):
            want = "a JSON object" if expect is dict else "a JSON array"
            raise self.error(key, f"must be {want}, got {type(value).__name__}")
        return value

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self.json(key, dict)
        if value is None:
            return None
        for k, v in value.items():
            if not isinstance(v, str):
                raise self.error(key, f"value of {k!r} must be a string, got {v!r}")
        return dict(value)

    def count(self, key: str) -> int | None:
        text = self.get(key)
        if text is None:
            return None
        try:
            n = int(text.strip())
        except ValueError:
            raise self.error(key, f"must be a whole number of events >= 0, got {text!r}") from None
        if n < 0:
            raise self.error(key, f"must be >= 0, got {n}")
        return n

    def duration(self, key: str) -> float | None:
        text = self.get(key)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            raise self.error(key, str(e)) from None
        if seconds <= 0:
            raise self.error(key, f"must be a duration > 0, got {text!r}")
        return seconds

    def model(self, key: str, adapter: TypeAdapter[Any], data: Any) -> Any:
        """``data`` (read from annotation ``key``) validated by ``adapter``; errors name the inner
        field."""
        try:
            return adapter.validate_python(data)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = _dotted(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise self.error(key, f"{where}: {msg}" if where else msg) from None


def _collect(docs: list[Document]) -> _Ctx:
    ctx = _Ctx()
    for doc in docs:
        items: list[tuple[Document, tuple[str | int, ...]]]
        if isinstance(doc.data, list):
            items = [(doc, (i,)) for i in range(len(doc.data))]
        else:
            items = [(doc, ())]
        for d, loc in items:
            data = d.data
            for part in loc:
                data = data[part]
            if not isinstance(data, dict):
                raise d.error(
                    loc, "an OpenSLO object must be a mapping with apiVersion, kind, metadata, spec"
                )
            obj = validate(Obj, d, loc)
            spec = (
                validate(_SPEC_MODELS[obj.kind], d, (*loc, "spec"))
                if obj.kind in _SPEC_MODELS
                else obj.spec
            )
            key = (obj.kind, obj.metadata.name)
            if key in ctx.objects:
                raise d.error(
                    (*loc, "metadata", "name"), f"{obj.kind} {obj.metadata.name!r} is defined twice"
                )
            ctx.objects[key] = (spec, obj, d, loc)
            ctx.order.append(key)
    return ctx


def _query(
    ms: MetricSpec, counter: bool | None, ctx: _Ctx, doc: Document, loc: tuple[str | int, ...]
) -> str:
    src = ms.metricSource
    mtype = src.type
    if src.metricSourceRef:
        ds, _, _, _ = ctx.get(
            "DataSource", src.metricSourceRef, doc, (*loc, "metricSource", "metricSourceRef")
        )
        mtype = mtype or ds.type
    if mtype is not None and mtype.lower() != "prometheus":
        raise doc.error(
            (*loc, "metricSource", "type"),
            f"metric source type {mtype!r} is not supported; Buttress generates Prometheus rules "
            "(type: Prometheus)",
        )
    q = src.spec.get("query") or src.spec.get("promql")
    if not isinstance(q, str) or not q.strip():
        raise doc.error(
            (*loc, "metricSource", "spec"), "needs a 'query' (PromQL) in metricSource.spec"
        )
    if "{{.window}}" in q:
        return q
    if counter:
        return f"rate(({q.strip()})[{{{{.window}}}}:])"
    raise doc.error(
        (*loc, "metricSource", "spec", "query"),
        "a query must use the {{.window}} placeholder in its range selectors "
        "(or set ratioMetric.counter: true to rate a counter query)",
    )


def _sli(
    s: SLISpecO, ann: _Ann, ctx: _Ctx, doc: Document, loc: tuple[str | int, ...]
) -> RatioSLI | LatencySLI:
    latency = ann.json("latency", dict)
    pipeline = ann.get("pipeline")
    if latency is not None:
        data = {"kind": "latency", **latency}
        if pipeline is not None and "pipeline" not in latency:
            data["pipeline"] = pipeline
        return ann.model("latency", _LATENCY, data)  # type: ignore[no-any-return]
    if s.thresholdMetric is not None:
        raise doc.error(
            (*loc, "thresholdMetric"),
            "thresholdMetric SLIs are not supported: Buttress SLIs count good and total events; "
            "use ratioMetric",
        )
    rm = s.ratioMetric
    if rm is None:
        if pipeline:
            return RatioSLI(kind="ratio", pipeline=pipeline)
        raise doc.error(loc, "an SLI needs ratioMetric (good or bad, and total; or raw)")
    rl = (*loc, "ratioMetric")
    try:
        if rm.raw is not None:
            q = _query(rm.raw, None, ctx, doc, (*rl, "raw"))
            if rm.rawType is None:
                raise doc.error((*rl, "rawType"), "raw needs rawType: success or failure")
            er = q if rm.rawType == "failure" else f"1 - ({q})"
            return RatioSLI(kind="ratio", error_ratio=er, pipeline=pipeline)
        if rm.total is None or (rm.good is None) == (rm.bad is None):
            raise doc.error(rl, "ratioMetric needs total and exactly one of good or bad")
        total = _query(rm.total, rm.counter, ctx, doc, (*rl, "total"))
        if rm.good is not None:
            good = _query(rm.good, rm.counter, ctx, doc, (*rl, "good"))
            return RatioSLI(kind="ratio", good=good, total=total, pipeline=pipeline)
        assert rm.bad is not None
        bad = _query(rm.bad, rm.counter, ctx, doc, (*rl, "bad"))
        return RatioSLI(kind="ratio", bad=bad, total=total, pipeline=pipeline)
    except ValueError as e:
        if isinstance(e, SpecError):
            raise
        raise doc.error(rl, str(e).splitlines()[-1]) from None


def _window(tw: TimeWindowO, doc: Document, loc: tuple[str | int, ...]) -> WindowSpec:
    try:
        if tw.calendar is not None or tw.isRolling is False:
            cal = {"1w": "week", "7d": "week", "1M": "month", "1Q": "quarter", "3M": "quarter"}.get(
                str(tw.duration)
            )
            if cal is None:
                raise doc.error(
                    (*loc, "duration"),
                    f"calendar window {tw.duration!r} is not supported (use 1w, 1M or 1Q)",
                )
            tz = tw.calendar.timeZone if tw.calendar else "UTC"
            try:
                return WindowSpec(calendar=cal, timezone=tz)  # type: ignore[arg-type]
            except ValueError as e:
                raise doc.error((*loc, "calendar", "timeZone"), _first(e)) from None
        return WindowSpec(rolling=parse_shorthand(tw.duration))
    except ValueError as e:
        if isinstance(e, SpecError):
            raise
        raise doc.error((*loc, "duration"), _first(e)) from None


def _first(e: ValueError) -> str:
    """The message of a (pydantic) error, without pydantic's decoration."""
    if isinstance(e, ValidationError):
        return str(e.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
    return str(e).splitlines()[-1]


# Where a TierSpec field comes from in an AlertCondition (annotation keys without the prefix).
_TIER_ANN = {
    "name": "tier",
    "short_window": "short-window",
    "min_events": "min-events",
    "labels": "labels",
    "annotations": "annotations",
}
_TIER_SPEC = {
    "long_window": ("condition", "lookbackWindow"),
    "burn_rate": ("condition", "threshold"),
    "severity": ("severity",),
}


def _tiers(
    slo: SLOSpecO, ctx: _Ctx, doc: Document, loc: tuple[str | int, ...]
) -> tuple[list[TierSpec], _Ann]:
    tiers: list[TierSpec] = []
    policy_ann = _Ann()
    for i, p in enumerate(slo.alertPolicies):
        ploc = (*loc, "alertPolicies", i)
        if p.alertPolicyRef:
            pspec, pobj, pdoc, pl = ctx.get(
                "AlertPolicy", p.alertPolicyRef, doc, (*ploc, "alertPolicyRef")
            )
            pmeta = pobj.metadata
        else:
            if p.spec is None or p.metadata is None:
                raise doc.error(
                    ploc, "an alert policy needs alertPolicyRef, or kind/metadata/spec inline"
                )
            pspec, pmeta, pdoc, pl = p.spec, p.metadata, doc, ploc
        policy_ann.add(pmeta, pdoc, (*pl, "metadata"))
        for j, c in enumerate(pspec.conditions):
            cloc = (*pl, "spec", "conditions", j)
            if c.conditionRef:
                cspec, cobj, cdoc, cl = ctx.get(
                    "AlertCondition", c.conditionRef, pdoc, (*cloc, "conditionRef")
                )
                cmeta = cobj.metadata
                meta_loc = (*cl, "metadata")
                cl = (*cl, "spec")
            else:
                if c.spec is None or c.metadata is None:
                    raise pdoc.error(
                        cloc, "a condition needs conditionRef, or kind/metadata/spec inline"
                    )
                cspec, cmeta, cdoc, cl = c.spec, c.metadata, pdoc, (*cloc, "spec")
                meta_loc = (*cloc, "metadata")
            cann = _Ann().add(cmeta, cdoc, meta_loc)
            cond = cspec.condition
            if cond.op not in ("gt", "gte"):
                raise cdoc.error(
                    (*cl, "condition", "op"),
                    "a burn-rate alert fires above its threshold: "
                    f"op must be gt or gte, not {cond.op}",
                )
            try:
                long_w = parse_shorthand(cond.lookbackWindow)
            except ValueError as e:
                raise cdoc.error((*cl, "condition", "lookbackWindow"), _first(e)) from None
            short_w = cann.duration("short-window")
            data: dict[str, Any] = {
                "name": cann.get("tier") or cmeta.name,
                "severity": cspec.severity,
                "long_window": long_w,
                "short_window": short_w if short_w is not None else long_w / 12,
                "burn_rate": cond.threshold,
                "min_events": cann.count("min-events"),
                "labels": cann.string_map("labels") or {},
                "annotations": cann.string_map("annotations") or {},
            }
            try:
                tiers.append(TierSpec.model_validate(data))
            except ValidationError as e:
                err = e.errors(include_url=False)[0]
                field = str(err["loc"][0]) if err["loc"] else ""
                msg = _first(e)
                key = _TIER_ANN.get(field)
                if key is not None and key in cann:
                    raise cann.error(key, msg) from None
                if field == "name":
                    raise cdoc.error((*meta_loc, "name"), msg) from None
                raise cdoc.error((*cl, *_TIER_SPEC.get(field, ("condition",))), msg) from None
    return tiers, policy_ann


_LATENCY: TypeAdapter[LatencySLI] = TypeAdapter(LatencySLI)
_EXCLUSIONS: TypeAdapter[list[ExclusionSpec]] = TypeAdapter(list[ExclusionSpec])


def slos_from_openslo(docs: list[Document]) -> list[SLOSpec]:
    """Buttress SLOs from OpenSLO v1 documents; every problem names its file, line and field."""
    ctx = _collect(docs)
    out: list[SLOSpec] = []
    for key in ctx.order:
        if key[0] != "SLO":
            continue
        spec, obj, doc, loc = ctx.objects[key]
        sl = (*loc, "spec")
        assert isinstance(spec, SLOSpecO)
        ann = _Ann().add(obj.metadata, doc, (*loc, "metadata"))
        if spec.indicator is not None:
            sli_spec, sli_loc = spec.indicator.spec, (*sl, "indicator", "spec")
            sli_ann = _Ann().add(spec.indicator.metadata, doc, (*sl, "indicator", "metadata"))
            sli_doc = doc
        elif spec.indicatorRef:
            s2, o2, sli_doc, l2 = ctx.get("SLI", spec.indicatorRef, doc, (*sl, "indicatorRef"))
            sli_spec, sli_loc = s2, (*l2, "spec")
            sli_ann = _Ann().add(o2.metadata, sli_doc, (*l2, "metadata"))
        else:
            raise doc.error(sl, "an SLO needs indicator (inline) or indicatorRef")
        inner = _sli(sli_spec, sli_ann.merged(ann), ctx, sli_doc, sli_loc)
        tw_loc = (*sl, "timeWindow", 0)
        window = _window(spec.timeWindow[0], doc, tw_loc)
        tiers, policy_ann = _tiers(spec, ctx, doc, sl)
        all_ann = policy_ann.merged(ann)
        alerting = _alerting(tiers, all_ann)
        exclusions = ann.json("exclusions", list)
        if exclusions is not None:
            ann.model("exclusions", _EXCLUSIONS, exclusions)
        for i, objective in enumerate(spec.objectives):
            ol = (*sl, "objectives", i)
            if objective.target is None and objective.targetPercent is None:
                raise doc.error(ol, "an objective needs target (0-1) or targetPercent (0-100)")
            if objective.target is not None and objective.targetPercent is not None:
                raise doc.error(ol, "give target or targetPercent, not both")
            percent = (
                objective.targetPercent
                if objective.targetPercent is not None
                else float(f"{objective.target * 100:.12g}")  # type: ignore[operator]
            )
            sli: Any = inner
            if spec.budgetingMethod != "Occurrences":
                if objective.timeSliceWindow is None:
                    raise doc.error(ol, f"{spec.budgetingMethod} needs timeSliceWindow")
                if spec.budgetingMethod == "Timeslices" and objective.timeSliceTarget is None:
                    raise doc.error(ol, "Timeslices needs timeSliceTarget")
                try:
                    slice_s = parse_shorthand(objective.timeSliceWindow)
                except ValueError as e:
                    raise doc.error((*ol, "timeSliceWindow"), _first(e)) from None
                sli = {
                    "kind": "window",
                    "slice": slice_s,
                    "target": objective.timeSliceTarget
                    if spec.budgetingMethod == "Timeslices"
                    else None,
                    "of": inner.model_dump(exclude_none=True),
                }
            name = obj.metadata.name
            if len(spec.objectives) > 1:
                suffix = re.sub(r"[^A-Za-z0-9]+", "-", objective.displayName or str(i)).strip("-")
                name = f"{name}-{suffix or i}"
            data: dict[str, Any] = {
                "name": name,
                "service": spec.service,
                "description": spec.description or "",
                "objective": percent,
                "sli": sli if isinstance(sli, dict) else sli.model_dump(exclude_none=True),
                "budgeting": spec.budgetingMethod,
                "window": window.model_dump(exclude_none=True),
                "labels": {k: v for k, v in obj.metadata.labels.items() if isinstance(v, str)},
                "alerting": alerting,
                "exclusions": exclusions or [],
            }
            target_key = "targetPercent" if objective.targetPercent is not None else "target"
            ann_loc = (*loc, "metadata", "annotations")
            fields: dict[str, tuple[Loc, bool]] = {
                "name": ((*loc, "metadata", "name"), False),
                "service": ((*sl, "service"), False),
                "description": ((*sl, "description"), False),
                "objective": ((*ol, target_key), False),
                "sli": (sli_loc, False),
                "budgeting": ((*sl, "budgetingMethod"), False),
                "window": ((*sl, "timeWindow"), False),
                "labels": ((*loc, "metadata", "labels"), True),
                "alerting": ((*sl, "alertPolicies") if spec.alertPolicies else ann_loc, False),
                "exclusions": ((*ann_loc, ANN + "exclusions"), False),
            }
            if spec.budgetingMethod != "Occurrences":
                fields["sli"] = (ol, False)
            elif sli_doc is not doc:  # the SLI is another YAML document: point at the reference
                fields["sli"] = ((*sl, "indicatorRef"), False)
            else:
                for part in ("good", "bad", "total"):
                    fields[f"sli.{part}"] = ((*sli_loc, "ratioMetric", part), False)
            out.append(validate_slo_at(doc, data, fields, ol))
    if not out:
        raise SpecError("no SLO objects (kind: SLO) found", file=docs[0].file if docs else None)
    return out


def _alerting(tiers: list[TierSpec], ann: _Ann) -> dict[str, Any]:
    data: dict[str, Any] = {}
    no_alerts = ann.get("no-alerts")
    if no_alerts is not None and no_alerts not in ("true", "false"):
        raise ann.error("no-alerts", f"must be 'true' or 'false', got {no_alerts!r}")
    if no_alerts == "true":
        data["tiers"] = []
    elif tiers:
        data["tiers"] = [t.model_dump(exclude_none=True) for t in tiers]
    name = ann.get("alert-name")
    if name is not None:
        data["name"] = name
    min_events = ann.count("min-events")
    if min_events is not None:
        data["min_events"] = min_events
    absent = ann.get("absent-for")
    if absent is not None:
        data["absent_for"] = None if absent == "off" else ann.duration("absent-for")
    labels = ann.string_map("alert-labels")
    if labels is not None:
        data["labels"] = labels
    annotations = ann.string_map("alert-annotations")
    if annotations is not None:
        data["annotations"] = annotations
    return data


# -- export ---------------------------------------------------------------------------------------


def _metric(query: str) -> dict[str, Any]:
    return {
        "metricSource": {
            "metricSourceRef": "prometheus",
            "type": "Prometheus",
            "spec": {"query": query},
        }
    }


def _indicator(slo: SLOSpec) -> tuple[dict[str, Any], dict[str, str]]:
    sli = slo.sli.of if isinstance(slo.sli, WindowSLI) else slo.sli
    ann: dict[str, str] = {}
    if sli.pipeline:
        ann[ANN + "pipeline"] = sli.pipeline
    spec: dict[str, Any] = {}
    if isinstance(sli, LatencySLI):
        ann[ANN + "latency"] = json.dumps(
            sli.model_dump(exclude_none=True, exclude={"kind", "pipeline"}), sort_keys=True
        )
    if isinstance(sli, RatioSLI) and sli.error_ratio is not None:
        spec["ratioMetric"] = {"rawType": "failure", "raw": _metric(sli.error_ratio)}
    else:
        bad, good, total = (
            sli.queries()
            if (not isinstance(sli, RatioSLI) or sli.good or sli.bad or sli.total)
            else (None, None, None)
        )
        if total is not None:
            rm: dict[str, Any] = {"counter": True}
            if good is not None:
                rm["good"] = _metric(good)
            else:
                rm["bad"] = _metric(bad or "")
            rm["total"] = _metric(total)
            spec["ratioMetric"] = rm
    return spec, ann


def slos_to_openslo(slos: list[SLOSpec]) -> list[dict[str, Any]]:
    """OpenSLO v1 documents (Service, DataSource, SLO, AlertPolicy, AlertCondition) for ``slos``."""
    out: list[dict[str, Any]] = []
    services = sorted({s.service or "" for s in slos})
    for svc in services:
        out.append({"apiVersion": API, "kind": "Service", "metadata": {"name": svc}, "spec": {}})
    if any(s.sli.has_prometheus for s in slos):
        out.append(
            {
                "apiVersion": API,
                "kind": "DataSource",
                "metadata": {"name": "prometheus"},
                "spec": {"type": "Prometheus", "connectionDetails": {}},
            }
        )
    for slo in slos:
        sli_spec, sli_ann = _indicator(slo)
        ann: dict[str, str] = dict(sli_ann)
        a = slo.alerting
        defaults = AlertingSpec()
        if a.name:
            ann[ANN + "alert-name"] = a.name
        if a.min_events != defaults.min_events:
            ann[ANN + "min-events"] = str(a.min_events)
        if a.absent_for != defaults.absent_for:
            ann[ANN + "absent-for"] = (
                "off" if a.absent_for is None else format_duration(a.absent_for)
            )
        if a.labels:
            ann[ANN + "alert-labels"] = json.dumps(a.labels, sort_keys=True)
        if a.annotations:
            ann[ANN + "alert-annotations"] = json.dumps(a.annotations, sort_keys=True)
        if slo.exclusions:
            ann[ANN + "exclusions"] = json.dumps(
                [_exclusion(e) for e in slo.exclusions], sort_keys=True
            )
        tiers = a.active_tiers
        if not tiers:
            ann[ANN + "no-alerts"] = "true"
        if slo.window.rolling is not None:
            tw: dict[str, Any] = {
                "duration": format_duration(slo.window.rolling),
                "isRolling": True,
            }
        else:
            dur = {"week": "1w", "month": "1M", "quarter": "1Q"}[slo.window.calendar or "month"]
            tw = {
                "duration": dur,
                "calendar": {"startTime": "2020-01-01 00:00:00", "timeZone": slo.window.timezone},
                "isRolling": False,
            }
        objective: dict[str, Any] = {"displayName": slo.name, "targetPercent": slo.objective}
        if isinstance(slo.sli, WindowSLI):
            objective["timeSliceWindow"] = format_duration(slo.sli.slice)
            if slo.sli.target is not None:
                objective["timeSliceTarget"] = slo.sli.target
        meta: dict[str, Any] = {"name": slo.name}
        if slo.labels:
            meta["labels"] = dict(slo.labels)
        if ann:
            meta["annotations"] = ann
        spec: dict[str, Any] = {}
        if slo.description:
            spec["description"] = slo.description
        spec.update(
            {
                "service": slo.service,
                "indicator": {"metadata": {"name": f"{slo.name}-sli"}, "spec": sli_spec},
                "timeWindow": [tw],
                "budgetingMethod": slo.method,
                "objectives": [objective],
            }
        )
        if tiers:
            spec["alertPolicies"] = [{"alertPolicyRef": f"{slo.name}-{t.name}"} for t in tiers]
        out.append({"apiVersion": API, "kind": "SLO", "metadata": meta, "spec": spec})
        for t in tiers:
            cond_ann = {
                ANN + "tier": t.name,
                ANN + "short-window": format_duration(t.short_window),
            }
            if t.min_events is not None:
                cond_ann[ANN + "min-events"] = str(t.min_events)
            if t.labels:
                cond_ann[ANN + "labels"] = json.dumps(t.labels, sort_keys=True)
            if t.annotations:
                cond_ann[ANN + "annotations"] = json.dumps(t.annotations, sort_keys=True)
            out.append(
                {
                    "apiVersion": API,
                    "kind": "AlertPolicy",
                    "metadata": {"name": f"{slo.name}-{t.name}"},
                    "spec": {
                        "alertWhenBreaching": True,
                        "alertWhenResolved": False,
                        "alertWhenNoData": a.absent_for is not None,
                        "conditions": [{"conditionRef": f"{slo.name}-{t.name}-condition"}],
                        "notificationTargets": [],
                    },
                }
            )
            out.append(
                {
                    "apiVersion": API,
                    "kind": "AlertCondition",
                    "metadata": {
                        "name": f"{slo.name}-{t.name}-condition",
                        "annotations": cond_ann,
                    },
                    "spec": {
                        "severity": t.severity,
                        "condition": {
                            "kind": "burnrate",
                            "op": "gt",
                            "threshold": t.threshold(slo.period),
                            "lookbackWindow": format_duration(t.long_window),
                            "alertAfter": "0m",
                        },
                    },
                }
            )
    return out


def _exclusion(e: ExclusionSpec) -> dict[str, str]:
    return {"start": e.start.isoformat(), "end": e.end.isoformat(), "reason": e.reason}
