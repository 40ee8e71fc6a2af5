"""Bad input in OpenSLO and sloth files: every problem is a SpecError naming the file, the line and
the field where the user wrote it, never a traceback; nothing is generated."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import SpecError
from buttress.slo.load import load_slos

OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api
  annotations:
    buttress.dev/exclusions: '[{"start": "2024-03-01T02:00:00Z", "end": "2024-03-01T04:00:00Z"}]'
    buttress.dev/min-events: "100"
spec:
  service: api
  indicator:
    spec: {}
    metadata:
      name: api-sli
      annotations:
        buttress.dev/pipeline: api
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.999
  alertPolicies:
    - kind: AlertPolicy
      metadata: {name: fast}
      spec:
        conditions:
          - kind: AlertCondition
            metadata:
              name: fast-burn
              annotations:
                buttress.dev/short-window: 5m
            spec:
              severity: page
              condition: {kind: burnrate, op: gt, threshold: 14.4, lookbackWindow: 1h}
"""
EXCLUSIONS = OPENSLO.splitlines(keepends=True)[5]
PIPELINE = "        buttress.dev/pipeline: api\n"
SHORT = "                buttress.dev/short-window: 5m\n"
ANN = "metadata.annotations.buttress.dev/"


def _error(write, text: str) -> SpecError:
    path = write("openslo.yaml", text)
    with pytest.raises(SpecError) as info:
        load_slos(path)
    return info.value


def test_the_base_file_is_valid(write):
    (slo,) = load_slos(write("openslo.yaml", OPENSLO))
    assert (1, 100, [("fast-burn", 300.0)]) == (
        len(slo.exclusions),
        slo.alerting.min_events,
        [(t.name, t.short_window) for t in slo.alerting.tiers],
    )


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        (
            EXCLUSIONS,
            "    buttress.dev/exclusions: '[{\"start\": 2024'\n",
            6,
            "exclusions",
            "not valid JSON",
        ),
        (EXCLUSIONS, "    buttress.dev/exclusions: '{}'\n", 6, "exclusions", "a JSON array"),
        (
            EXCLUSIONS,
            EXCLUSIONS.replace("04:00", "01:00"),
            6,
            "exclusions",
            "[0]: 'end' must be after 'start'",
        ),
        ('"100"', "lots", 7, "min-events", "whole number of events >= 0, got 'lots'"),
        ('"100"', '"-3"', 7, "min-events", "must be >= 0"),
        (
            PIPELINE,
            PIPELINE + "        buttress.dev/latency: '{threshold: 1}'\n",
            16,
            "latency",
            "not valid JSON",
        ),
        (
            PIPELINE,
            PIPELINE + '        buttress.dev/latency: \'{"threshold": "soon"}\'\n',
            16,
            "latency",
            "threshold: cannot read 'soon' as a duration",
        ),
        (
            SHORT,
            SHORT + "                buttress.dev/min-events: lots\n",
            32,
            "min-events",
            "lots",
        ),
        (SHORT, SHORT + "                buttress.dev/labels: 'x'\n", 32, "labels", "not valid"),
        (
            SHORT,
            SHORT + "                buttress.dev/annotations: '{\"a\": 1}'\n",
            32,
            "annotations",
            "value of 'a' must be a string",
        ),
        (SHORT, SHORT.replace("5m", "soon"), 31, "short-window", "cannot read 'soon'"),
        (SHORT, SHORT.replace("5m", "2h"), 31, "short-window", "longer than the long window"),
        (SHORT, SHORT + "                buttress.dev/tier: 'no way'\n", 32, "tier", "'no way'"),
    ],
)
def test_malformed_buttress_annotations_are_spec_errors_at_their_line(
    write, old, new, line, field, message
):
    assert old in OPENSLO
    e = _error(write, OPENSLO.replace(old, new))
    where = (
        "spec.alertPolicies[0].spec.conditions[0].metadata."
        if line > 30
        else "spec.indicator.metadata."
        if line > 10
        else "metadata."
    )
    assert (line, f"{where}annotations.buttress.dev/{field}") == (e.line, e.field)
    assert message in e.message


def test_slo_level_alerting_annotations_are_checked(write):
    extra = "    buttress.dev/alert-labels: '[1]'\n"
    e = _error(write, OPENSLO.replace(EXCLUSIONS, EXCLUSIONS + extra))
    assert (7, f"{ANN}alert-labels", "must be a JSON object, got list") == (
        e.line,
        e.field,
        e.message,
    )
    extra = "    buttress.dev/absent-for: sometime\n"
    e = _error(write, OPENSLO.replace(EXCLUSIONS, EXCLUSIONS + extra))
    assert (7, f"{ANN}absent-for") == (e.line, e.field)
    extra = "    buttress.dev/no-alerts: yes please\n"
    e = _error(write, OPENSLO.replace(EXCLUSIONS, EXCLUSIONS + extra))
    assert (7, f"{ANN}no-alerts") == (e.line, e.field)


def test_generate_reports_a_bad_annotation_and_writes_nothing(write, tmp_path):
    path = write("openslo.yaml", OPENSLO.replace('"100"', "lots"))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["slo", "generate", str(path), "-o", str(out)])
    assert 2 == result.exit_code
    assert f"openslo.yaml:7:5: {ANN}min-events: must be a whole number" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_openslo_window_errors_point_at_time_window(write):
    # 2 days is shorter than the long window of the default ticket-3d tier (no alert policies).
    text = OPENSLO.split("  alertPolicies:", maxsplit=1)[0].replace("duration: 30d", "duration: 2d")
    e = _error(write, text)
    assert (16, "spec.timeWindow") == (e.line, e.field)
    assert "ticket-3d" in e.message
    e = _error(write, OPENSLO.replace("duration: 30d", "duration: 30 days"))
    assert (17, "spec.timeWindow[0].duration") == (e.line, e.field)


def test_openslo_objective_errors_point_at_the_target(write):
    e = _error(write, OPENSLO.replace("target: 0.999", "targetPercent: 100"))
    assert (21, "spec.objectives[0].targetPercent") == (e.line, e.field)


def test_unknown_sli_kind_points_at_the_kind_line(write):
    text = (
        "service: api\nslos:\n  - name: a\n    objective: 99\n    sli:\n"
        "      pipeline: p\n      kind: availability\n"
    )
    e = _error(write, text)
    assert (7, "slos[0].sli.kind") == (e.line, e.field)
    assert "unknown SLI kind; use ratio, latency or window (got 'availability')" == e.message
    inner = text.replace(
        "      pipeline: p\n      kind: availability\n",
        "      kind: window\n      target: 0.9\n      of:\n        kind: ratios\n",
    )
    e = _error(write, inner)
    assert (9, "slos[0].sli.of.kind") == (e.line, e.field)


SLOTH = """\
version: prometheus/v1
service: a
slos:
  - name: x
    objective: 99
    sli:
      events:
        error_query: sum(rate(req_total{code="500"}[{{.window}}]))
        total_query: sum(rate(req_total[{{.window}}]))
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("objective: 99", "objective: 100", 5, "slos[0].objective"),
        ("name: x", "name: 'x y'", 4, "slos[0].name"),
        ("req_total[{{.window}}]))\n", "req_total[5m]))\n", 9, "slos[0].sli.events.total_query"),
    ],
)
def test_sloth_errors_name_the_full_field_path(write, old, new, line, field):
    e = _error(write, SLOTH.replace(old, new))
    assert (line, field) == (e.line, e.field)
