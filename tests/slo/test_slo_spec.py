"""The slos: section: validation errors with file, line and field; nothing generated on error."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import SpecError
from buttress.slo.load import load_slos
from buttress.spec.document import json_schema

GOOD = """\
service: api
slos:
  - name: avail
    objective: 99.9
    sli:
      kind: ratio
      bad: sum(rate(req_total{code=~"5.."}[{{.window}}]))
      total: sum(rate(req_total[{{.window}}]))
"""


def _error(write, text: str) -> SpecError:
    path = write("reliability.yaml", text)
    with pytest.raises(SpecError) as info:
        load_slos(path)
    return info.value


def test_a_valid_file_loads_with_the_service_filled_in(write):
    (slo,) = load_slos(write("reliability.yaml", GOOD))
    assert ("api", 0.999, 0.001, "Occurrences") == (
        slo.service,
        slo.target,
        slo.budget_ratio,
        slo.method,
    )


@pytest.mark.parametrize("objective", ["100", "100.5", "'100%'"])
def test_objective_of_100_or_more(write, objective):
    e = _error(write, GOOD.replace("objective: 99.9", f"objective: {objective}"))
    assert (4, "slos[0].objective") == (e.line, e.field)
    assert "below 100" in e.message
    assert "reliability.yaml:4:5: slos[0].objective:" in str(e)


def test_window_shorter_than_the_longest_alert_window(write):
    e = _error(
        write, GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    window: 2d\n")
    )
    assert (5, "slos[0].window") == (e.line, e.field)
    assert "ticket-3d" in e.message and "shorter" in e.message


def test_tier_with_a_short_window_longer_than_its_long_window(write):
    text = GOOD + (
        "    alerting:\n      tiers:\n"
        "        - {name: fast, long_window: 1h, short_window: 2h, burn_rate: 14.4}\n"
    )
    e = _error(write, text)
    assert (11, "slos[0].alerting.tiers[0].short_window") == (e.line, e.field)
    assert "longer than the long window" in e.message


def test_unknown_sli_kind(write):
    e = _error(write, GOOD.replace("kind: ratio", "kind: availability"))
    assert (6, "slos[0].sli.kind") == (e.line, e.field)
    assert "unknown SLI kind; use ratio, latency or window (got 'availability')" == e.message


def test_typo_in_a_key_suggests_the_right_one(write):
    e = _error(write, GOOD.replace("objective:", "objectiv:"))
    assert "did you mean 'objective'" in str(e)


def test_duplicate_slo_names(write):
    text = GOOD + GOOD.split("slos:\n")[1]
    e = _error(write, text)
    assert ("slos[1].name", 9) == (e.field, e.line)


def test_timeslices_need_a_window_sli(write):
    e = _error(write, GOOD.replace("    sli:\n", "    budgeting: Timeslices\n    sli:\n"))
    assert "slos[0].budgeting" == e.field


def test_json_schema_documents_the_slos_section():
    schema = json_schema()
    assert "slos" in schema["properties"]
    defs = schema["$defs"]
    slo = defs["SLOSpec"]["properties"]
    assert "0 < objective < 100" in slo["objective"]["description"]
    assert {"RatioSLI", "LatencySLI", "WindowSLI", "TierSpec", "WindowSpec"} <= set(defs)
    assert all("description" in p for p in defs["TierSpec"]["properties"].values())


BAD_OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
spec:
  service: api
  indicator:
    metadata: {name: api-sli}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource: {type: Prometheus, spec: {query: 'sum(rate(ok[{{.window}}]))'}}
        total:
          metricSource: {type: Prometheus, spec: {query: 'sum(rate(all[{{.window}}]))'}}
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurences
  objectives:
    - target: 0.999
"""


def test_malformed_openslo_names_file_line_and_field(write):
    e = _error(write, BAD_OPENSLO)
    assert (19, "spec.budgetingMethod") == (e.line, e.field)
    assert "reliability.yaml:19" in str(e)


def test_openslo_reference_to_a_missing_object(write):
    text = BAD_OPENSLO.replace("Occurences", "Occurrences") + (
        "  alertPolicies:\n    - alertPolicyRef: nope\n"
    )
    e = _error(write, text)
    assert (23, "spec.alertPolicies[0].alertPolicyRef") == (e.line, e.field)
    assert "no AlertPolicy named 'nope'" in e.message


def test_openslo_second_document_errors_point_into_it(write):
    text = BAD_OPENSLO.replace("Occurences", "Occurrences") + (
        "---\napiVersion: openslo/v1\nkind: AlertCondition\nmetadata: {name: c}\n"
        "spec:\n  severity: page\n  condition: {kind: burnrate, op: gt, threshold: -2, "
        "lookbackWindow: 1h}\n"
    )
    e = _error(write, text)
    assert (28, "spec.condition.threshold") == (e.line, e.field)


def test_generate_writes_nothing_when_any_slo_is_invalid(write, tmp_path):
    text = GOOD + GOOD.split("slos:\n")[1].replace("avail", "second").replace("99.9", "100")
    path = write("reliability.yaml", text)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["slo", "generate", str(path), "-o", str(out)])
    assert 2 == result.exit_code
    assert "slos[1].objective" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_validate_command_reports_never_firing_tiers(write):
    path = write("reliability.yaml", GOOD.replace("99.9", "90"))
    result = CliRunner().invoke(main, ["slo", "validate", str(path)])
    assert 0 == result.exit_code
    assert "ok (1 SLO(s))" in result.output
    assert "page-1h' can never fire" in result.output


def test_spec_schema_command_is_json():
    result = CliRunner().invoke(main, ["spec", "schema"])
    assert 0 == result.exit_code
    assert "slos" in json.loads(result.output)["properties"]
