"""promtool unit tests for the generated rules: each SLO's alerts checked against the math module.

For every SLO whose rules read Prometheus counters, :func:`tests_for` builds synthetic counters that
its queries select (label values are derived from the queries' matchers, regexes included) and four
scenarios, scraped every minute:

``outage``      healthy traffic, then an error ratio above the first tier's threshold: the page must
                fire exactly at the minute :func:`buttress.slo.math.alert_timeline` predicts (and
                not a minute earlier); burn rate and budget remaining are checked too.
``slow burn``   a constant burn between the ticket and the page thresholds: tickets fire, pages
                never.
``healthy``     a burn well below every threshold: nothing fires.
``no data``     no series at all: the absent-data alert fires after ``absent_for``.

Every expectation is computed from the per-minute counts with the math module, so ``promtool test
rules`` checks that Prometheus, evaluating the generated rules, agrees with it.
"""

from __future__ import annotations

import math
from typing import Any

from . import math as slomath
from .promscenarios import Scenario, scenarios_for, timeline_units
from .promseries import Synthesis, UnsupportedQuery, cumulative, expanding, series_for
from .rules import (
    BUTTRESS,
    Naming,
    absent_alert_name,
    absent_labels,
    escape_label,
    group_name,
    slo_windows,
)
from .spec import SLOSpec, WindowSLI

__all__ = [
    "Scenario",
    "scenario_test",
    "Synthesis",
    "UnsupportedQuery",
    "expanding",
    "series_for",
    "test_file",
    "tests_for",
    "timeline_units",
]


def _alert_labels(slo: SLOSpec, tier_name: str, naming: Naming) -> dict[str, str]:
    spec_tier = next(t for t in slo.alerting.active_tiers if t.name == tier_name)
    math_tier = next(t for t in slo.tiers() if t.name == tier_name)
    return {
        **naming.labels(slo),
        **naming.alert_labels(math_tier.severity, math_tier.long_window),
        **slo.alerting.labels,
        "severity": math_tier.severity,
        "burn_tier": tier_name,
        **spec_tier.labels,
    }


def _pending(slo: SLOSpec, timeline: list[frozenset[str]]) -> list[frozenset[str]]:
    """``timeline`` with each tier's ``alert_after`` (the rule's ``for:``) applied: a tier fires
    at minute ``k`` when its condition held at every evaluation from ``k - for`` to ``k``."""
    delays = {t.name: round((t.alert_after or 0) / 60) for t in slo.alerting.active_tiers}
    if not any(delays.values()):
        return timeline
    out = []
    for k in range(len(timeline)):
        out.append(
            frozenset(
                name
                for name in timeline[k]
                if k >= delays[name]
                and all(name in timeline[j] for j in range(k - delays[name], k + 1))
            )
        )
    return out


def _annotations(slo: SLOSpec, rules: dict[str, Any], tier_name: str) -> dict[str, str]:
    for r in rules["rules"]:
        if r.get("alert") == slo.alert_name and r["labels"].get("burn_tier") == tier_name:
            return dict(r["annotations"])
    raise KeyError(tier_name)


