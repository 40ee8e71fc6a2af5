"""``buttress report`` with lab runs and drills: a real ``buttress dr drill --json`` report and lab
``result.json`` files, each counted in the period it ran in (or the previous one), with the files
that are neither listed as skipped."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.incident import IncidentStore
from buttress.incident.exercises import drill_results, exercises, lab_results, schedule

DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]


def _lab(out: Path, start: float, verdict: str, *, drill: dict[str, Any] | None = None) -> None:
    out.mkdir(parents=True)
    result = {
        "file": "examples/shop/reliability.yaml",
        "runs": {"off": {"wall_start": start + 40}, "on": {"wall_start": start}},
        "hypotheses": [{"passed": True}, {"passed": verdict == "passed"}, {"passed": None}],
        "verdict": verdict,
        "drill": drill,
    }
    (out / "result.json").write_text(json.dumps(result), encoding="utf-8")


def _real_drill(tmp: Path, out: Path) -> dict[str, Any]:
    db = tmp / "orders.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    result = CliRunner().invoke(
        main,
        ["dr", "drill", str(db), "--disruption", "delete", "--before", "0.5s",
         "--backup-interval", "0.3s", "--rto", "30s", "--rpo", "5s", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out.write_text(result.stdout, encoding="utf-8")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_report_counts_labs_and_drills_per_period(tmp_path: Path) -> None:
    now = time.time()
    labs, drills = tmp_path / "labs", tmp_path / "drills"
    drill_figures = {"target": "datastore", "rto": 4.2, "rpo": 5.0,
                     "objectives": {"rto": 60.0, "rpo": 10.0}}  # fmt: skip
    _lab(labs / "monday", now - 2 * DAY, "passed", drill=drill_figures)
    _lab(labs / "tuesday", now - 1 * DAY, "failed")
    _lab(labs / "last-week", now - 9 * DAY, "passed")  # the previous period of 7 days
    _lab(labs / "long-ago", now - 40 * DAY, "passed")  # in neither
    (labs / "broken").mkdir()
    (labs / "broken" / "result.json").write_text("{torn", encoding="utf-8")
    drills.mkdir()
    report = _real_drill(tmp_path, drills / "orders.json")
    (drills / "notes.json").write_text('{"not": "a drill"}', encoding="utf-8")

    rows, skipped = lab_results([labs])
    assert [Path(r["file"]).parent.name for r in rows] == ["long-ago", "last-week", "monday",
                                                           "tuesday"]  # fmt: skip
    assert [Path(s["file"]).parent.name for s in skipped] == ["broken"]
    monday = rows[2]
    assert monday["time"] == now - 2 * DAY  # the earliest run's start
    assert (monday["held"], monday["failed"], monday["inconclusive"]) == (2, 0, 1)
    assert monday["drill"] == drill_figures
    d_rows, d_skipped = drill_results([drills])
    assert [Path(s["file"]).name for s in d_skipped] == ["notes.json"]
    [drill] = d_rows
    assert drill["time"] == report["disaster_at"] and now - 60 < drill["time"] <= time.time()
    assert drill["rto"] == report["measured"]["rto"] and drill["passed"] is True
    week = exercises(rows, d_rows, now - 7 * DAY, now + 60)
    assert (len(week["labs"]), week["labs_passed"], week["drills_passed"]) == (2, 1, 1)

    store = tmp_path / "inc.db"
    IncidentStore(store).close()
    base = ["report", "--store", str(store), "--since", "7d", "--until", str(now + 60),
            "--lab", str(labs), "--drills", str(drills)]  # fmt: skip
    result = CliRunner().invoke(main, [*base, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [r["verdict"] for r in data["period"]["exercises"]["labs"]] == ["passed", "failed"]
    assert [r["verdict"] for r in data["previous"]["exercises"]["labs"]] == ["passed"]
    assert data["period"]["exercises"]["drills_passed"] == 1
    assert len(data["skipped"]) == 2
    text = CliRunner().invoke(main, base).output
    assert "Lab runs: 2, 1 passed (previous period: 1, 1 passed)" in text
    assert "drill of datastore: RTO 4.2s (objective 60s), RPO 5.0s (objective 10s)" in text
    assert "Drills: 1, 1 passed (previous period: 0, 0 passed)" in text
    assert "skipped" in text and "not a drill report" in text


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    store = tmp_path / "inc.db"
    IncidentStore(store).close()
    result = CliRunner().invoke(
        main, ["report", "--store", str(store), "--drills", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2
    assert "--drills" in result.output and "no such file" in result.output
    assert "Traceback" not in result.output


def test_the_drill_schedule_is_met_overdue_or_missed() -> None:
    quarter = 90 * DAY
    now = 1_800_000_000.0
    met = schedule([now - 200 * DAY, now - 120 * DAY, now - 40 * DAY], quarter, now)
    assert ("met", 3, []) == (met["status"], met["held"], met["late"])
    assert now - 40 * DAY == met["last"] and now + 50 * DAY == met["due"]
    overdue = schedule([now - 100 * DAY], quarter, now)
    assert "overdue" == overdue["status"] and now - 10 * DAY == overdue["due"]
    missed = schedule([now - 250 * DAY, now - 30 * DAY], quarter, now)
    assert "missed" == missed["status"]
    assert [{"after": now - 250 * DAY, "next": now - 30 * DAY, "gap": 220 * DAY}] == missed["late"]
    assert "none" == schedule([], quarter, now)["status"]
    # A drill after the report's end does not count for it.
    assert "none" == schedule([now + DAY], quarter, now)["status"]


def test_report_says_whether_the_specs_drill_schedule_was_kept(tmp_path: Path) -> None:
    now = time.time()
    labs = tmp_path / "evidence"
    figures = {"target": "primary", "rto": 1.0, "rpo": 0.0, "objectives": {"rto": 300.0,
               "rpo": 0.0}}  # fmt: skip
    _lab(labs / "q1", now - 150 * DAY, "passed", drill=figures)
    _lab(labs / "q2", now - 20 * DAY, "passed", drill=figures)
    _lab(labs / "plain-run", now - 5 * DAY, "passed")  # not a drill: does not count
    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        (ROOT / "examples" / "government" / "reliability.yaml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    store = tmp_path / "inc.db"
    IncidentStore(store).close()
    base = ["report", "--store", str(store), "--spec", str(spec), "--lab", str(labs)]
    result = CliRunner().invoke(main, [*base, "--json"])
    assert result.exit_code == 0, result.output
    sched = json.loads(result.output)["drill_schedule"]
    assert ("missed", 2, 90 * DAY) == (sched["status"], sched["held"], sched["every"])
    assert 130 * DAY == pytest.approx(sched["late"][0]["gap"])
    text = CliRunner().invoke(main, base).output
    assert "Drill schedule (every 90 days): MISSED, 2 drill(s) held" in text
    assert "late: 3120.0h from" in text
