"""Drills on real SQLite files: the disaster injected, the restore measured, the verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.dr.drill import DrillConfig, run_drill
from buttress.dr.drill_sqlite import SqliteDrillTarget
from buttress.dr.report import Objectives, build_report, load_objectives, render_html, render_text

SPEC = """\
architecture:
  components:
    app: {availability: 0.999, depends_on: {db: hard}}
    db:
      kind: datastore
      availability: 0.999
      mttr: 30m
      data: {replication: none, backup_interval: 500ms}
  journeys:
    orders:
      entry: app
      rto: {instance: 5s, deploy: 10s}
      rpo: {instance: 2s, deploy: 2s}
"""

QUICK = {"before": 1.2, "backup_interval": 0.5, "after": 0.3}


def _drill(app_db: Path, tmp_path: Path, guard: bool = True, **kw: object):  # type: ignore[no-untyped-def]
    ws = tmp_path / "ws"
    ws.mkdir()
    config = DrillConfig(**{**QUICK, **kw})  # type: ignore[arg-type]
    return run_drill(SqliteDrillTarget(app_db, ws, guard=guard), config)


def test_delete_drill_restores_loses_nothing_acknowledged_after_and_meets_the_spec(
    app_db: Path, tmp_path: Path
) -> None:
    (tmp_path / "reliability.yaml").write_text(SPEC)
    objectives = load_objectives(tmp_path / "reliability.yaml", None, "delete")
    assert (objectives.rto, objectives.rpo) == (5.0, 2.0)
    assert objectives.estimated_rpo == pytest.approx(0.5)  # the model's backup interval
    result = _drill(app_db, tmp_path, disruption="delete")
    report = build_report(result, objectives)
    assert result.lost_after_disaster == []
    assert result.rto is not None and result.rto < 5.0
    # Lost data is what was acknowledged after the last backup: under a backup interval or so.
    assert result.rpo < QUICK["backup_interval"] + 0.3
    assert result.checker["revived_count"] == 0 and result.checker["unexpected_count"] == 0
    assert report["passed"], report["failures"]
    text = render_text(report)
    assert "RTO" in text and "5.000 s" in text and "PASSED" in text
    assert "<table>" in render_html(report)
    assert app_db.stat().st_size > 0  # the drill broke a scratch copy, never the database given


def test_without_the_guard_writes_into_the_deleted_file_are_acknowledged_and_lost(
    app_db: Path, tmp_path: Path
) -> None:
    result = _drill(app_db, tmp_path, guard=False, disruption="delete")
    report = build_report(result, Objectives())
    assert result.lost_after_disaster  # acknowledged after the disaster, then gone
    assert not report["passed"]
    assert any("acknowledged after the disaster" in f for f in report["failures"])


def test_point_in_time_restore_matches_the_sentinel_oracle(app_db: Path, tmp_path: Path) -> None:
    result = _drill(app_db, tmp_path, disruption="corrupt", point_in_time=0.6)
    pitr = result.pitr
    assert pitr is not None and pitr["ok"], pitr
    assert pitr["restored_through"] > 0
    assert all(at <= pitr["target_at"] for at in result.restored.sentinels.values())
    assert result.restored.snapshot_at <= pitr["target_at"]
    assert result.rto is not None


def test_cli_drill_json_and_html(app_db: Path, tmp_path: Path) -> None:
    (tmp_path / "reliability.yaml").write_text(SPEC)
    html = tmp_path / "drill.html"
    r = CliRunner().invoke(
        main,
        [
            "dr", "drill", str(app_db), "--disruption", "delete",
            "--spec", str(tmp_path / "reliability.yaml"), "--before", "1s",
            "--backup-interval", "500ms", "--json", "--html", str(html),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["judged_as"] == "instance" and report["objectives"]["rto"] == 5.0
    assert report["measured"]["rto"] < 5.0
    assert "Disaster drill: delete" in html.read_text()


def test_cli_drill_unknown_disruption_is_one_line_exit_2(app_db: Path) -> None:
    r = CliRunner().invoke(main, ["dr", "drill", str(app_db), "--disruption", "flood"])
    assert r.exit_code == 2
    assert r.output == (
        "error: invalid --disruption='flood': unknown disruption type; choose delete, corrupt\n"
    )
