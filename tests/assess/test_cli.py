"""`buttress assess`: every output format on the example system, and bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assess" / "reliability.yaml"


@pytest.fixture(scope="module")
def report() -> dict[str, object]:
    result = CliRunner().invoke(main, ["assess", str(EXAMPLE), "--json", "--report-only"])
    assert 0 == result.exit_code, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def journey(report: dict[str, object], name: str) -> dict[str, object]:
    found = [j for j in report["journeys"] if j["name"] == name]  # type: ignore[attr-defined]
    assert 1 == len(found)
    return found[0]  # type: ignore[no-any-return]


def test_spofs_are_explained_in_words(report: dict[str, object]) -> None:
    browse = journey(report, "browse")
    texts = [c["explanation"] for c in browse["spofs"]]  # type: ignore[index]
    assert (
        "browse fails if zone use-a fails, because edge requires web, web requires catalog, "
        "catalog requires catalog-db, catalog-db has both replicas in use-a, so no standby is "
        "left to fail over to"
    ) in texts
    assert all(c["order"] == 1 for c in browse["spofs"])  # type: ignore[index]
    checkout = journey(report, "checkout")
    assert any("payments" in c["explanation"] for c in checkout["spofs"])  # type: ignore[index]


def test_figures_are_consistent(report: dict[str, object]) -> None:
    for j in report["journeys"]:  # type: ignore[attr-defined]
        assert 0 < j["availability"] < 1
        assert j["downtime_minutes_per_year"] == pytest.approx(
            (1 - j["availability"]) * 525_600, rel=1e-9
        )
        assert j["full_service_availability"] <= j["availability"] + 1e-15
        gains = [r["gain"] for r in j["recommendations"]]
        assert gains == sorted(gains, reverse=True)
        assert all(g > 0 for g in gains)
        bad = [r["bad_minutes_per_year"] for r in j["risks"]]
        assert bad == sorted(bad, reverse=True)
        for r in j["risks"]:
            assert 1 <= r["severity"] <= 10 and 1 <= r["occurrence"] <= 10
            assert r["rpn"] == r["severity"] * r["occurrence"] * r["detection"]
        assert [v["disruption"] for v in j["recovery"]] == ["instance", "zone", "region", "deploy"]


def test_recommendations_fix_the_zone_spof(report: dict[str, object]) -> None:
    titles = [r["title"] for r in journey(report, "browse")["recommendations"]]  # type: ignore[index]
    assert "spread catalog-db's replicas across zones (use-a, use-b)" in titles
    top = journey(report, "browse")["recommendations"][0]  # type: ignore[index]
    assert top["reaches_target"] is True


def test_rto_rpo_verdicts(report: dict[str, object]) -> None:
    checkout = {v["disruption"]: v for v in journey(report, "checkout")["recovery"]}  # type: ignore[index]
    # orders-db replicates synchronously and survives a zone: no data lost.
    assert 0.0 == checkout["zone"]["rpo_seconds"]
    assert checkout["zone"]["rpo_met"] is True
    # One region only: a region outage waits for the region to come back (6 h > 1 h target).
    assert 6 * 3600 == pytest.approx(checkout["region"]["rto_seconds"])
    assert checkout["region"]["rto_met"] is False


def test_text_and_markdown_show_the_same_numbers(report: dict[str, object]) -> None:
    runner = CliRunner()
    text = runner.invoke(main, ["assess", str(EXAMPLE)]).stdout
    md = runner.invoke(main, ["assess", str(EXAMPLE), "--markdown"]).stdout
    minutes = f"{journey(report, 'checkout')['downtime_minutes_per_year']:.1f}"
    assert minutes in text and minutes in md
    assert "single points of failure" in text
    assert md.startswith("# Availability assessment")
    assert "| journey | target |" in md


def test_html_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["assess", str(EXAMPLE), "--html", str(out), "--report-only"])
    assert 0 == result.exit_code, result.output
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") >= 3  # the graph and one chart per journey
    assert 'aria-label="dependency graph"' in html
    assert "catalog-db" in html and "min/yr" in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)
    assert "<script" not in html


def test_simulate_reports_an_interval(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["assess", str(EXAMPLE), "--json", "--simulate", "--precision", "0.3", "--report-only"],
    )
    assert 0 == result.exit_code, result.output
    for j in json.loads(result.stdout)["journeys"]:
        sim = j["simulation"]
        low, high = sim["ci95"]
        assert low <= sim["unavailability"] <= high
        assert sim["agrees"] is (low <= j["unavailability"] <= high)


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "reliability.yaml"
    bad.write_text(
        "architecture:\n  components:\n    a:\n      replicas: 2\n"
        "      redundancy: {required: 3}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "assess", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == proc.returncode
    assert "Traceback" not in proc.stderr
    assert f"{bad}:5:" in proc.stderr
    assert "architecture.components.a.redundancy.required" in proc.stderr


def test_conflicting_formats_are_refused() -> None:
    result = CliRunner().invoke(main, ["assess", str(EXAMPLE), "--json", "--markdown"])
    assert 2 == result.exit_code
    assert "choose one output format" in result.output
