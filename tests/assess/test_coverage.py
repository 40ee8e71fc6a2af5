"""The Monte Carlo's 95% intervals are honest: measured coverage over many seeded runs on models
whose exact figure is known, the time limit is kept, and a 3-of-4 model agrees at the CLI's seed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.assess import analyse, simulate
from buttress.assess.model import ArchitectureSpec
from buttress.assess.montecarlo import mean_interval, t_quantile_975
from buttress.assess.system import System
from buttress.cli import main


def system_of(arch: dict[str, Any]) -> System:
    return System.from_spec(ArchitectureSpec.model_validate(arch))


# 2-of-3 with unit unavailability 0.1: U = 3 q^2 (1 - q) + q^3 = 0.028 exactly.
TWO_OF_THREE = {
    "components": {
        "a": {"mtbf": "90h", "mttr": "10h", "replicas": 3, "redundancy": {"required": 2}}
    }
}
ACTIVE_PASSIVE = {
    "components": {
        "a": {
            "replicas": 2,
            "mtbf": "100h",
            "mttr": "5h",
            "redundancy": {
                "mode": "active-passive",
                "coverage": 0.9,
                "detection": "30m",
                "switchover": "1h",
            },
        }
    }
}


def coverage(arch: dict[str, Any], runs: int, **kwargs: Any) -> float:
    analysis = analyse(system_of(arch), cut_sets=False)
    (name,) = analysis.journeys
    exact = analysis.journeys[name].unavailability
    hits = sum(simulate(analysis, seed=s, **kwargs)[name].contains(exact) for s in range(runs))
    return hits / runs


def test_2_of_3_exact_figure() -> None:
    analysis = analyse(system_of(TWO_OF_THREE), cut_sets=False)
    assert 0.028 == pytest.approx(analysis.journeys["a"].unavailability, abs=1e-12)


def test_fixed_length_intervals_cover_95_percent() -> None:
    # 1,000 independent runs of ten 3-month histories each: the binomial spread of the measured
    # coverage around a true 95% is 0.7%, so [93%, 97%] fails an honest interval rarely.
    cov = coverage(TWO_OF_THREE, 1000, years=10, horizon_years=0.25)
    assert 0.93 <= cov <= 0.97, cov


def test_precision_targeted_intervals_cover_95_percent() -> None:
    # The default run: stop at +-10% (sequential looks at geometrically growing sizes).
    cov = coverage(TWO_OF_THREE, 600, horizon_years=0.25)
    assert 0.93 <= cov <= 0.97, cov


def test_active_passive_chain_intervals_cover_95_percent() -> None:
    cov = coverage(ACTIVE_PASSIVE, 500, years=5, horizon_years=0.25)
    assert 0.93 <= cov <= 0.97, cov


def test_t_quantile_against_tables() -> None:
    # Student's t 97.5% quantiles (any statistics table).
    for df, t in [(1, 12.706), (5, 2.571), (8, 2.306), (10, 2.228), (29, 2.045), (120, 1.980)]:
        assert t == pytest.approx(t_quantile_975(df), abs=1.5e-3)


def test_interval_of_identical_values_is_a_point_and_one_value_is_unbounded() -> None:
    import numpy as np

    mean, low, high = mean_interval(np, np.full((1, 10), 0.25))
    assert (mean[0], low[0], high[0]) == (0.25, 0.25, 0.25)
    _, low, high = mean_interval(np, np.array([[0.5]]))
    assert low[0] == 0 and high[0] == float("inf")


def test_default_seed_agrees_on_3_of_4(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        "architecture:\n  components:\n    a:\n      availability: 0.9\n      mttr: 1h\n"
        "      replicas: 4\n      redundancy: {required: 3}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["assess", str(spec), "--json", "--simulate", "--report-only"]
    )
    assert 0 == result.exit_code, result.output
    (journey,) = json.loads(result.stdout)["journeys"]
    assert journey["unavailability"] == pytest.approx(1 - 0.9477, abs=1e-12)
    assert journey["simulation"]["agrees"] is True
    assert journey["simulation"]["seconds"] < 5


@pytest.mark.serial
def test_max_seconds_is_honoured_within_10_percent() -> None:
    # Rare failures (1e-8 per history-hour): the precision target is out of reach, so only the
    # time limit stops the run.
    rare = {
        "components": {
            f"c{i}": {
                "availability": 0.99999,
                "replicas": 3,
                "depends_on": [f"c{i + 1}"] if i < 29 else [],
            }
            for i in range(30)
        }
    }
    analysis = analyse(system_of(rare), cut_sets=False)
    for limit in (0.5, 1.5):
        began = time.perf_counter()
        sim = simulate(analysis, seed=0, max_seconds=limit)["c0"]
        took = time.perf_counter() - began
        assert 0.9 * limit <= took <= 1.1 * limit, (limit, took)
        assert sim.replicates > 8


def test_components_that_cannot_fail_make_no_spof_or_cut_set(tmp_path: Path) -> None:
    arch = {
        "components": {
            "top": {"availability": 1.0, "depends_on": ["db"]},
            "db": {"availability": 0.999, "replicas": 2},
            "cdn": {"availability": 1.0, "replicas": 2},
        },
        "journeys": {"j": {"entry": "top"}, "k": {"entry": "cdn"}},
    }
    analysis = analyse(system_of(arch))
    assert [] == analysis.journeys["j"].spofs
    assert all(cut.probability > 0 for cut in analysis.journeys["j"].cut_sets)
    assert [] == analysis.journeys["k"].cut_sets
    from buttress.assess import assess

    report = assess(system_of(arch))
    assert [] == report["single_points"]
    (j, k) = report["journeys"]
    assert all("top fails if top" not in c["explanation"] for c in j["cut_sets"])
    assert all(r["frequency_per_year"] > 0 for r in j["risks"])
    assert [] == k["spofs"] and [] == k["risks"]
