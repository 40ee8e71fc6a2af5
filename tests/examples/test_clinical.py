"""examples/clinical: a small hospital system, patient safety first (docs/examples/clinical.md).

Its spec validates, ``buttress assess`` gives the verdicts the docs quote in under 5 s,
``buttress lab examples/clinical --quick`` holds its hypotheses with the figures the docs rest on
in under 90 s, and ``--drill`` restores the primary record within the RPO/RTO the hospital wrote
down, each leaving no process behind."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from buttress.lab.system.load import load_lab
from shop.helpers import ROOT, new_marker, run_lab, wait_no_marked

from .helpers import cli, quick_lab

CLINICAL = ROOT / "examples" / "clinical"
CRITICAL = ("lookup", "interactions", "chart", "alert")


def test_the_spec_validates_and_names_what_the_lab_needs() -> None:
    done = cli("spec", "validate", str(CLINICAL / "reliability.yaml"))
    assert 0 == done.returncode, done.stderr
    lab = load_lab(CLINICAL)
    exp = lab.experiments
    assert ["off", "on"] == exp.runs
    assert {"api", "records", "replica", "pager"} == set(exp.system)
    requests = exp.load.requests
    assert all("critical" == requests[k].criticality for k in CRITICAL)
    assert "sheddable" == requests["reports"].criticality
    assert "low" == requests["schedule"].criticality
    assert [k for k, r in requests.items() if r.order] == ["alert"]
    # The three faults the issue names: a surge, the primary database lost, a dependency hang.
    kinds = {f.name: (f.kind, f.target) for f in exp.plan}
    assert ("outage", "records") == kinds["primary-lost"]
    assert ("latency", "pager") == kinds["pager-hang"]
    hang = next(f for f in exp.plan if f.name == "pager-hang")
    assert hang.latency > 2 * exp.load.timeout  # no caller waits that long: a hang to them
    bursts = {f.target: f for f in exp.plan if f.kind == "burst"}
    assert 3 * requests["lookup"].rate == bursts["lookup"].rate
    assert 4 * requests["reports"].rate == bursts["reports"].rate
    (mode,) = lab.spec.modes or []
    assert "emergency" == mode.name and {"primary-reads", "reports", "scheduling"} == set(mode.off)
    drill = exp.drill
    assert drill is not None and ("records", "ehr.db", "charting") == (
        drill.target,
        drill.file,
        drill.journey,
    )


def test_assess_answers_in_under_5s_with_the_verdicts_the_docs_quote() -> None:
    start = time.monotonic()
    done = cli("assess", str(CLINICAL / "reliability.yaml"), "--json")
    elapsed = time.monotonic() - start
    assert 0 == done.returncode, done.stderr  # every verdict passes
    assert elapsed < 5.0, elapsed
    journeys = {j["name"]: j for j in json.loads(done.stdout)["journeys"]}
    # docs/examples/clinical.md, "What the assessment says".
    reads, writes = journeys["patient-safety"], journeys["charting"]
    assert reads["meets_target"] is True and 0.9999 == reads["target"]
    assert [] == reads["spofs"]  # the replica backs the primary up for reads
    assert "99.99999%" == f"{reads['availability']:.5%}"
    assert writes["meets_target"] is True and 0.999 == writes["target"]
    assert "99.9917%" == f"{writes['availability']:.4%}"
    assert [
        "charting fails if records fails, because charting requires records, records runs a "
        "single instance"
    ] == [s["explanation"] for s in writes["spofs"]]
    assert 43 < writes["downtime_minutes_per_year"] < 44
    instance = next(r for r in writes["recovery"] if r["disruption"] == "instance")
    assert (600.0, 900.0, True) == (
        instance["rto_seconds"],
        instance["rto_target_seconds"],
        instance["rto_met"],
    )
    assert (5.0, 300.0, True) == (
        instance["rpo_seconds"],
        instance["rpo_target_seconds"],
        instance["rpo_met"],
    )
    titles = [r["title"] for r in writes["recommendations"][:2]]
    assert [
        "make charting -> records soft, with a fallback",
        "add a failover standby for records (active-passive)",
    ] == titles


def _bad_during(run: dict[str, Any], fault: str, kind: str) -> int:
    return int(next(f for f in run["faults"] if f["name"] == fault)["bad_requests"][kind])


@pytest.mark.serial
@pytest.mark.usefixtures("lab_lock")
def test_the_quick_lab_keeps_patient_safety_through_every_fault(tmp_path: Path) -> None:
    done, result, elapsed = quick_lab(CLINICAL, tmp_path / "report")
    assert elapsed < 90, elapsed  # the figure, both runs included
    assert ["off", "on"] == list(result["runs"])
    off, on = result["runs"]["off"], result["runs"]["on"]
    for run in (off, on):
        assert run["cleanup"]["clean"], run["cleanup"]
        assert [] == run["killed_at_stop"]
        # No accepted alert lost, none paged twice, whatever the driver's lag.
        assert run["history"]["valid"] is True and 0 == run["history"]["lost_count"]
        assert 0 == run["effects"]["paged"]["duplicated_count"]
    accepted = on["history"]["acknowledged_count"]
    # Every accepted alert paged exactly once with the policies: the outbox drained.
    assert accepted == on["effects"]["paged"]["once"] > 40
    assert 0 == on["pending"]["count"]
    if result["verdict"] == "inconclusive":  # a starved driver: the figures are its own
        assert 3 == done.returncode
        assert any(r["driver"]["starved"] for r in result["runs"].values())
        return
    assert 0 == done.returncode and "passed" == result["verdict"], result["hypotheses"]
    slos = {m: {s["name"]: s for s in r["slos"]} for m, r in result["runs"].items()}
    # The critical reads: held with the policies (no lookup or check failed), burned without.
    for name in ("lookup", "interactions"):
        assert "held" == slos["on"][name]["verdict"]
        assert "burned" == slos["off"][name]["verdict"]
        assert on["requests"][name]["good"] == on["requests"][name]["total"]
        assert 0 == on["shed"][name]["shed"]  # never shed
        # The primary lost: the replica answered every read; without it they failed.
        assert 0 == _bad_during(on, "primary-lost", name)
        assert _bad_during(off, "primary-lost", name) > 0
    # Reports and the clinic list shed first; nothing sheds without the policies.
    assert on["shed"]["reports"]["share"] > 0.2 and on["shed"]["schedule"]["shed"] > 0
    assert all(0 == off["shed"][k]["shed"] for k in off["shed"])
    # The pager hung: alerts kept being accepted (the outbox); without it they timed out.
    assert 0 == _bad_during(on, "pager-hang", "alert")
    assert _bad_during(off, "pager-hang", "alert") > 0
    assert accepted > off["history"]["acknowledged_count"]
    # Emergency mode: switched on while the primary was lost, off again after it came back.
    modes = on["healing"]["modes"]
    lost = next(f for f in on["faults"] if f["name"] == "primary-lost")
    assert [m["mode"] for m in modes] == ["emergency"]
    assert lost["applied_at"] < modes[0]["on_at"] <= lost["removed_at"]
    assert lost["removed_at"] < modes[0]["off_at"] < on["duration"]
    assert all(e["signal"] == "slo_burn chart" for e in on["healing"]["journal"])


@pytest.mark.serial
@pytest.mark.usefixtures("lab_lock")
def test_the_drill_restores_the_primary_record_within_the_rpo_and_rto(tmp_path: Path) -> None:
    marker = new_marker()
    start = time.monotonic()
    done = run_lab(CLINICAL, tmp_path / "drill", marker, "--drill", "--json", timeout=120)
    elapsed = time.monotonic() - start
    assert [] == wait_no_marked(marker)
    assert done.returncode in (0, 3), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert ["on"] == list(result["runs"])
    assert elapsed < 60, elapsed
    drill = result["drill"]
    # Backups every 5 s from the start, the disaster at 12 s: the newest one restored.
    assert drill["backups_taken"] >= 2 and drill["restored_backup"]
    # Against what the hospital wrote down (RTO 15 min, RPO 5 min) and the assessment's figures.
    assert (900.0, 300.0) == (drill["objectives"]["rto"], drill["objectives"]["rpo"])
    assert (600.0, 5.0) == (
        drill["objectives"]["estimated_rto"],
        drill["objectives"]["estimated_rpo"],
    )
    assert 0 <= drill["rpo"] <= 5.0 + 2.0, drill  # the backup interval, plus a backup's time
    assert 0 < drill["rto"] < 20.0, drill  # the restore and a restart: seconds
    # The alerts accepted between the backup and the disaster are the ones the record lost.
    assert drill["lost"] == result["runs"]["on"]["history"]["lost_count"]
    judged = [h for h in result["hypotheses"] if h["hypothesis"].startswith("drill of records")]
    assert 2 == len(judged) and all(h["passed"] for h in judged), judged
