"""OpenSLO v1 -> Buttress SLOs (see :mod:`buttress.slo.openslo` for the mapping)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from buttress.errors import SpecError
from buttress.slo.sli import normalize_placeholder
from buttress.slo.spec import ExclusionSpec, LatencySLI, RatioSLI, SLOSpec, TierSpec, WindowSpec
from buttress.slo.translate import validate_slo_at
from buttress.spec.source import Document
from buttress.spec.validation import validate

from .annotations import Annotations, Loc, first_message
from .models import (
    ANN,
    SPEC_MODELS,
    Metadata,
    MetricSpec,
    Obj,
    ObjectiveO,
    SLISpecO,
    SLOSpecO,
    TimeWindowO,
    parse_shorthand,
)

__all__ = ["slos_from_openslo"]


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

    def resolve(
        self, item: Any, kind: str, ref_key: str, doc: Document, loc: Loc, *, what: str
    ) -> tuple[Any, Metadata, Document, Loc]:
        """The spec, metadata, document and location of ``item`` (at ``loc``), an object of
        ``kind`` written by reference (its ``ref_key``) or inline (kind, metadata and spec)."""
        ref = getattr(item, ref_key)
        if ref:
            spec, obj, odoc, oloc = self.get(kind, ref, doc, (*loc, ref_key))
            return spec, obj.metadata, odoc, oloc
        if item.spec is None or item.metadata is None:
            raise doc.error(loc, f"{what} needs {ref_key}, or kind/metadata/spec inline")
        return item.spec, item.metadata, doc, loc


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
                validate(SPEC_MODELS[obj.kind], d, (*loc, "spec"))
                if obj.kind in SPEC_MODELS
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
    q = normalize_placeholder(q)
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
    s: SLISpecO, ann: Annotations, ctx: _Ctx, doc: Document, loc: tuple[str | int, ...]
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
                raise doc.error((*loc, "calendar", "timeZone"), first_message(e)) from None
        return WindowSpec(rolling=parse_shorthand(tw.duration))
    except ValueError as e:
        if isinstance(e, SpecError):
            raise
        raise doc.error((*loc, "duration"), first_message(e)) from None


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
    "alert_after": ("condition", "alertAfter"),
}


def _kept_meta(meta: Metadata) -> dict[str, Any]:
    """The name and display name of an object, kept for the export."""
    return meta.model_dump(include={"name", "displayName"}, exclude_none=True)


def _alert_after(value: str | int | None, doc: Document, loc: Loc) -> float | None:
    """``alertAfter`` in seconds (OpenSLO's default ``0m``: none)."""
    if value is None:
        return None
    try:
        seconds = parse_shorthand(value)
    except ValueError as e:
        raise doc.error(loc, first_message(e)) from None
    if seconds < 0 or seconds % 60:
        raise doc.error(loc, f"must be a whole number of minutes >= 0, got {value!r}")
    return seconds or None


def _tiers(
    slo: SLOSpecO, ctx: _Ctx, doc: Document, loc: tuple[str | int, ...]
) -> tuple[list[TierSpec], Annotations, dict[str, Any], dict[str, Any]]:
    """The tiers of ``slo``'s alert policies, their annotations, and what the export keeps of
    each tier's policy and condition (by tier name) and of the notification targets used."""
    tiers: list[TierSpec] = []
    kept: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    policy_ann = Annotations()
    for i, p in enumerate(slo.alertPolicies):
        ploc = (*loc, "alertPolicies", i)
        pspec, pmeta, pdoc, pl = ctx.resolve(
            p, "AlertPolicy", "alertPolicyRef", doc, ploc, what="an alert policy"
        )
        policy_ann.add(pmeta, pdoc, (*pl, "metadata"))
        for j, c in enumerate(pspec.conditions):
            cloc = (*pl, "spec", "conditions", j)
            cspec, cmeta, cdoc, cl = ctx.resolve(
                c, "AlertCondition", "conditionRef", pdoc, cloc, what="a condition"
            )
            meta_loc, cl = (*cl, "metadata"), (*cl, "spec")
            cann = Annotations().add(cmeta, cdoc, meta_loc)
            cond = cspec.condition
            try:
                long_w = parse_shorthand(cond.lookbackWindow)
            except ValueError as e:
                raise cdoc.error((*cl, "condition", "lookbackWindow"), first_message(e)) from None
            short_w = cann.duration("short-window")
            after = _alert_after(cond.alertAfter, cdoc, (*cl, "condition", "alertAfter"))
            data: dict[str, Any] = {
                "name": cann.get("tier") or cmeta.name,
                "severity": cspec.severity,
                "long_window": long_w,
                "short_window": short_w if short_w is not None else long_w / 12,
                "burn_rate": cond.threshold,
                "min_events": cann.count("min-events"),
                "labels": cann.string_map("labels") or {},
                "annotations": cann.string_map("annotations") or {},
                "alert_after": after,
                "op": cond.op,
            }
            kept[data["name"]] = {
                "policy": _kept_meta(pmeta)
                | {"ref": bool(p.alertPolicyRef)}
                | pspec.model_dump(exclude={"conditions"}, exclude_unset=True),
                "condition": _kept_meta(cmeta)
                | {"ref": bool(c.conditionRef)}
                | cspec.model_dump(include={"description"}, exclude_none=True),
            }
            for target in pspec.notificationTargets:
                ref = target.get("targetRef") if isinstance(target, dict) else None
                if isinstance(ref, str) and ("AlertNotificationTarget", ref) in ctx.objects:
                    _, tobj, _, _ = ctx.objects[("AlertNotificationTarget", ref)]
                    targets[ref] = _kept_meta(tobj.metadata) | {"spec": tobj.spec}
            try:
                tiers.append(TierSpec.model_validate(data))
            except ValidationError as e:
                err = e.errors(include_url=False)[0]
                field = str(err["loc"][0]) if err["loc"] else ""
                msg = first_message(e)
                key = _TIER_ANN.get(field)
                if key is not None and key in cann:
                    raise cann.error(key, msg) from None
                if field == "name":
                    raise cdoc.error((*meta_loc, "name"), msg) from None
                raise cdoc.error((*cl, *_TIER_SPEC.get(field, ("condition",))), msg) from None
    return tiers, policy_ann, kept, targets


_LATENCY: TypeAdapter[LatencySLI] = TypeAdapter(LatencySLI)
_EXCLUSIONS: TypeAdapter[list[ExclusionSpec]] = TypeAdapter(list[ExclusionSpec])


def slos_from_openslo(docs: list[Document]) -> list[SLOSpec]:
    """Buttress SLOs from OpenSLO v1 documents; every problem names its file, line and field."""
    ctx = _collect(docs)
    out: list[SLOSpec] = []
    for key in ctx.order:
        if key[0] == "SLO":
            out.extend(_slos_of(ctx, *ctx.objects[key]))
    if not out:
        raise SpecError("no SLO objects (kind: SLO) found", file=docs[0].file if docs else None)
    return out


@dataclass(frozen=True, slots=True)
class _Parts:
    """What the objectives of one OpenSLO SLO object share, with where each part was written."""

    spec: SLOSpecO
    obj: Obj
    doc: Document
    loc: Loc  # the object
    inner: RatioSLI | LatencySLI  # its SLI
    sli_doc: Document
    sli_loc: Loc
    window: WindowSpec
    alerting: dict[str, Any]
    exclusions: list[Any] | None
    kept: dict[str, Any]

    @property
    def spec_loc(self) -> Loc:
        return (*self.loc, "spec")


def _slos_of(ctx: _Ctx, spec: Any, obj: Obj, doc: Document, loc: Loc) -> list[SLOSpec]:
    """The Buttress SLOs of one OpenSLO SLO object: one per objective."""
    sl = (*loc, "spec")
    assert isinstance(spec, SLOSpecO)
    ann = Annotations().add(obj.metadata, doc, (*loc, "metadata"))
    inner, sli_doc, sli_loc = _indicator(spec, ann, ctx, doc, sl)
    window = _window(spec.timeWindow[0], doc, (*sl, "timeWindow", 0))
    tiers, policy_ann, kept_tiers, targets = _tiers(spec, ctx, doc, sl)
    alerting = _alerting(tiers, policy_ann.merged(ann))
    exclusions = ann.json("exclusions", list)
    if exclusions is not None:
        ann.model("exclusions", _EXCLUSIONS, exclusions)
    kept = _kept(ctx, spec, kept_tiers, targets)
    parts = _Parts(spec, obj, doc, loc, inner, sli_doc, sli_loc, window, alerting, exclusions, kept)
    return [_objective_slo(parts, i, o) for i, o in enumerate(spec.objectives)]


def _kept(
    ctx: _Ctx, spec: SLOSpecO, tiers: dict[str, Any], targets: dict[str, Any]
) -> dict[str, Any]:
    """What Buttress does not use but an export writes back (``SLOSpec.openslo``): every data
    source (connection details included), the service's object, the SLI's name, the calendar's
    start, each tier's policy and condition, the notification targets."""
    kept: dict[str, Any] = {}
    sources = {
        name: _kept_meta(o.metadata) | s.model_dump(exclude_none=True)
        for (kind, name), (s, o, _, _) in ctx.objects.items()
        if kind == "DataSource"
    }
    if sources:
        kept["dataSources"] = sources
    if ("Service", spec.service) in ctx.objects:
        s, o, _, _ = ctx.objects[("Service", spec.service)]
        kept["service"] = _kept_meta(o.metadata) | s.model_dump(exclude_none=True)
    if spec.indicator is not None:
        kept["indicator"] = _kept_meta(spec.indicator.metadata) | {"ref": False}
    elif spec.indicatorRef and ("SLI", spec.indicatorRef) in ctx.objects:
        s, o, _, _ = ctx.objects[("SLI", spec.indicatorRef)]
        kept["indicator"] = (
            _kept_meta(o.metadata)
            | {"ref": True}
            | s.model_dump(include={"description"}, exclude_none=True)
        )
    cal = spec.timeWindow[0].calendar
    if cal is not None and cal.startTime is not None:
        start = cal.startTime
        if isinstance(start, datetime):
            start = start.isoformat(sep=" ")
        kept["startTime"] = start if isinstance(start, str) else start.isoformat()
    if tiers:
        kept["alertPolicies"] = tiers
    if targets:
        kept["notificationTargets"] = targets
    return kept


def _indicator(
    spec: SLOSpecO, ann: Annotations, ctx: _Ctx, doc: Document, sl: Loc
) -> tuple[RatioSLI | LatencySLI, Document, Loc]:
    """The SLO's SLI (inline or by reference), the document it is in and where its spec is."""
    if spec.indicator is not None:
        sli_spec, sli_loc = spec.indicator.spec, (*sl, "indicator", "spec")
        sli_ann = Annotations().add(spec.indicator.metadata, doc, (*sl, "indicator", "metadata"))
        sli_doc = doc
    elif spec.indicatorRef:
        s2, o2, sli_doc, l2 = ctx.get("SLI", spec.indicatorRef, doc, (*sl, "indicatorRef"))
        sli_spec, sli_loc = s2, (*l2, "spec")
        sli_ann = Annotations().add(o2.metadata, sli_doc, (*l2, "metadata"))
    else:
        raise doc.error(sl, "an SLO needs indicator (inline) or indicatorRef")
    return _sli(sli_spec, sli_ann.merged(ann), ctx, sli_doc, sli_loc), sli_doc, sli_loc


def _objective_slo(p: _Parts, i: int, objective: ObjectiveO) -> SLOSpec:
    """The Buttress SLO for objective ``i`` of ``p``, validated where the user wrote each field."""
    spec, obj, doc = p.spec, p.obj, p.doc
    ol = (*p.spec_loc, "objectives", i)
    percent = _percent(objective, doc, ol)
    sli = _objective_sli(spec, objective, p.inner, doc, ol)
    name = obj.metadata.name
    if len(spec.objectives) > 1:
        suffix = re.sub(r"[^A-Za-z0-9]+", "-", objective.displayName or str(i)).strip("-")
        name = f"{name}-{suffix or i}"
    data: dict[str, Any] = {
        "name": name,
        "service": spec.service,
        "description": spec.description or "",
        "objective": percent,
        "sli": sli,
        "budgeting": spec.budgetingMethod,
        "window": p.window.model_dump(exclude_none=True),
        "labels": {k: v for k, v in obj.metadata.labels.items() if isinstance(v, str)},
        "alerting": p.alerting,
        "exclusions": p.exclusions or [],
        "display_name": obj.metadata.displayName,
        "openslo": p.kept
        | {
            "objective": objective.model_dump(
                include={"displayName", "op", "value"}, exclude_none=True
            )
        },
    }
    return validate_slo_at(doc, data, _field_locations(p, objective, ol), ol)


def _percent(objective: ObjectiveO, doc: Document, ol: Loc) -> float:
    """The objective in percent, from ``target`` (0-1) or ``targetPercent`` (0-100)."""
    if objective.target is None and objective.targetPercent is None:
        raise doc.error(ol, "an objective needs target (0-1) or targetPercent (0-100)")
    if objective.target is not None and objective.targetPercent is not None:
        raise doc.error(ol, "give target or targetPercent, not both")
    if objective.targetPercent is not None:
        return objective.targetPercent
    assert objective.target is not None
    return float(f"{objective.target * 100:.12g}")


def _objective_sli(
    spec: SLOSpecO, objective: ObjectiveO, inner: RatioSLI | LatencySLI, doc: Document, ol: Loc
) -> dict[str, Any]:
    """The SLI of one objective: ``inner`` itself, or a window SLI over it for the time-slice
    budgeting methods."""
    if spec.budgetingMethod == "Occurrences":
        return inner.model_dump(exclude_none=True)
    if objective.timeSliceWindow is None:
        raise doc.error(ol, f"{spec.budgetingMethod} needs timeSliceWindow")
    if spec.budgetingMethod == "Timeslices" and objective.timeSliceTarget is None:
        raise doc.error(ol, "Timeslices needs timeSliceTarget")
    try:
        slice_s = parse_shorthand(objective.timeSliceWindow)
    except ValueError as e:
        raise doc.error((*ol, "timeSliceWindow"), first_message(e)) from None
    return {
        "kind": "window",
        "slice": slice_s,
        "target": objective.timeSliceTarget if spec.budgetingMethod == "Timeslices" else None,
        "of": inner.model_dump(exclude_none=True),
    }


def _field_locations(p: _Parts, objective: ObjectiveO, ol: Loc) -> dict[str, tuple[Loc, bool]]:
    """Where each field of the translated SLO was written (for :func:`validate_slo_at`)."""
    loc, sl = p.loc, p.spec_loc
    target_key = "targetPercent" if objective.targetPercent is not None else "target"
    ann_loc = (*loc, "metadata", "annotations")
    fields: dict[str, tuple[Loc, bool]] = {
        "name": ((*loc, "metadata", "name"), False),
        "service": ((*sl, "service"), False),
        "description": ((*sl, "description"), False),
        "objective": ((*ol, target_key), False),
        "sli": (p.sli_loc, False),
        "budgeting": ((*sl, "budgetingMethod"), False),
        "window": ((*sl, "timeWindow"), False),
        "labels": ((*loc, "metadata", "labels"), True),
        "alerting": ((*sl, "alertPolicies") if p.spec.alertPolicies else ann_loc, False),
        "exclusions": ((*ann_loc, ANN + "exclusions"), False),
    }
    if p.spec.budgetingMethod != "Occurrences":
        fields["sli"] = (ol, False)
    elif p.sli_doc is not p.doc:  # the SLI is another YAML document: point at the reference
        fields["sli"] = ((*sl, "indicatorRef"), False)
    else:
        for part in ("good", "bad", "total"):
            fields[f"sli.{part}"] = ((*p.sli_loc, "ratioMetric", part), False)
    return fields


def _alerting(tiers: list[TierSpec], ann: Annotations) -> dict[str, Any]:
    data: dict[str, Any] = {}
    no_alerts = ann.get("no-alerts")
    if no_alerts is not None and no_alerts not in ("true", "false"):
        raise ann.error("no-alerts", f"must be 'true' or 'false', got {no_alerts!r}")
    if no_alerts == "true":
        data["tiers"] = []
    elif tiers:
        data["tiers"] = [t.model_dump(exclude_none=True) for t in tiers]
    readers: tuple[tuple[str, str, Callable[[str], Any]], ...] = (
        ("alert-name", "name", ann.get),
        ("min-events", "min_events", ann.count),
        ("alert-labels", "labels", ann.string_map),
        ("alert-annotations", "annotations", ann.string_map),
    )
    for key, field, read in readers:
        value = read(key)
        if value is not None:
            data[field] = value
    absent = ann.get("absent-for")
    if absent is not None:
        data["absent_for"] = None if absent == "off" else ann.duration("absent-for")
    return data