def scenario_test(
    slo: SLOSpec,
    rules: dict[str, Any],
    sc: Scenario,
    synth: Synthesis | None = None,
    naming: Naming = BUTTRESS,
) -> dict[str, Any]:
    """One promtool test: ``sc``'s events as counters, the firing tiers the math module predicts at
    each check, and (if ``sc.values``) every burn rate and the budget remaining at the last
    check."""
    synth = synth or series_for(slo)
    b = slo.budget_ratio
    tiers = slo.tiers()
    sel = ",".join(f'{k}="{escape_label(v)}"' for k, v in sorted(naming.labels(slo).items()))
    good = [t - x for x, t in zip(sc.bad, sc.total, strict=True)]
    num = sc.bad if synth.numerator == "bad" else good
    rest = [t - x for x, t in zip(num, sc.total, strict=True)]
    series = []
    for text, role in synth.series:
        per_min = {"num": num, "rest": rest, "total": sc.total, "good": good}[role]
        series.append({"series": text, "values": expanding(cumulative(per_min))})
    ub, ut = timeline_units(slo, sc.bad, sc.total)
    tl = _pending(slo, slomath.alert_timeline(ub, ut, b, tiers))
    alert_tests = []
    for k in sc.checks:
        alert_tests.append(
            {
                "eval_time": f"{k}m",
                "alertname": slo.alert_name,
                "exp_alerts": [
                    {
                        "exp_labels": _alert_labels(slo, name, naming),
                        "exp_annotations": _annotations(slo, rules, name),
                    }
                    for name in sorted(tl[k])
                ],
            }
        )
    test: dict[str, Any] = {
        "name": f"{slo.name}: {sc.name}",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": alert_tests,
    }
    if sc.values:
        k = sc.checks[-1]
        exprs = []
        for w in slo_windows(slo):
            if w == slo.period:
                continue
            m = max(1, round(w / 60))
            tb, tt = sum(ub[max(0, k - m) : k]), sum(ut[max(0, k - m) : k])
            if tt > 0:
                exprs.append(
                    (f"slo:burn_rate:ratio_rate{naming.window(w)}", slomath.burn_rate(tb / tt, b))
                )
        pb, pt = sum(ub[:k]), sum(ut[:k])
        if not isinstance(slo.sli, WindowSLI):
            exprs.append((naming.budget_remaining, slomath.budget_remaining(pb, pt, b)))
        elif pt > 0:
            # Timeslices: b x every slice of the period (see rules.py), as in the evaluator.
            slices = slo.period / slo.sli.slice
            exprs.append((naming.budget_remaining, 1.0 - pb / (b * slices)))
        # sloth's series also carry sloth_window; the check compares the value alone.
        one = "sum without(sloth_window) " if naming.sloth else ""
        test["promql_expr_test"] = [
            {
                "expr": f"abs({one}({name}{{{sel}}}) - {value!r})"
                f" < bool {1e-6 * max(1.0, abs(value))!r}",
                "eval_time": f"{k}m",
                "exp_samples": [{"labels": "{" + sel + "}", "value": 1}],
            }
            for name, value in exprs
        ]
    return test


def tests_for(
    slo: SLOSpec, rules: dict[str, Any], notes: list[str] | None = None, naming: Naming = BUTTRESS
) -> list[dict[str, Any]]:
    """promtool ``tests:`` entries for one SLO (``rules`` is its generated group); a scenario that
    cannot be built is left out with a note appended to ``notes``."""
    synth = series_for(slo)
    scenarios, why = scenarios_for(slo)
    if notes is not None:
        notes.extend(f"slo {slo.name!r}: {w}" for w in why)
    out = [scenario_test(slo, rules, sc, synth, naming) for sc in scenarios]
    if slo.alerting.absent_for is not None:
        k = math.ceil(slo.alerting.absent_for / 60) + 1
        absent_name = absent_alert_name(slo)
        annotations = next(
            r["annotations"] for r in rules["rules"] if r.get("alert") == absent_name
        )
        out.append(
            {
                "name": f"{slo.name}: no data",
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {
                        "eval_time": f"{k}m",
                        "alertname": absent_name,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **naming.labels(slo),
                                    **slo.alerting.labels,
                                    **absent_labels(naming),
                                },
                                "exp_annotations": annotations,
                            }
                        ],
                    },
                    {"eval_time": f"{k}m", "alertname": slo.alert_name, "exp_alerts": []},
                ],
            }
        )
    return out


def test_file(
    slo: SLOSpec,
    rules: dict[str, Any],
    rule_file: str,
    notes: list[str] | None = None,
    naming: Naming = BUTTRESS,
) -> dict[str, Any]:
    """A complete promtool test file for ``slo`` against ``rule_file`` (a path relative to it);
    notes on scenarios left out go to ``notes``."""
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "group_eval_order": [group_name(slo)],
        "tests": tests_for(slo, rules, notes, naming),
    }


test_file.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
tests_for.__test__ = False  # type: ignore[attr-defined]
