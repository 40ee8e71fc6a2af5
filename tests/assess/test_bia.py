"""The business impact analysis of a journey (NIST SP 800-34): RTO + WRT within the MTD, both as
declared (a located error) and as estimated (a verdict in the report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.assess import load_architecture
from buttress.cli import main
from buttress.errors import SpecError

SPEC = """\
version: 1
architecture:
  components:
    api:
      replicas: 1
      mtbf: 2000h
      mttr: 4h
      depends_on: {db: hard}
    db:
      kind: datastore
      replicas: 2
      mtbf: 4000h
      mttr: 8h
      redundancy: {mode: active-passive, detection: 5m, switchover: 10m, coverage: 0.95}
      data: {replication: async, lag: 30s, backup_interval: 1h}
  journeys:
    benefits:
      entry: api
      target: 0.999
      rto: {instance: 12h}
      rpo: {instance: 5m}
      bia: {mtd: 24h, wrt: 8h, impact: high}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def recovery(tmp_path: Path, text: str) -> dict[str, dict[str, object]]:
    done = CliRunner().invoke(main, ["assess", str(write(tmp_path, text)), "--json"])
    assert done.exit_code in (0, 1), done.output
    (journey,) = json.loads(done.stdout)["journeys"]
    return {v["disruption"]: v for v in journey["recovery"]}


def test_an_rto_that_with_the_wrt_overruns_the_mtd_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_architecture(
            write(tmp_path, SPEC.replace("rto: {instance: 12h}", "rto: {instance: 20h}"))
        )
    err = info.value
    assert ("architecture.journeys.benefits.rto.instance", 20) == (err.field, err.line)
    assert "RTO 20h plus the work recovery time 8h exceeds the maximum tolerable downtime 24h" in (
        err.message
    )


def test_the_estimated_recovery_is_judged_against_the_mtd(tmp_path: Path) -> None:
    rows = recovery(tmp_path, SPEC)
    # A single api instance waits for its repair: 4 h, plus 8 h of work recovery, within 24 h.
    inst = rows["instance"]
    assert inst["rto_seconds"] == pytest.approx(4 * 3600)
    assert (inst["mtd_seconds"], inst["wrt_seconds"], inst["mtd_met"]) == (86400, 8 * 3600, True)
    # A shorter MTD: 4 h + 8 h overruns 10 h, whatever the declared RTO says.
    rows = recovery(tmp_path, SPEC.replace("mtd: 24h", "mtd: 10h").replace("{instance: 12h}", "{}"))
    assert rows["instance"]["mtd_met"] is False
    assert rows["deploy"]["mtd_met"] is False


def test_without_a_bia_there_is_no_mtd_verdict_and_the_text_says_so_when_there_is(
    tmp_path: Path,
) -> None:
    plain = SPEC.replace("      bia: {mtd: 24h, wrt: 8h, impact: high}\n", "")
    assert recovery(tmp_path, plain)["instance"]["mtd_met"] is None
    text = CliRunner().invoke(main, ["assess", str(write(tmp_path, SPEC))]).output
    assert "RTO+WRT" in text and "MTD" in text and "NIST SP 800-34" in text
    assert "RTO+WRT" not in CliRunner().invoke(main, ["assess", str(write(tmp_path, plain))]).output
