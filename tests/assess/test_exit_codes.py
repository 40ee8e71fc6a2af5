"""`buttress assess` exit status, one small model per code: 0 all verdicts pass, 1 a journey
misses its target or an RTO/RPO is breached (named on stderr; --report-only exits 0), 2 bad
input.  The codes are documented in --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.assess.verdicts import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, failed_verdicts
from buttress.cli import main

# One component at 99.99%, a journey asking 99.9%, recovery targets it meets.
PASSING = """\
architecture:
  components:
    web: {availability: 0.9999, mttr: 10m, replicas: 1}
  journeys:
    home:
      entry: web
      target: 0.999
      rto: {instance: 1h}
      rpo: {instance: 0s}
"""

# The same component, a journey asking five nines: missed.
MISSES_TARGET = PASSING.replace("target: 0.999", "target: 0.99999")

# Meets its availability, but an instance takes its MTTR (2h) to recover: RTO 1h breached.
RTO_BREACHED = """\
architecture:
  components:
    web: {availability: 0.99999, mttr: 2h, replicas: 1}
  journeys:
    home:
      entry: web
      target: 0.999
      rto: {instance: 1h}
"""

# A datastore backed up hourly and never replicated: an instance loss loses up to an hour.
RPO_BREACHED = """\
architecture:
  components:
    db:
      kind: datastore
      availability: 0.99999
      mttr: 5m
      replicas: 1
      data: {replication: none, backup_interval: 1h}
  journeys:
    orders:
      entry: db
      target: 0.999
      rpo: {instance: 1m}
"""

BAD = "architecture:\n  components:\n    a:\n      replicas: 2\n      redundancy: {required: 3}\n"


def run(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["assess", str(path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_passing_model_exits_0(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, PASSING)
    assert (EXIT_OK, "") == (code, err)
    assert "home" in out


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (MISSES_TARGET, "journey home: availability 99.9900% misses its target 99.999%"),
        (RTO_BREACHED, "journey home: RTO breached for disruption 'instance' (2h > target 1h)"),
        (RPO_BREACHED, "journey orders: RPO breached for disruption 'instance'"),
    ],
)
def test_failed_verdicts_exit_1_and_are_named(tmp_path: Path, text: str, fragment: str) -> None:
    code, out, err = run(tmp_path, text)
    assert EXIT_FAILED == code
    assert f"FAILED: {fragment}" in err
    assert "Traceback" not in err
    assert out  # the report is still printed in full
    # --json keeps stdout pure JSON; the verdicts go to stderr
    code, out, err = run(tmp_path, text, "--json")
    assert EXIT_FAILED == code
    assert failed_verdicts(json.loads(out))
    assert fragment in err


@pytest.mark.parametrize("text", [MISSES_TARGET, RTO_BREACHED, RPO_BREACHED])
def test_report_only_exits_0_and_still_names_the_failures(tmp_path: Path, text: str) -> None:
    code, out, err = run(tmp_path, text, "--report-only")
    assert EXIT_OK == code
    assert "FAILED: " in err
    assert out


def test_bad_input_exits_2(tmp_path: Path) -> None:
    code, _out, err = run(tmp_path, BAD)
    assert EXIT_BAD_INPUT == code
    assert "architecture.components.a.redundancy.required" in err
    code, _out, _err = run(tmp_path, BAD, "--report-only")  # report-only does not hide errors
    assert EXIT_BAD_INPUT == code


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(main, ["assess", "--help"])
    assert 0 == result.exit_code
    text = " ".join(result.output.split())
    assert "Exit status: 0 every journey meets its target" in text
    assert "1 a journey misses its availability target or an RTO/RPO is breached" in text
    assert "2 bad input" in text
    assert "--report-only" in text


def test_verdicts_with_no_target_are_not_failures() -> None:
    report = {
        "journeys": [
            {
                "name": "j",
                "meets_target": True,
                "availability": 0.999,
                "target": 0.99,
                "recovery": [
                    {
                        "disruption": "zone",
                        "rto_met": None,
                        "rto_seconds": 60.0,
                        "rto_target_seconds": None,
                        "rpo_met": True,
                        "rpo_seconds": 0.0,
                        "rpo_target_seconds": 0.0,
                    }
                ],
            }
        ]
    }
    assert [] == failed_verdicts(report)
