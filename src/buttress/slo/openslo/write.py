"""Buttress SLOs -> OpenSLO v1 documents (see :mod:`buttress.slo.openslo` for the mapping)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from buttress.slo.fields import format_duration
from buttress.slo.sli import LatencySLI, RatioSLI, WindowSLI
from buttress.slo.spec import AlertingSpec, ExclusionSpec, SLOSpec, TierSpec

from .models import ANN, API

__all__ = ["slos_to_openslo"]


def _source_name(slo: SLOSpec) -> str:
    """The DataSource the SLO's queries come from: the Prometheus one it was read with, if any."""
    for name, source in slo.openslo.get("dataSources", {}).items():
        if str(source.get("type", "")).lower() == "prometheus":
            return str(name)
    return "prometheus"


def _metric(query: str, source: str = "prometheus") -> dict[str, Any]:
    return {
        "metricSource": {"metricSourceRef": source, "type": "Prometheus", "spec": {"query": query}}
    }


def _meta(kept: dict[str, Any], default: str) -> dict[str, Any]:
    """``metadata`` with the name (and display name) an object was read with, else ``default``."""
    meta: dict[str, Any] = {"name": kept.get("name", default)}
    if kept.get("displayName"):
        meta["displayName"] = kept["displayName"]
    return meta


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
    src = _source_name(slo)
    if isinstance(sli, RatioSLI) and sli.error_ratio is not None:
        spec["ratioMetric"] = {"rawType": "failure", "raw": _metric(sli.error_ratio, src)}
    else:
        bad, good, total = (
            sli.queries()
            if (not isinstance(sli, RatioSLI) or sli.good or sli.bad or sli.total)
            else (None, None, None)
        )
        if total is not None:
            rm: dict[str, Any] = {"counter": True}
            if good is not None:
                rm["good"] = _metric(good, src)
            else:
                rm["bad"] = _metric(bad or "", src)
            rm["total"] = _metric(total, src)
            spec["ratioMetric"] = rm
    return spec, ann


def slos_to_openslo(slos: list[SLOSpec]) -> list[dict[str, Any]]:
    """OpenSLO v1 documents (Service, DataSource, SLO, SLI, AlertPolicy, AlertCondition,
    AlertNotificationTarget) for ``slos``; what was read from OpenSLO and Buttress does not use
    (``SLOSpec.openslo``) is written back."""
    out: list[dict[str, Any]] = []
    services: dict[str, dict[str, Any]] = {}
    sources: dict[str, dict[str, Any]] = {}
    for slo in sorted(slos, key=lambda s: s.service or ""):
        kept = slo.openslo.get("service", {})
        services.setdefault(slo.service or "", kept)
        for name, source in slo.openslo.get("dataSources", {}).items():
            sources.setdefault(name, source)
    for svc, kept in services.items():
        spec = {k: v for k, v in kept.items() if k not in ("name", "displayName")}
        out.append(
            {"apiVersion": API, "kind": "Service", "metadata": _meta(kept, svc), "spec": spec}
        )
    if any(s.sli.has_prometheus for s in slos) and not any(
        str(s.get("type", "")).lower() == "prometheus" for s in sources.values()
    ):
        sources["prometheus"] = {"type": "Prometheus", "connectionDetails": {}}
    for name, source in sources.items():
        spec = {k: v for k, v in source.items() if k not in ("name", "displayName")}
        spec.setdefault("connectionDetails", {})
        out.append(
            {"apiVersion": API, "kind": "DataSource", "metadata": _meta(source, name), "spec": spec}
        )
    for slo in slos:
        out.extend(_slo_documents(slo))
        for t in slo.alerting.active_tiers:
            out.extend(_tier_documents(slo, t))
        for name, target in slo.openslo.get("notificationTargets", {}).items():
            out.append(
                {
                    "apiVersion": API,
                    "kind": "AlertNotificationTarget",
                    "metadata": _meta(target, name),
                    "spec": target.get("spec", {}),
                }
            )
    # Objects several SLOs share (a policy, a target, an SLI) are written once.
    seen: set[tuple[str, str]] = set()
    unique = []
    for d in out:
        key = (d["kind"], d["metadata"]["name"])
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


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


def _start_time(slo: SLOSpec) -> datetime | str:
    """The calendar's start as read (a datetime when it was one, so YAML writes it unquoted, as
    OpenSLO's docs do)."""
    text = str(slo.openslo.get("startTime", "2020-01-01 00:00:00"))
    try:
        return datetime.fromisoformat(text) if len(text) > 10 else text
    except ValueError:
        return text


def _time_window(slo: SLOSpec) -> dict[str, Any]:
    if slo.window.rolling is not None:
        return {"duration": format_duration(slo.window.rolling), "isRolling": True}
    dur = {"week": "1w", "month": "1M", "quarter": "1Q"}[slo.window.calendar or "month"]
    return {
        "duration": dur,
        "calendar": {"startTime": _start_time(slo), "timeZone": slo.window.timezone},
        "isRolling": False,
    }


