"""Generated rules and promtool tests, run by the real promtool.

Also: the math module, the evaluator and Prometheus agree on the same series."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from buttress.slo import math as m
from buttress.slo.evaluator import evaluate
from buttress.slo.generate import build_outputs, write_outputs
from buttress.slo.load import load_slos
from buttress.slo.promtests import Scenario, expanding, scenario_test, series_for, test_file
from buttress.slo.rules import group_name, rules_for, to_yaml
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore

from .conftest import EXAMPLES, promtool


def _write_test(tmp: Path, slo: SLOSpec, tests: list[dict]) -> Path:
    group = rules_for(slo)
    (tmp / "r.rules.yaml").write_text(to_yaml({"groups": [group]}))
    path = tmp / "t.test.yaml"
    path.write_text(
        to_yaml(
            {
                "rule_files": ["r.rules.yaml"],
                "evaluation_interval": "1m",
                "group_eval_order": [group_name(slo)],
                "tests": tests,
            }
        )
    )
    return path


def _expected_scenarios(slo: SLOSpec) -> list[str]:
    """The scenarios an SLO's test file must hold, from its spec alone."""
    b = slo.budget_ratio
    fireable = [t for t in slo.tiers() if m.can_fire(t.threshold, b)]
    names = []
    if fireable:
        names.append("outage")
    if any(t.severity != "page" for t in fireable):
        names.append("slow burn")
    if slo.tiers():
        names.append("healthy")
    if slo.alerting.absent_for is not None:
        names.append("no data")
    return names


def _fired(test: dict) -> list[set[str]]:
    return [
        {a["exp_labels"]["burn_tier"] for a in t["exp_alerts"]} for t in test["alert_rule_test"]
    ]


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_rules_from_the_examples_pass_promtool_check_and_test(example, tmp_path):
    slos = load_slos(example)
    gen = build_outputs(slos)
    assert [] == [n for n in gen.notes if "no promtool test" in n or " test: " in n]
    # Every scenario is there for every SLO, and the slow burn fires tickets, never a page.
    for slo in slos:
        doc = yaml.safe_load(gen.files[f"{slo.name}.test.yaml"])
        assert [f"{slo.name}: {x}" for x in _expected_scenarios(slo)] == [
            t["name"] for t in doc["tests"]
        ]
        slow = [t for t in doc["tests"] if t["name"].endswith("slow burn")]
        pages = {t.name for t in slo.tiers() if t.severity == "page"}
        for fired in _fired(slow[0]) if slow else []:
            assert fired and not fired & pages
    write_outputs(gen, tmp_path)
    rules = sorted(tmp_path.glob("*.rules.yaml"))
    tests = sorted(tmp_path.glob("*.test.yaml"))
    assert len(rules) == len([s for s in slos if s.sli.has_prometheus]) > 0
    assert len(tests) == len(rules)
    checked = promtool("check", "rules", *rules)
    assert 0 == checked.returncode, checked.stdout + checked.stderr
    tested = promtool("test", "rules", *tests, cwd=tmp_path)
    assert 0 == tested.returncode, tested.stdout + tested.stderr
    assert len(tests) == tested.stdout.count("SUCCESS")


AVAIL = {
    "name": "api-availability",
    "service": "api",
    "objective": 99.9,
    "sli": {
        "kind": "ratio",
        "bad": 'sum(rate(http_requests_total{job="api",code=~"5.."}[{{.window}}]))',
        "total": 'sum(rate(http_requests_total{job="api"}[{{.window}}]))',
    },
    "alerting": {"disable": ["page-6h", "ticket-1d", "ticket-3d"]},
}


