"""OpenSLO v1 and sloth prometheus/v1: reading, writing, and round trips that keep shared fields."""

from __future__ import annotations

from typing import Any

import yaml
from click.testing import CliRunner

from buttress.cli import main
from buttress.slo.load import load_documents_text, load_slos
from buttress.slo.openslo import slos_from_openslo, slos_to_openslo
from buttress.slo.rules import to_yaml
from buttress.slo.sloth import slos_to_sloth
from buttress.slo.spec import SLOSpec

from .conftest import EXAMPLES


def shared(s: SLOSpec) -> dict[str, Any]:
    """The fields every format carries, normalised (thresholds as burn rates for the period)."""
    sli = s.sli.model_dump(exclude_none=True)
    return {
        "name": s.name,
        "service": s.service,
        "description": s.description,
        "objective": s.objective,
        "method": s.method,
        "sli": sli,
        "window": s.window.model_dump(),
        "tiers": [
            (t.name, t.severity, t.long_window, t.short_window, round(t.threshold, 9), t.min_events)
            for t in s.tiers()
        ],
        "tier_labels": [t.labels for t in s.alerting.active_tiers],
        "tier_annotations": [t.annotations for t in s.alerting.active_tiers],
        "alert_annotations": s.alerting.annotations,
        "labels": s.labels,
        "alert_name": s.alert_name,
        "alert_labels": s.alerting.labels,
        "absent_for": s.alerting.absent_for,
        "exclusions": [e.model_dump() for e in s.exclusions],
    }


def _openslo_round_trip(slos: list[SLOSpec]) -> list[SLOSpec]:
    text = "---\n".join(to_yaml(d) for d in slos_to_openslo(slos))
    return slos_from_openslo(load_documents_text(text, "exported.yaml"))


def test_reliability_yaml_to_openslo_and_back_keeps_every_field():
    slos = load_slos(EXAMPLES / "reliability.yaml")
    back = _openslo_round_trip(slos)
    assert [shared(s) for s in slos] == [shared(s) for s in back]


def test_openslo_to_buttress_and_back_keeps_the_openslo_fields():
    slos = load_slos(EXAMPLES / "openslo.yaml")
    (slo,) = slos
    assert ("search", 99.5, 28 * 86400.0, {"team": "search"}) == (
        slo.service,
        slo.objective,
        slo.window.rolling,
        slo.labels,
    )
    assert [("fast-burn", 14.4, 3600.0, 300.0), ("slow-burn", 2.0, 86400.0, 7200.0)] == [
        (t.name, t.threshold, t.long_window, t.short_window) for t in slo.tiers()
    ]
    docs = slos_to_openslo(slos)
    kinds = sorted(d["kind"] for d in docs)
    assert [
        "AlertCondition",
        "AlertCondition",
        "AlertPolicy",
        "AlertPolicy",
        "DataSource",
        "SLI",
        "SLO",
        "Service",
    ] == kinds
    (exported,) = [d for d in docs if d["kind"] == "SLO"]
    original = next(
        d for d in yaml.safe_load_all((EXAMPLES / "openslo.yaml").read_text()) if d["kind"] == "SLO"
    )
    for key in ("service", "description", "budgetingMethod", "timeWindow"):
        assert original["spec"][key] == exported["spec"][key]
    assert original["metadata"]["labels"] == exported["metadata"]["labels"]
    assert 99.5 == exported["spec"]["objectives"][0]["targetPercent"]
    # A second trip changes nothing at all.
    again = slos_to_openslo(_openslo_round_trip(slos))
    assert docs == again


def test_sloth_import_and_round_trip_through_openslo_and_sloth():
    slos = load_slos(EXAMPLES / "sloth.yaml")
    avail, latency = slos
    assert ("catalog", 99.9, {"owner": "search-team"}, "CatalogHighErrorRate") == (
        avail.service,
        avail.objective,
        avail.labels,
        avail.alert_name,
    )
    assert {"route": "pager"} == avail.alerting.tiers[0].labels
    assert ["ticket-1d", "ticket-3d"] == latency.alerting.disable
    # sloth -> OpenSLO -> Buttress keeps everything the two share.
    assert [shared(s) for s in slos] == [shared(s) for s in _openslo_round_trip(slos)]
    # sloth -> Buttress -> sloth is the same document (service labels land on each SLO).
    original = yaml.safe_load((EXAMPLES / "sloth.yaml").read_text())
    written = slos_to_sloth(slos)
    assert original["service"] == written["service"]
    for o, w in zip(original["slos"], written["slos"], strict=True):
        assert (o["name"], o["objective"], o["sli"]) == (w["name"], w["objective"], w["sli"])
        assert {**original["labels"], **o.get("labels", {})} == w["labels"]
        assert o["alerting"]["name"] == w["alerting"]["name"]
    assert (
        original["slos"][0]["alerting"]["page_alert"]
        == written["slos"][0]["alerting"]["page_alert"]
    )
    assert {"disable": True} == written["slos"][1]["alerting"]["ticket_alert"]


def test_sloth_export_refuses_what_sloth_cannot_express():
    # The example has a calendar window and a 7-day window: sloth has a fixed 30-day period.
    result = CliRunner().invoke(
        main, ["slo", "convert", str(EXAMPLES / "reliability.yaml"), "--to", "sloth"]
    )
    assert 2 == result.exit_code
    assert "fixed 30-day period" in result.output and "Traceback" not in result.output


def test_sloth_plugin_sli_is_a_clear_error(write):
    path = write(
        "sloth.yaml",
        'version: "prometheus/v1"\nservice: a\nslos:\n  - name: x\n    objective: 99\n'
        "    sli:\n      plugin:\n        id: sloth-common/availability\n",
    )
    result = CliRunner().invoke(main, ["slo", "validate", str(path)])
    assert 2 == result.exit_code
    assert "sloth.yaml:7:7: slos[0].sli.plugin: sloth SLI plugins" in result.output


def test_convert_command_writes_openslo_that_reads_back(tmp_path):
    out = tmp_path / "openslo.yaml"
    result = CliRunner().invoke(
        main,
        ["slo", "convert", str(EXAMPLES / "reliability.yaml"), "--to", "openslo", "-o", str(out)],
    )
    assert 0 == result.exit_code, result.output
    assert [s.name for s in load_slos(EXAMPLES / "reliability.yaml")] == [
        s.name for s in load_slos(out)
    ]
    back = tmp_path / "reliability.yaml"
    result = CliRunner().invoke(
        main, ["slo", "convert", str(out), "--to", "reliability", "-o", str(back)]
    )
    assert 0 == result.exit_code, result.output
    assert [shared(s) for s in load_slos(EXAMPLES / "reliability.yaml")] == [
        shared(s) for s in load_slos(back)
    ]
