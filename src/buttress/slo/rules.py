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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from buttress.version import __version__

from . import math as slomath
from .spec import RatioSLI, SLOSpec, WindowSLI, format_duration

__all__ = [
    "BUTTRESS",
    "NAMINGS",
    "SLOTH",
    "Naming",
    "absent_alert_name",
    "absent_labels",
    "compound_duration",
    "prom_duration",
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


def prom_duration(seconds: float) -> str:
    """A duration as Prometheus (and sloth) print it: weeks and years only when exact, then
    ``d h m s ms`` (``7d`` -> ``1w``, ``30d`` -> ``30d``, ``90m`` -> ``1h30m``)."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    out = ""
    for unit, size, exact in (
        ("y", 365 * 86_400_000, True),
        ("w", 7 * 86_400_000, True),
        ("d", 86_400_000, False),
        ("h", 3_600_000, False),
        ("m", 60_000, False),
        ("s", 1000, False),
        ("ms", 1, False),
    ):
        if exact and ms % size:
            continue
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


NAMINGS = ("buttress", "sloth")


@dataclass(frozen=True, slots=True)
class Naming:
    """Recorded series' names and labels: Buttress's (``slo``/``service`` labels) or sloth's
    (``sloth_id``/``sloth_service``/``sloth_slo`` labels, ``sloth_window`` on each window's
    series, sloth's metadata series), so that the Grafana dashboards made for sloth read the
    rules.  The figures are Buttress's either way (see docs/slo.md, "Buttress and sloth")."""

    style: str = "buttress"

    def __post_init__(self) -> None:
        if self.style not in NAMINGS:
            raise ValueError(f"unknown naming {self.style!r} (use {' or '.join(NAMINGS)})")

    @property
    def sloth(self) -> bool:
        return self.style == "sloth"

    def labels(self, slo: SLOSpec) -> dict[str, str]:
        """Labels on every recorded series of ``slo``."""
        if not self.sloth:
            return rule_labels(slo)
        service = slo.service or ""
        return {
            **slo.labels,
            "sloth_id": f"{service}-{slo.name}",
            "sloth_service": service,
            "sloth_slo": slo.name,
        }

    def window(self, seconds: float) -> str:
        """A window as it appears in series names (``ratio_rate30d``) and ``sloth_window``."""
        return prom_duration(seconds) if self.sloth else format_duration(seconds)

    def window_labels(self, seconds: float) -> dict[str, str]:
        return {"sloth_window": self.window(seconds)} if self.sloth else {}

    @property
    def budget_remaining(self) -> str:
        return (
            "slo:period_error_budget_remaining:ratio"
            if self.sloth
            else ("slo:error_budget:remaining")
        )

    @property
    def join(self) -> str:
        """``and`` between series of different windows (sloth's differ by ``sloth_window``)."""
        return " and ignoring(sloth_window) " if self.sloth else " and "

    def alert_labels(self, severity: str, long_window: float) -> dict[str, str]:
        """Labels an alert of ``severity`` gets beyond the recorded ones: sloth's severity, and
        (from its expression) the long window's ``sloth_window``."""
        if not self.sloth:
            return {}
        return {"sloth_window": self.window(long_window), "sloth_severity": severity}


BUTTRESS = Naming()
SLOTH = Naming("sloth")


def _selector(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}"


def escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _w(query: str, window: float) -> str:
    return query.replace("{{.window}}", format_duration(window))


def rules_for(
    slo: SLOSpec, *, evaluation_interval: float = 60.0, naming: Naming = BUTTRESS
) -> dict[str, Any]:
    """The rule group of one SLO (``slo.service`` must be set), its series named by ``naming``."""
    labels = naming.labels(slo)
    sel = _selector(labels)
    b = slo.budget_ratio
    rules: list[dict[str, Any]] = []
    windows = slo_windows(slo)
    sli = slo.sli
    has_total = False

    def record(
        name: str, expr: str, window: float | None = None, extra: dict[str, str] | None = None
    ) -> None:
        more = naming.window_labels(window) if window is not None else {}
        rules.append({"record": name, "expr": expr, "labels": {**labels, **more, **(extra or {})}})

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
        record("slo:sli_slice:good", f"{indicator} and ({_w(total_q, s)} > 0)")
        half = evaluation_interval / 2
        for w in windows:
            rng = compound_duration(w - half)
            fw = naming.window(w)
            record(
                f"slo:sli_error:ratio_rate{fw}",
                f"1 - avg_over_time(slo:sli_slice:good{sel}[{rng}])",
                w,
            )
            record(
                f"slo:sli_total:rate{fw}",
                f"count_over_time(slo:sli_slice:good{sel}[{rng}]) / {_lit(w)}",
                w,
            )
        has_total = True
    elif isinstance(sli, RatioSLI) and sli.error_ratio is not None:
        for w in windows:
            record(f"slo:sli_error:ratio_rate{naming.window(w)}", _w(sli.error_ratio, w), w)
    else:
        bad_q, good_q, total_q = sli.queries()
        assert total_q is not None
        for w in windows:
            tq = _w(total_q, w)
            expr = (
                f"({_w(bad_q, w)}) / ({tq})" if bad_q else f"1 - (({_w(good_q or '', w)}) / ({tq}))"
            )
            record(f"slo:sli_error:ratio_rate{naming.window(w)}", expr, w)
            record(f"slo:sli_total:rate{naming.window(w)}", tq, w)
        has_total = True

    for w in windows:
        fw = naming.window(w)
        record(f"slo:burn_rate:ratio_rate{fw}", f"slo:sli_error:ratio_rate{fw}{sel} / {_lit(b)}", w)
    fp = naming.window(slo.period)
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
    record(naming.budget_remaining, budget)
    record("slo:objective:ratio", f"vector({_lit(slo.target)})")
    if naming.sloth:
        _sloth_metadata(slo, sel, record)

    maintenance = "".join(
        f" unless on() (vector(time()) >= {int(e.start.timestamp())} < {int(e.end.timestamp())})"
        for e in slo.exclusions
    )
    base_alert_labels = {**labels, **slo.alerting.labels}
    for tier, spec_tier in zip(slo.tiers(), slo.alerting.active_tiers, strict=True):
        limit = _lit(slomath.error_ratio_threshold(tier.threshold, b))
        lw, sw = naming.window(tier.long_window), naming.window(tier.short_window)
        expr = (
            f"(slo:sli_error:ratio_rate{lw}{sel} > {limit})"
            f"{naming.join}(slo:sli_error:ratio_rate{sw}{sel} > {limit})"
        )
        if tier.min_events > 0 and has_total:
            expr += (
                f"{naming.join}(slo:sli_total:rate{lw}{sel} * {_lit(tier.long_window)}"
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
        rule: dict[str, Any] = {"alert": slo.alert_name, "expr": expr}
        if spec_tier.alert_after:
            rule["for"] = format_duration(spec_tier.alert_after)
        rule["labels"] = {
            **base_alert_labels,
            "severity": tier.severity,
            "burn_tier": tier.name,
            **({"sloth_severity": tier.severity} if naming.sloth else {}),
            **spec_tier.labels,
        }
        rule["annotations"] = annotations
        rules.append(rule)
    if slo.alerting.absent_for is not None:
        probe = "slo:sli_total:rate5m" if has_total else "slo:sli_error:ratio_rate5m"
        rules.append(
            {
                "alert": absent_alert_name(slo),
                "expr": f"absent({probe}{sel}){maintenance}",
                "for": format_duration(slo.alerting.absent_for),
                "labels": {**base_alert_labels, **absent_labels(naming)},
                "annotations": {
                    "summary": f"SLO {slo.name} ({slo.service}) has no SLI data",
                    **slo.alerting.annotations,
                },
            }
        )
    return {"name": group_name(slo), "rules": rules}


def absent_alert_name(slo: SLOSpec) -> str:
    return slo.alert_name.removesuffix("BurnRate") + "SLIAbsent"


def absent_labels(naming: Naming) -> dict[str, str]:
    """The labels the absent-data alert adds to the recorded ones."""
    extra = {"sloth_severity": "ticket"} if naming.sloth else {}
    return {"severity": "ticket", "burn_tier": "absent", **extra}


def _sloth_metadata(slo: SLOSpec, sel: str, record: Callable[..., None]) -> None:
    """sloth's metadata series (its dashboards read them), from Buttress's figures: the period's
    burn rate is the budget consumed (``1 - remaining``), which for Occurrences is sloth's
    ``ratio_rate<P> / b`` with the period ratio weighted by traffic."""
    record("slo:error_budget:ratio", f"vector({_lit(slo.budget_ratio)})")
    record("slo:time_period:days", f"vector({_lit(slo.period / 86400)})")
    record(
        "slo:current_burn_rate:ratio", f"slo:sli_error:ratio_rate5m{sel} / {_lit(slo.budget_ratio)}"
    )
    record("slo:period_burn_rate:ratio", f"1 - {SLOTH.budget_remaining}{sel}")
    objective = repr(slo.objective).removesuffix(".0")
    info = {
        "sloth_version": f"buttress-{__version__}",
        "sloth_mode": "cli-gen-prom",
        "sloth_spec": "prometheus/v1",
        "sloth_objective": objective,
    }
    record("sloth_slo_info", "vector(1)", None, info)


def rules_document(
    slos: list[SLOSpec], *, evaluation_interval: float = 60.0, naming: Naming = BUTTRESS
) -> dict[str, Any]:
    """A Prometheus rule file with one group per SLO that has Prometheus queries."""
    return {
        "groups": [
            rules_for(s, evaluation_interval=evaluation_interval, naming=naming)
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
