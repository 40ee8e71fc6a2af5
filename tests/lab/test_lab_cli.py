"""``buttress lab`` as users run it: a real subprocess, its stdout, stderr and exit status."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from click.testing import CliRunner

from buttress.cli import main
from buttress.lab.cli import ProgressLine
from buttress.lab.sim import ScenarioReport, render_table, to_json


def buttress(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_json_from_the_command_equals_the_api_run_in_another_process(
    storm_report: ScenarioReport,
) -> None:
    done = buttress("lab", "--json", "--seed", "1")
    assert 0 == done.returncode, done.stderr
    assert to_json(storm_report) == done.stdout.rstrip("\n")
    doc = json.loads(done.stdout)
    assert "retry-storm" == doc["scenario"]
    rows = {r["name"]: r for r in doc["strategies"]}
    assert rows["buttress"]["load_amplification"] <= 1.25
    assert rows["naive"]["load_amplification"] > 2.5


def test_the_table_shows_every_strategy_and_figure(storm_report: ScenarioReport) -> None:
    table = render_table(storm_report)
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    rows = lines[header + 2 : header + 7]
    assert ["no-retry", "naive", "backoff", "budget", "buttress"] == [r.split()[0] for r in rows]
    naive = storm_report.result("naive")
    assert f"{naive.load_amplification:.2f}x" in rows[1]
    assert "never (> 20 s)" in rows[1]
    assert f"{storm_report.result('buttress').success_rate * 100:.1f}%" in rows[4]


def test_list_names_the_scenarios() -> None:
    done = CliRunner().invoke(main, ["lab", "--list"])
    assert 0 == done.exit_code
    assert ["retry-storm", "shared-breaker", "slow-dependency"] == [
        line.split("  ")[0] for line in done.output.splitlines()
    ]


def test_unknown_scenario_is_one_clear_message_and_status_2() -> None:
    done = buttress("lab", "--scenario", "retry-strom")
    assert 2 == done.returncode
    assert "" == done.stdout
    assert (
        "error: unknown scenario 'retry-strom'; did you mean 'retry-storm'? "
        "(known: retry-storm, shared-breaker, slow-dependency)\n" == done.stderr
    )


def test_a_negative_seed_is_refused_by_name() -> None:
    done = CliRunner().invoke(main, ["lab", "--seed", "-3"])
    assert 2 == done.exit_code
    assert "--seed" in done.output
    assert "Traceback" not in done.output


def test_progress_appears_only_for_slow_runs() -> None:
    quiet = io.StringIO()
    line = ProgressLine(quiet, delay=3600.0)
    line("naive", 0.5)
    line.close()
    assert "" == quiet.getvalue()

    shown = io.StringIO()
    line = ProgressLine(shown, delay=0.0, label="lab x")
    for stage, fraction in [("naive", 0.25), ("naive", 0.4), ("backoff", 0.5), ("done", 1.0)]:
        line(stage, fraction)
    line.close()
    assert "lab x: naive 25%\nlab x: backoff 50%\nlab x: done 100%\n" == shown.getvalue()
