"""Deterministic failure and repair schedules, nothing ageing while the journey is down, against
closed forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.assess import analyse
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.schedules import scheduled, scheduled_journeys
from buttress.assess.system import System
from buttress.cli import main
from buttress.errors import SpecError


def analysis_of(arch: dict[str, Any]) -> Any:
    return analyse(System.from_spec(ArchitectureSpec.model_validate(arch)), cut_sets=False)


SERIES = {
    "components": {
        "a": {"schedule": {"every": "100h", "repair": "2h"}, "depends_on": ["b"]},
        "b": {"schedule": {"every": "150h", "repair": "3h", "first": "155h"}, "depends_on": ["c"]},
        "c": {"schedule": {"every": "400h", "repair": "5h", "first": "403h"}},
    }
}
# (The first failures are offset so that no two units ever fail at the same operating instant.)


def test_series_under_suspended_ageing_closed_form() -> None:
    # Nothing ages while the line is down, so failures never overlap: A = 1 / (1 + sum R_i/E_i).
    analysis = analysis_of(SERIES)
    result = scheduled(analysis, "a")
    assert result.periodic
    expected = 1 / (1 + 2 / 100 + 3 / 150 + 5 / 400)
    assert expected == pytest.approx(result.availability, abs=1e-12)
    # Independent random phases (the steady-state table) give the product instead.
    product = (100 / 102) * (150 / 153) * (400 / 405)
    assert product == pytest.approx(analysis.journeys["a"].availability, abs=1e-12)
    assert result.availability > product


def test_coincident_failures_share_their_downtime() -> None:
    # Same period and phase: both fail together and the line waits for the longer repair only.
    arch = {
        "components": {
            "a": {"schedule": {"every": "100h", "repair": "2h"}, "depends_on": ["b"]},
            "b": {"schedule": {"every": "100h", "repair": "3h"}},
        }
    }
    assert 100 / 103 == pytest.approx(scheduled(analysis_of(arch), "a").availability, abs=1e-12)


def test_mission_mean_availability_of_a_series() -> None:
    analysis = analysis_of(SERIES)
    # First 100 h up, then a's 2 h repair (b and c idle), up again: 120 h holds 2 h down.
    assert 118 / 120 == pytest.approx(scheduled(analysis, "a", 120.0).mean_availability)
    assert 1.0 == scheduled(analysis, "a", 50.0).mean_availability


@pytest.mark.parametrize(("first_b", "expected"), [("50h", 1.0), ("100h", 100 / 110)])
def test_parallel_pair_phases(first_b: str, expected: float) -> None:
    # Staggered, the two repairs never overlap: always up.  In phase, both fail together and the
    # pair is down for the 10 h repair every 110 h.
    arch = {
        "components": {
            "s": {"members": ["a", "b"]},
            "a": {"schedule": {"every": "100h", "repair": "10h"}},
            "b": {"schedule": {"every": "100h", "repair": "10h", "first": first_b}},
        }
    }
    analysis = analysis_of(arch)
    assert ["s"] == scheduled_journeys(analysis)
    assert expected == pytest.approx(scheduled(analysis, "s").availability, abs=1e-12)


def test_a_random_event_means_no_schedule_figure(tmp_path: Path) -> None:
    arch = {
        "components": {
            "a": {"schedule": {"every": "100h", "repair": "2h"}, "depends_on": ["b"]},
            "b": {"availability": 0.999},
        }
    }
    analysis = analysis_of(arch)
    assert [] == scheduled_journeys(analysis)
    with pytest.raises(ValueError, match="random event"):
        scheduled(analysis, "a")
    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        "architecture:\n  components:\n    a: {schedule: {every: 100h, repair: 2h}}\n"
        "  journeys:\n    j: {entry: a, mission: 101h}\n",
        "utf-8",
    )
    result = CliRunner().invoke(main, ["assess", str(spec), "--json", "--report-only"])
    (j,) = json.loads(result.stdout)["journeys"]
    assert 100 / 102 == pytest.approx(j["schedule"]["availability"])
    assert 100 / 101 == pytest.approx(j["schedule"]["mean_availability"])


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("schedule: {every: 100h, repair: -1h}", "architecture.components.a.schedule.repair"),
        ("schedule: {every: 0s, repair: 1h}", "architecture.components.a.schedule.every"),
        (
            "schedule: {every: 10h, repair: 1h, first: -2h}",
            "architecture.components.a.schedule.first",
        ),
        ("schedule: {every: 10h, repair: 1h}\n      mtbf: 5h", "architecture.components.a"),
        (
            "schedule: {every: 10h, repair: 1h}\n      replicas: 2",
            "architecture.components.a.schedule",
        ),
    ],
)
def test_bad_schedules_are_located(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(f"architecture:\n  components:\n    a:\n      {text}\n", "utf-8")
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    assert field == info.value.field
    assert info.value.line in (3, 4)
    result = CliRunner().invoke(main, ["assess", str(path)])
    assert 2 == result.exit_code and "Traceback" not in result.output
