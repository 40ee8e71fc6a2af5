"""Buttress SLOs -> OpenSLO v1 documents (see :mod:`buttress.slo.openslo` for the mapping)."""

from __future__ import annotations

import json
from typing import Any

from buttress.slo.fields import format_duration
from buttress.slo.sli import LatencySLI, RatioSLI, WindowSLI
from buttress.slo.spec import AlertingSpec, ExclusionSpec, SLOSpec, TierSpec

from .models import ANN, API

__all__ = ["slos_to_openslo"]


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
        out.append(_slo_document(slo))
        for t in slo.alerting.active_tiers:
            out.extend(_tier_documents(slo, t))
    return out


def _annotations(slo: SLOSpec, sli_ann: dict[str, str]) -> dict[str, str]:
    """The SLO's ``buttress.dev/`` annotations: what OpenSLO has no field for."""
    ann: dict[str, str] = dict(sli_ann)
    a = slo.alerting
    defaults = AlertingSpec()
    if a.name:
        ann[ANN + "alert-name"] = a.name
    if a.min_events != defaults.min_events:
        ann[ANN + "min-events"] = str(a.min_events)
    if a.absent_for != defaults.absent_for:
        ann[ANN + "absent-for"] = "off" if a.absent_for is None else format_duration(a.absent_for)
    if a.labels:
        ann[ANN + "alert-labels"] = json.dumps(a.labels, sort_keys=True)
    if a.annotations:
        ann[ANN + "alert-annotations"] = json.dumps(a.annotations, sort_keys=True)
    if slo.exclusions:
        ann[ANN + "exclusions"] = json.dumps(
            [_exclusion(e) for e in slo.exclusions], sort_keys=True
        )
    if not a.active_tiers:
        ann[ANN + "no-alerts"] = "true"
    return ann


def _time_window(slo: SLOSpec) -> dict[str, Any]:
    if slo.window.rolling is not None:
        return {"duration": format_duration(slo.window.rolling), "isRolling": True}
    dur = {"week": "1w", "month": "1M", "quarter": "1Q"}[slo.window.calendar or "month"]
    return {
        "duration": dur,
        "calendar": {"startTime": "2020-01-01 00:00:00", "timeZone": slo.window.timezone},
        "isRolling": False,
    }


def _slo_document(slo: SLOSpec) -> dict[str, Any]:
    """The ``kind: SLO`` document of ``slo`` (its SLI inline)."""
    sli_spec, sli_ann = _indicator(slo)
    ann = _annotations(slo, sli_ann)
    tiers = slo.alerting.active_tiers
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
            "timeWindow": [_time_window(slo)],
            "budgetingMethod": slo.method,
            "objectives": [objective],
        }
    )
    if tiers:
        spec["alertPolicies"] = [{"alertPolicyRef": f"{slo.name}-{t.name}"} for t in tiers]
    return {"apiVersion": API, "kind": "SLO", "metadata": meta, "spec": spec}


def _tier_documents(slo: SLOSpec, t: TierSpec) -> list[dict[str, Any]]:
    """The ``AlertPolicy`` and ``AlertCondition`` documents of one alert tier of ``slo``."""
    cond_ann = {ANN + "tier": t.name, ANN + "short-window": format_duration(t.short_window)}
    if t.min_events is not None:
        cond_ann[ANN + "min-events"] = str(t.min_events)
    if t.labels:
        cond_ann[ANN + "labels"] = json.dumps(t.labels, sort_keys=True)
    if t.annotations:
        cond_ann[ANN + "annotations"] = json.dumps(t.annotations, sort_keys=True)
    policy = {
        "apiVersion": API,
        "kind": "AlertPolicy",
        "metadata": {"name": f"{slo.name}-{t.name}"},
        "spec": {
            "alertWhenBreaching": True,
            "alertWhenResolved": False,
            "alertWhenNoData": slo.alerting.absent_for is not None,
            "conditions": [{"conditionRef": f"{slo.name}-{t.name}-condition"}],
            "notificationTargets": [],
        },
    }
    condition = {
        "apiVersion": API,
        "kind": "AlertCondition",
        "metadata": {"name": f"{slo.name}-{t.name}-condition", "annotations": cond_ann},
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
    return [policy, condition]


def _exclusion(e: ExclusionSpec) -> dict[str, str]:
    return {"start": e.start.isoformat(), "end": e.end.isoformat(), "reason": e.reason}