def test_15_percent_errors_fire_the_page_at_the_minute_the_math_predicts(tmp_path):
    slo = SLOSpec.model_validate(AVAIL)
    bad = [0] * 60 + [150] * 20  # a full healthy hour, then 15% errors
    total = [1000] * 80
    # 5.76 minutes after the errors start: the evaluation at +6 fires, the one at +5 does not.
    sc = Scenario("15% errors", bad, total, checks=[65, 66, 80], values=True)
    test = scenario_test(slo, rules_for(slo), sc)
    assert [[], ["page-1h"], ["page-1h"]] == [
        [a["exp_labels"]["burn_tier"] for a in t["exp_alerts"]] for t in test["alert_rule_test"]
    ]
    result = promtool("test", "rules", _write_test(tmp_path, slo, [test]), cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_a_wrong_expectation_makes_promtool_fail(tmp_path):
    """The generated tests can fail: claim the page fires one minute early."""
    slo = SLOSpec.model_validate(AVAIL)
    sc = Scenario("early", [0] * 60 + [150] * 10, [1000] * 70, checks=[66])
    test = scenario_test(slo, rules_for(slo), sc)
    test["alert_rule_test"][0]["eval_time"] = "65m"
    result = promtool("test", "rules", _write_test(tmp_path, slo, [test]), cwd=tmp_path)
    assert 1 == result.returncode
    assert "FAILED" in result.stdout + result.stderr


def test_a_90_percent_slo_never_pages_even_at_100_percent_errors(tmp_path):
    slo = SLOSpec.model_validate({**AVAIL, "objective": 90, "alerting": {}})
    sc = Scenario("total outage", [1000] * 90, [1000] * 90, checks=[5, 60, 90])
    test = scenario_test(slo, rules_for(slo), sc)
    fired = {a["exp_labels"]["burn_tier"] for t in test["alert_rule_test"] for a in t["exp_alerts"]}
    # 14.4 x 10% = 144% is out of reach; 6x, 3x and 1x of 10% are not.
    assert {"page-6h", "ticket-1d", "ticket-3d"} == fired
    result = promtool("test", "rules", _write_test(tmp_path, slo, [test]), cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_series_synthesis_satisfies_the_matchers():
    slo = SLOSpec.model_validate(AVAIL)
    synth = series_for(slo)
    assert (
        ('http_requests_total{code="500",job="api"}', "num"),
        ('http_requests_total{job="api"}', "rest"),
    ) == synth.series
    assert "0+5x3 15" == expanding([0, 5, 10, 15, 15])


PROP = {
    "name": "prop",
    "service": "svc",
    "objective": 99,
    "window": "1d",
    "sli": {
        "kind": "ratio",
        "good": 'sum(rate(req_total{code!~"5.."}[{{.window}}]))',
        "total": "sum(rate(req_total[{{.window}}]))",
    },
    "alerting": {
        "tiers": [
            {"name": "fast", "long_window": "30m", "short_window": "5m", "burn_rate": 10},
            {
                "name": "slow",
                "severity": "ticket",
                "long_window": "1h",
                "short_window": "10m",
                "burn_rate": 2,
                "min_events": 500,
            },
        ],
        "absent_for": None,
    },
}

segments = st.lists(
    st.tuples(
        st.integers(3, 25),  # minutes
        st.integers(0, 60),  # events per minute
        st.sampled_from([0.0, 0.005, 0.02, 0.05, 0.15, 0.4, 1.0]),  # error ratio
    ),
    min_size=1,
    max_size=5,
)


@settings(
    max_examples=6,
    deadline=None,
    phases=(
        Phase.explicit,
        Phase.reuse,
        Phase.generate,
    ),  # no shrinking: each example runs promtool
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(segs=[(3, 0, 0.0)], picks=[1.0, 1.0, 1.0])  # no traffic at all: nothing consumed
@example(segs=[(60, 50, 0.0), (20, 40, 0.15), (10, 0, 0.0)], picks=[0.7, 0.8, 1.0])
@given(segs=segments, picks=st.lists(st.floats(0.05, 1.0), min_size=3, max_size=3))
def test_math_evaluator_and_prometheus_agree(segs, picks, tmp_path_factory):
    slo = SLOSpec.model_validate(PROP)
    tiers = slo.tiers()
    bad: list[int] = []
    total: list[int] = []
    for minutes, rate, ratio in segs:
        bad += [round(rate * ratio)] * minutes
        total += [rate] * minutes
    n = len(total)
    checks = sorted({max(1, round(p * n)) for p in picks})
    tl = m.alert_timeline(bad, total, slo.budget_ratio, tiers)

    # The evaluator, from a real SQLite store, at the same minutes.
    tmp = tmp_path_factory.mktemp("prop")
    base = 28_000_000  # a minute in 2023
    with SLIStore(tmp / "sli.db") as store:
        store.add(
            (slo.name, base + i, t - b, t) for i, (b, t) in enumerate(zip(bad, total, strict=False))
        )
        for k in checks:
            (status,) = evaluate([slo], store, (base + k) * 60)
            assert sorted(tl[k]) == sorted(status.firing)
            for w in (5, 10, 30, 60):
                lo = max(0, k - w)
                tb, tt = sum(bad[lo:k]), sum(total[lo:k])
                expected = m.burn_rate(tb / tt, slo.budget_ratio) if tt else None
                got = status.burn_rates[f"{w}m" if w < 60 else "1h"]
                assert expected == pytest.approx(got)
            pb, pt = sum(bad[:k]), sum(total[:k])
            assert m.budget_remaining(pb, pt, slo.budget_ratio) == pytest.approx(
                status.budget_remaining
            )

    # Prometheus, evaluating the generated rules over the same counters (alerts at each check,
    # every burn rate and the budget remaining at the last one).
    sc = Scenario("property", bad, total, checks, values=True)
    test = scenario_test(slo, rules_for(slo), sc)
    result = promtool("test", "rules", _write_test(tmp, slo, [test]), cwd=tmp)
    assert 0 == result.returncode, result.stdout + result.stderr


def _window_slo(target: float | None) -> SLOSpec:
    sli: dict = {
        "kind": "window",
        "slice": "1m",
        "of": {
            "kind": "ratio",
            "good": 'sum(rate(calls_total{outcome="ok"}[{{.window}}]))',
            "total": "sum(rate(calls_total[{{.window}}]))",
        },
    }
    if target is not None:
        sli["target"] = target
    return SLOSpec.model_validate(
        {
            "name": "mins",
            "service": "svc",
            "objective": 99,
            "window": "7d",
            "sli": sli,
            "alerting": {"disable": ["ticket-3d"], "absent_for": None},
        }
    )


@pytest.mark.parametrize("target", [0.95, None], ids=["Timeslices", "RatioTimeslices"])
def test_timeslice_budget_agrees_between_the_evaluator_and_prometheus(target, tmp_path):
    """Both count the budget over every slice of the period (OpenSLO), not only slices with
    events: 20 quiet minutes must not change the figure."""
    slo = _window_slo(target)
    total = [100] * 40 + [0] * 20 + [100] * 30
    bad = [10 if i % 7 == 0 and t else 0 for i, t in enumerate(total)]  # 90% good: a bad slice
    checks = [45, 90]
    base = 28_000_000
    with SLIStore(tmp_path / "sli.db") as store:
        rows = enumerate(zip(bad, total, strict=True))
        store.add((slo.name, base + i, t - b, t) for i, (b, t) in rows)
        remaining = [evaluate([slo], store, (base + k) * 60)[0].budget_remaining for k in checks]
    bad_units = [sum(bad[:k]) / 100 * (10 if target else 1) for k in checks]
    # 7 days of 1-minute slices, 1% of them may be bad.
    assert [pytest.approx(1 - u / (0.01 * 7 * 1440)) for u in bad_units] == remaining
    test = scenario_test(slo, rules_for(slo), Scenario("budget", bad, total, checks))
    sel = 'service="svc",slo="mins"'
    test["promql_expr_test"] = [
        {
            "expr": f"abs(slo:error_budget:remaining{{{sel}}} - {r!r}) < bool 1e-9",
            "eval_time": f"{k}m",
            "exp_samples": [{"labels": "{" + sel + "}", "value": 1}],
        }
        for k, r in zip(checks, remaining, strict=True)
    ]
    result = promtool("test", "rules", _write_test(tmp_path, slo, [test]), cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


SLOW = {
    "service": "svc",
    "sli": {
        "kind": "ratio",
        "good": 'sum(rate(calls_total{outcome="ok"}[{{.window}}]))',
        "total": "sum(rate(calls_total[{{.window}}]))",
    },
}


def _timeslices(target: float) -> dict:
    return {"kind": "window", "slice": "1m", "target": target, "of": SLOW["sli"]}


@pytest.mark.parametrize(
    "spec",
    [
        {"objective": 99.9, "sli": _timeslices(0.95)},  # one bad minute trips page-1h's 1h window
        {"objective": 99, "window": "28d", "sli": _timeslices(0.9)},
        {
            "objective": 99.5,
            "window": "7d",
            "sli": _timeslices(0.95),
            "alerting": {"min_events": 200},  # slices: page-1h can never fire
        },
        {"objective": 99.99},  # 0.045% errors: needs more than 1,000 events a minute
        {"objective": 99.9, "sli": {**_timeslices(0.9), "target": None}},  # RatioTimeslices
        {
            "objective": 99.9,
            "alerting": {  # a ticket above the page: only a burn that has left the page's windows
                "tiers": [
                    {"name": "p", "long_window": "1h", "short_window": "5m", "burn_rate": 2},
                    {
                        "name": "t",
                        "severity": "ticket",
                        "long_window": "1d",
                        "short_window": "2h",
                        "burn_rate": 5,
                    },
                ]
            },
        },
    ],
    ids=["ts-99.9-30d", "ts-99-28d", "ts-min-events", "occ-99.99", "ratio-ts", "ticket-above-page"],
)
def test_the_slow_burn_fires_every_ticket_and_no_page(spec, tmp_path):
    slo = SLOSpec.model_validate({**SLOW, "name": "slow", **spec})
    group = rules_for(slo)
    notes: list[str] = []
    tf = test_file(slo, group, "r.rules.yaml", notes)
    assert [] == notes
    (slow,) = [t for t in tf["tests"] if t["name"] == "slow: slow burn"]
    tickets = {t.name for t in slo.tiers() if t.severity != "page"}
    assert all(tickets == fired for fired in _fired(slow))
    (tmp_path / "r.rules.yaml").write_text(to_yaml({"groups": [group]}))
    (tmp_path / "t.test.yaml").write_text(to_yaml({**tf, "tests": [slow]}))
    result = promtool("test", "rules", "t.test.yaml", cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_a_slow_burn_that_cannot_exist_is_a_note():
    # The ticket shares the page's windows with a higher threshold: it never fires alone.
    tiers = [
        {"name": "p", "long_window": "1h", "short_window": "5m", "burn_rate": 2},
        {"name": "t", "severity": "ticket", "long_window": "1h", "short_window": "5m"},
    ]
    tiers[1]["burn_rate"] = 5
    slo = SLOSpec.model_validate(
        {**SLOW, "name": "x", "objective": 99.9, "alerting": {"tiers": tiers}}
    )
    gen = build_outputs([slo])
    assert [
        "slo 'x': no slow-burn test: no series fires a ticket tier without a page "
        "(tickets ['t'], pages ['p'])"
    ] == gen.notes
    names = [t["name"] for t in yaml.safe_load(gen.files["x.test.yaml"])["tests"]]
    assert ["x: outage", "x: healthy", "x: no data"] == names
