"""Prometheus recording and alerting rules for SLOs.

One rule group per SLO, evaluated in order (recording rules first, so the alerts of an evaluation
see the ratios of that same evaluation).  For an Occurrences SLO with windows ``W`` (5m, every tier
window and the period ``P``):

===========================================  =====================================================
``slo:sli_error:ratio_rate<W>``              ``bad[W] / total[W]`` (or ``1 - good[W] / total[W]``)
``slo:sli_total:rate<W>``                    ``total[W]`` (events per second; the low-traffic guard)
``slo:burn_rate:ratio_rate<W>``              ``slo:sli_error:ratio_rate<W> / b``
``slo:error_budget:remaining``               ``1 - slo:sli_error:ratio_rate<P> / b`` (slices: below)
``slo:objective:ratio``                      the target, for dashboards
===========================================  =====================================================

The period ratio is ``bad[P] / total[P]`` computed from the counters over the whole period, not an
average of short ratios.  Window-based SLIs record each evaluation's slice indicator
(``slo:sli_slice:good``) and average it over each window; their budget follows OpenSLO's
Timeslices semantics, ``1 - bad slices / (b x slices in the period)``, where slices without events
count as neither good nor bad (the same figure as the embedded evaluator).

Alerts: one rule per tier, named after the SLO (``alerting.name``), labelled ``severity``, ``slo``,
``burn_tier`` (and ``service``) for Alertmanager routing and inhibition:
``ratio_rate<long> > BR x b and ratio_rate<short> > BR x b [and total_rate<long> x long >=
min_events]``, silenced during maintenance windows; plus ``<Name>SLIAbsent`` when the SLI has no
data.
"""

from __future__ import annotations

from typing import Any

import yaml

from . import math as slomath
from .spec import RatioSLI, SLOSpec, WindowSLI, format_duration

__all__ = [
    "compound_duration",
    "group_name",
    "rule_labels",
    "rules_document",
    "rules_for",
    "slo_windows",
    "to_yaml",
]


def compound_duration(seconds: float) -> str:
    """``3570`` -> ``59m30s``: a PromQL duration with several units."""
    ms = round(seconds * 1000)
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out or "0s"


def _lit(x: float) -> str:
    """A float literal that Go parses back to the same double."""
    return repr(float(x))


def group_name(slo: SLOSpec) -> str:
    return f"buttress-slo-{slo.service}-{slo.name}"


def rule_labels(slo: SLOSpec) -> dict[str, str]:
    """Labels on every recorded series of ``slo``: its own labels, then ``service`` and ``slo``."""
    return {**slo.labels, "service": slo.service or "", "slo": slo.name}


def slo_windows(slo: SLOSpec) -> list[float]:
    """Every window the rules compute: 5m, the tiers' windows and the period (sorted, unique)."""
    ws = {300.0, slo.period}
    for t in slo.alerting.active_tiers:
        ws.add(t.long_window)
        ws.add(t.short_window)
    return sorted(ws)


