"""Files written for the tools users already have: OpenSLO v1 as its specification writes it, sloth
as sloth reads it, and rules named as sloth names them (checked by the real promtool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from buttress.cli import main
from buttress.slo.generate import build_outputs, write_outputs
from buttress.slo.load import load_documents_text, load_slos
from buttress.slo.openslo import slos_from_openslo, slos_to_openslo
from buttress.slo.rules import SLOTH, prom_duration, rules_for, to_yaml

from .conftest import EXAMPLES, promtool

FIXTURES = Path(__file__).parent / "fixtures"
OPENSLO_DOCS = FIXTURES / "openslo-v1-docs.yaml"


def _objects(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object by (kind, name), inline policies and conditions included."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for d in docs:
        out[(d["kind"], d["metadata"]["name"])] = d
        for p in d["spec"].get("alertPolicies", []) if d["kind"] == "SLO" else []:
            if "kind" in p:
                out[("AlertPolicy", p["metadata"]["name"])] = p
        for c in d["spec"].get("conditions", []) if d["kind"] == "AlertPolicy" else []:
            if "kind" in c:
                out[("AlertCondition", c["metadata"]["name"])] = c
    return out


def _export(slos) -> str:
    return "---\n".join(to_yaml(d) for d in slos_to_openslo(slos))


def test_openslo_as_its_docs_write_it_imports():
    (slo,) = load_slos(OPENSLO_DOCS)
    assert ("month", "America/New_York", 99.5) == (
        slo.window.calendar,
        slo.window.timezone,
        slo.objective,
    )
    assert "Rad availability" == slo.display_name
    fast, slow = slo.alerting.tiers
    assert (300.0, "gte", 3600.0, 14.4) == (
        fast.alert_after,
        fast.op,
        fast.long_window,
        fast.burn_rate,
    )
    assert (None, None) == (slow.alert_after, slow.op)


def test_openslo_round_trip_keeps_what_was_written():
    original = list(yaml.safe_load_all(OPENSLO_DOCS.read_text()))
    text = _export(load_slos(OPENSLO_DOCS))
    exported = list(yaml.safe_load_all(text))
    before, after = _objects(original), _objects(exported)
    assert set(before) <= set(after)
    # Unquoted start time, still unquoted (a YAML timestamp) after export.
    assert "startTime: 2022-01-01 00:00:00\n" in text
    slo_b, slo_a = before[("SLO", "rad-availability")], after[("SLO", "rad-availability")]
    assert slo_b["spec"]["timeWindow"] == slo_a["spec"]["timeWindow"]
    assert slo_b["metadata"]["displayName"] == slo_a["metadata"]["displayName"]
    assert "Rad Total Errors" == slo_a["spec"]["objectives"][0]["displayName"]
    assert "great-sli" == slo_a["spec"]["indicatorRef"]
    for key in [k for k in before if k[0] in ("DataSource", "Service", "AlertNotificationTarget")]:
        assert before[key] == after[key], key
    for name in ("rad-fast-burn", "rad-slow-burn"):
        b, a = before[("AlertPolicy", name)], after[("AlertPolicy", name)]
        assert b["metadata"] == a["metadata"]
        for field in ("description", "notificationTargets", "alertWhenNoData"):
            assert b["spec"].get(field, False) == a["spec"][field], (name, field)
    for name in ("rad-fast-burn-condition", "rad-slow-burn-condition"):
        b, a = before[("AlertCondition", name)], after[("AlertCondition", name)]
        assert b["metadata"]["displayName"] == a["metadata"]["displayName"]
        assert b["spec"]["description"] == a["spec"]["description"]
        cb, ca = b["spec"]["condition"], a["spec"]["condition"]
        assert (cb.get("op"), cb["alertAfter"], cb["lookbackWindow"]) == (
            ca.get("op"),
            ca["alertAfter"],
            ca["lookbackWindow"],
        )
    # A second trip changes nothing.
    again = slos_from_openslo(load_documents_text(text, "exported.yaml"))
    assert text == _export(again)


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_every_condition_op_round_trips_as_written(op, write):
    text = OPENSLO_DOCS.read_text().replace("op: gte", f"op: {op}")
    slos = load_slos(write("o.yaml", text))
    (cond,) = [
        d
        for d in slos_to_openslo(slos)
        if d["kind"] == "AlertCondition" and d["metadata"]["name"] == "rad-fast-burn-condition"
    ]
    assert op == cond["spec"]["condition"]["op"]
    warned = any("op: l" in w for w in slos[0].warnings())
    assert warned == (op in ("lt", "lte"))


def test_alert_after_becomes_the_rules_for(tmp_path, write):
    # Queries with the placeholder, so that the generator can synthesise their counters.
    text = OPENSLO_DOCS.read_text()
    for sel in ('service="rad",code!~"5.."', 'service="rad"'):
        text = text.replace(
            f"sum(http_requests_total{{{sel}}})",
            f"sum(rate(http_requests_total{{{sel}}}[{{{{.window}}}}]))",
        )
    (slo,) = load_slos(write("o.yaml", text))
    alerts = [r for r in rules_for(slo)["rules"] if "alert" in r]
    assert ["5m", None] == [r.get("for") for r in alerts if r["labels"]["burn_tier"] != "absent"]
    gen = build_outputs([slo])
    write_outputs(gen, tmp_path)
    assert 0 == promtool("check", "rules", tmp_path / f"{slo.name}.rules.yaml").returncode
    result = promtool("test", "rules", f"{slo.name}.test.yaml", cwd=tmp_path)
    assert 0 == result.returncode, result.stdout + result.stderr


def test_alert_after_must_be_whole_minutes(write):
    text = OPENSLO_DOCS.read_text().replace("alertAfter: 5m", "alertAfter: soon")
    result = CliRunner().invoke(main, ["slo", "validate", str(write("o.yaml", text))])
    assert 2 == result.exit_code
    assert "o.yaml:96:5: spec.condition.alertAfter:" in result.output, result.output


def test_counter_query_that_already_takes_a_rate_warns(write):
    text = OPENSLO_DOCS.read_text().replace(
        'sum(http_requests_total{service="rad"})',
        'sum(rate(http_requests_total{service="rad"}[5m]))',
    )
    path = write("o.yaml", text)
    result = CliRunner().invoke(main, ["slo", "validate", str(path)])
    assert 0 == result.exit_code, result.output
    (line,) = [x for x in result.output.splitlines() if "rate of a rate" in x]
    assert "'rad-availability'" in line
    assert "the total query 'sum(rate(http_requests_total{service=\"rad\"}[5m]))'" in line
    # The plain counter (good) is not named.
    assert "good query" not in result.output


SLOTH_SPACED = """\
version: "prometheus/v1"
service: "myservice"
labels:
  owner: "myteam"
  tier: 2
  critical: true