def _slo_documents(slo: SLOSpec) -> list[dict[str, Any]]:
    """The ``kind: SLO`` document of ``slo`` (its SLI inline, or a ``kind: SLI`` document before
    it when it was read by reference)."""
    sli_spec, sli_ann = _indicator(slo)
    ann = _annotations(slo, sli_ann)
    tiers = slo.alerting.active_tiers
    kept_obj = slo.openslo.get("objective", {})
    objective: dict[str, Any] = {"displayName": kept_obj.get("displayName", slo.name)}
    for key in ("op", "value"):
        if key in kept_obj:
            objective[key] = kept_obj[key]
    objective["targetPercent"] = slo.objective
    if isinstance(slo.sli, WindowSLI):
        objective["timeSliceWindow"] = format_duration(slo.sli.slice)
        if slo.sli.target is not None:
            objective["timeSliceTarget"] = slo.sli.target
    meta: dict[str, Any] = {"name": slo.name}
    if slo.display_name:
        meta["displayName"] = slo.display_name
    if slo.labels:
        meta["labels"] = dict(slo.labels)
    if ann:
        meta["annotations"] = ann
    spec: dict[str, Any] = {}
    if slo.description:
        spec["description"] = slo.description
    kept_sli = slo.openslo.get("indicator", {})
    sli_meta = _meta(kept_sli, f"{slo.name}-sli")
    out: list[dict[str, Any]] = []
    spec["service"] = slo.service
    if kept_sli.get("ref"):
        if kept_sli.get("description"):
            sli_spec = {"description": kept_sli["description"], **sli_spec}
        out.append({"apiVersion": API, "kind": "SLI", "metadata": sli_meta, "spec": sli_spec})
        spec["indicatorRef"] = sli_meta["name"]
    else:
        spec["indicator"] = {"metadata": sli_meta, "spec": sli_spec}
    spec.update(
        {
            "timeWindow": [_time_window(slo)],
            "budgetingMethod": slo.method,
            "objectives": [objective],
        }
    )
    if tiers:
        spec["alertPolicies"] = [{"alertPolicyRef": _policy_name(slo, t)} for t in tiers]
    out.append({"apiVersion": API, "kind": "SLO", "metadata": meta, "spec": spec})
    return out


def _kept_tier(slo: SLOSpec, t: TierSpec, part: str) -> dict[str, Any]:
    kept: dict[str, Any] = slo.openslo.get("alertPolicies", {}).get(t.name, {}).get(part, {})
    return kept


def _policy_name(slo: SLOSpec, t: TierSpec) -> str:
    return str(_kept_tier(slo, t, "policy").get("name", f"{slo.name}-{t.name}"))


def _tier_documents(slo: SLOSpec, t: TierSpec) -> list[dict[str, Any]]:
    """The ``AlertPolicy`` and ``AlertCondition`` documents of one alert tier of ``slo``."""
    cond_ann = {ANN + "tier": t.name, ANN + "short-window": format_duration(t.short_window)}
    if t.min_events is not None:
        cond_ann[ANN + "min-events"] = str(t.min_events)
    if t.labels:
        cond_ann[ANN + "labels"] = json.dumps(t.labels, sort_keys=True)
    if t.annotations:
        cond_ann[ANN + "annotations"] = json.dumps(t.annotations, sort_keys=True)
    kept_policy = _kept_tier(slo, t, "policy")
    kept_cond = _kept_tier(slo, t, "condition")
    cond_meta = _meta(kept_cond, f"{slo.name}-{t.name}-condition")
    policy_spec: dict[str, Any] = {}
    if kept_policy.get("description"):
        policy_spec["description"] = kept_policy["description"]
    policy_spec.update(
        {
            "alertWhenBreaching": kept_policy.get("alertWhenBreaching", True),
            "alertWhenResolved": kept_policy.get("alertWhenResolved", False),
            "alertWhenNoData": kept_policy.get(
                "alertWhenNoData", not kept_policy and slo.alerting.absent_for is not None
            ),
            "conditions": [{"conditionRef": cond_meta["name"]}],
            "notificationTargets": kept_policy.get("notificationTargets", []),
        }
    )
    policy = {
        "apiVersion": API,
        "kind": "AlertPolicy",
        "metadata": _meta(kept_policy, _policy_name(slo, t)),
        "spec": policy_spec,
    }
    cond_spec: dict[str, Any] = {}
    if kept_cond.get("description"):
        cond_spec["description"] = kept_cond["description"]
    cond_spec["severity"] = t.severity
    condition_body: dict[str, Any] = {"kind": "burnrate"}
    if t.op is not None or not kept_cond:  # as read: OpenSLO's docs often leave op out
        condition_body["op"] = t.op or "gt"
    condition_body.update(
        {
            "threshold": t.threshold(slo.period),
            "lookbackWindow": format_duration(t.long_window),
            "alertAfter": format_duration(t.alert_after) if t.alert_after else "0m",
        }
    )
    cond_spec["condition"] = condition_body
    condition = {
        "apiVersion": API,
        "kind": "AlertCondition",
        "metadata": {**cond_meta, "annotations": cond_ann},
        "spec": cond_spec,
    }
    return [policy, condition]


def _exclusion(e: ExclusionSpec) -> dict[str, str]:
    return {"start": e.start.isoformat(), "end": e.end.isoformat(), "reason": e.reason}