def _selector(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _w(query: str, window: float) -> str:
    return query.replace("{{.window}}", format_duration(window))


def rules_for(slo: SLOSpec, *, evaluation_interval: float = 60.0) -> dict[str, Any]:
    """The rule group of one SLO (``slo.service`` must be set)."""
    labels = rule_labels(slo)
    sel = _selector(labels)
    b = slo.budget_ratio
    rules: list[dict[str, Any]] = []
    windows = slo_windows(slo)
    sli = slo.sli
    has_total = False

    if isinstance(sli, WindowSLI):
        bad_q, good_q, total_q = sli.queries()
        assert total_q is not None
        s = sli.slice
        ratio = (
            f"(({_w(good_q, s)}) / ({_w(total_q, s)}))"
            if good_q
            else f"(1 - ({_w(bad_q or '', s)}) / ({_w(total_q, s)}))"
        )
        indicator = (
            f"({ratio} >= bool {_lit(sli.target or 0.0)})" if slo.method == "Timeslices" else ratio
        )
        # Keep only slices with events (a slice without events is neither good nor bad).
        rules.append(
            {
                "record": "slo:sli_slice:good",
                "expr": f"{indicator} and ({_w(total_q, s)} > 0)",
                "labels": labels,
            }
        )
        half = evaluation_interval / 2
        for w in windows:
            rng = compound_duration(w - half)
            rules.append(
                {
                    "record": f"slo:sli_error:ratio_rate{format_duration(w)}",
                    "expr": f"1 - avg_over_time(slo:sli_slice:good{sel}[{rng}])",
                    "labels": labels,
                }
            )
            rules.append(
                {
                    "record": f"slo:sli_total:rate{format_duration(w)}",
                    "expr": f"count_over_time(slo:sli_slice:good{sel}[{rng}]) / {_lit(w)}",
                    "labels": labels,
                }
            )
        has_total = True
    else:
        assert isinstance(sli, RatioSLI) or sli.kind == "latency"
        if isinstance(sli, RatioSLI) and sli.error_ratio is not None:
            for w in windows:
                rules.append(
                    {
                        "record": f"slo:sli_error:ratio_rate{format_duration(w)}",
                        "expr": _w(sli.error_ratio, w),
                        "labels": labels,
                    }
                )
        else:
            bad_q, good_q, total_q = sli.queries()
            assert total_q is not None
            for w in windows:
                tq = _w(total_q, w)
                expr = (
                    f"({_w(bad_q, w)}) / ({tq})"
                    if bad_q
                    else f"1 - (({_w(good_q or '', w)}) / ({tq}))"
                )
                rules.append(
                    {
                        "record": f"slo:sli_error:ratio_rate{format_duration(w)}",
                        "expr": expr,
                        "labels": labels,
                    }
                )
                rules.append(
                    {
                        "record": f"slo:sli_total:rate{format_duration(w)}",
                        "expr": tq,
                        "labels": labels,
                    }
                )
            has_total = True

    for w in windows:
        fw = format_duration(w)
        rules.append(
            {
                "record": f"slo:burn_rate:ratio_rate{fw}",
                "expr": f"slo:sli_error:ratio_rate{fw}{sel} / {_lit(b)}",
                "labels": labels,
            }
        )
    fp = format_duration(slo.period)
    period_ratio = f"slo:sli_error:ratio_rate{fp}{sel}"
    if isinstance(sli, WindowSLI):
        # OpenSLO's Timeslices: the budget is b x (every slice in the period), so a slice without
        # events neither spends budget nor shrinks it.  Bad slices = (1 - avg) x count of the
        # evaluations (each covers interval/slice of a slice); slices = P / slice:
        # consumed = ratio[P] x (count[P] / P) x interval / b.
        budget = (
            f"1 - ({period_ratio} * slo:sli_total:rate{fp}{sel})"
            f" * {_lit(evaluation_interval)} / {_lit(b)}"
        )
    elif has_total:
        # No events in the period (0/0) means nothing consumed, as in the evaluator.
        budget = f"1 - (({period_ratio} >= 0) or (slo:sli_total:rate{fp}{sel} * 0)) / {_lit(b)}"
    else:
        budget = f"1 - {period_ratio} / {_lit(b)}"
    rules.append({"record": "slo:error_budget:remaining", "expr": budget, "labels": labels})
    rules.append(
        {"record": "slo:objective:ratio", "expr": f"vector({_lit(slo.target)})", "labels": labels}
    )

    maintenance = "".join(
        f" unless on() (vector(time()) >= {int(e.start.timestamp())} < {int(e.end.timestamp())})"
        for e in slo.exclusions
    )
    base_alert_labels = {**labels, **slo.alerting.labels}
    for tier, spec_tier in zip(slo.tiers(), slo.alerting.active_tiers, strict=True):
        limit = _lit(slomath.error_ratio_threshold(tier.threshold, b))
        lw, sw = format_duration(tier.long_window), format_duration(tier.short_window)
        expr = (
            f"(slo:sli_error:ratio_rate{lw}{sel} > {limit})"
            f" and (slo:sli_error:ratio_rate{sw}{sel} > {limit})"
        )
        if tier.min_events > 0 and has_total:
            expr += (
                f" and (slo:sli_total:rate{lw}{sel} * {_lit(tier.long_window)}"
                f" >= {tier.min_events})"
            )
        expr += maintenance
        annotations = {
            "summary": f"SLO {slo.name} ({slo.service}) burns its error budget "
            f"{tier.threshold:.4g}x "
            f"over {lw} and {sw}",
            "description": f"At this rate {format_duration(tier.long_window)} spends "
            f"{tier.threshold * tier.long_window / slo.period:.2%} of the {slo.window.describe()} "
            f"budget (objective {slo.objective:g}%).",
            **slo.alerting.annotations,
            **spec_tier.annotations,
        }
        rules.append(
            {
                "alert": slo.alert_name,
                "expr": expr,
                "labels": {
                    **base_alert_labels,
                    "severity": tier.severity,
                    "burn_tier": tier.name,
                    **spec_tier.labels,
                },
                "annotations": annotations,
            }
        )
    if slo.alerting.absent_for is not None:
        probe = "slo:sli_total:rate5m" if has_total else "slo:sli_error:ratio_rate5m"
        rules.append(
            {
                "alert": slo.alert_name.removesuffix("BurnRate") + "SLIAbsent",
                "expr": f"absent({probe}{sel}){maintenance}",
                "for": format_duration(slo.alerting.absent_for),
                "labels": {**base_alert_labels, "severity": "ticket", "burn_tier": "absent"},
                "annotations": {
                    "summary": f"SLO {slo.name} ({slo.service}) has no SLI data",
                    **slo.alerting.annotations,
                },
            }
        )
    return {"name": group_name(slo), "rules": rules}


def rules_document(slos: list[SLOSpec], *, evaluation_interval: float = 60.0) -> dict[str, Any]:
    """A Prometheus rule file with one group per SLO that has Prometheus queries."""
    return {
        "groups": [
            rules_for(s, evaluation_interval=evaluation_interval)
            for s in slos
            if s.sli.has_prometheus
        ]
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(data: Any) -> str:
    """YAML text of generated documents (keys in insertion order, block style)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=200)