slos:
  - name: "requests-availability"
    objective: 99.9
    description: "Common SLO based on availability for HTTP request responses."
    labels:
      paged: false
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="myservice",code=~"5.."}[{{ .window }}]))
        total_query: sum(rate(http_requests_total{job="myservice"}[{{.window}}]))
    alerting:
      name: MyServiceHighErrorRate
      labels:
        category: "availability"
      annotations:
        summary: "High error rate on 'myservice' requests responses"
      page_alert:
        labels:
          severity: pageteam
          routing_key: myteam
          urgent: true
      ticket_alert:
        labels:
          severity: "slack"
          slack_channel: "#alerts-myteam"
"""


def test_sloth_spaced_placeholder_and_boolean_labels(write):
    (slo,) = load_slos(write("sloth.yaml", SLOTH_SPACED))
    assert slo.sli.bad is not None and "[{{.window}}]" in slo.sli.bad
    assert {"owner": "myteam", "tier": "2", "critical": "true", "paged": "false"} == slo.labels
    assert "true" == slo.alerting.tiers[0].labels["urgent"]


def test_prom_duration_prints_like_prometheus():
    assert ["5m", "1h30m", "1d", "1w", "30d", "4w", "90d", "1y"] == [
        prom_duration(s) for s in (300, 5400, 86400, 7 * 86400, 30 * 86400, 28 * 86400, 90 * 86400)
    ] + [prom_duration(365 * 86400)]


def test_sloth_naming_has_sloths_series_and_labels():
    avail, _ = load_slos(EXAMPLES / "sloth.yaml")
    rules = rules_for(avail, naming=SLOTH)["rules"]
    records = {r["record"]: r for r in rules if "record" in r}
    for name in (
        "slo:sli_error:ratio_rate5m",
        "slo:sli_error:ratio_rate30m",
        "slo:sli_error:ratio_rate1h",
        "slo:sli_error:ratio_rate2h",
        "slo:sli_error:ratio_rate6h",
        "slo:sli_error:ratio_rate1d",
        "slo:sli_error:ratio_rate3d",
        "slo:sli_error:ratio_rate30d",
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ):
        assert name in records, name
    ident = {
        "sloth_id": "catalog-requests-availability",
        "sloth_service": "catalog",
        "sloth_slo": "requests-availability",
    }
    assert {**ident, "owner": "search-team", "sloth_window": "1h"} == records[
        "slo:sli_error:ratio_rate1h"
    ]["labels"]
    assert "slo" not in records["slo:objective:ratio"]["labels"]
    assert "99.9" == records["sloth_slo_info"]["labels"]["sloth_objective"]
    alerts = [r for r in rules if "alert" in r]
    assert {"page", "ticket"} == {a["labels"]["sloth_severity"] for a in alerts}
    assert all(ident.items() <= a["labels"].items() for a in alerts)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_sloth_naming_passes_promtool(example, tmp_path):
    result = CliRunner().invoke(
        main, ["slo", "generate", str(example), "-o", str(tmp_path), "--naming", "sloth"]
    )
    assert 0 == result.exit_code, result.output
    rules = sorted(tmp_path.glob("*.rules.yaml"))
    check = promtool("check", "rules", *rules)
    assert 0 == check.returncode, check.stdout + check.stderr
    for test in sorted(tmp_path.glob("*.test.yaml")):
        run = promtool("test", "rules", test.name, cwd=tmp_path)
        assert 0 == run.returncode, run.stdout + run.stderr
    assert len(list(tmp_path.glob("*.test.yaml"))) == len(rules)
