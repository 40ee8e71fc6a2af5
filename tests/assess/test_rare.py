"""Importance sampling for rare outages: unbiased (its intervals cover the exact figure about 95%
of the time), and at least ten times faster than plain Monte Carlo to +-10% at U ~ 1e-4."""

from __future__ import annotations

import time
from typing import Any

import pytest

from buttress.assess import analyse, simulate
from buttress.assess.model import ArchitectureSpec
from buttress.assess.montecarlo import importance_plan, prepare
from buttress.assess.system import System

# Two units, MTBF 2400 h, MTTR 24 h: U = (24/2424)^2 ~ 9.8e-5.
PAIR = {"components": {"a": {"mtbf": "2400h", "mttr": "24h", "replicas": 2}}}
MIXED = {
    "domains": {
        "r": {"kind": "region", "availability": 0.99999},
        "za": {"parent": "r", "availability": 0.9995},
        "zb": {"parent": "r", "availability": 0.9995},
    },
    "components": {
        "web": {
            "replicas": 3,
            "placement": ["za", "zb"],
            "redundancy": {"required": 2},
            "mtbf": "2000h",
            "mttr": "2h",
            "depends_on": ["db"],
        },
        "db": {
            "replicas": 2,
            "mtbf": "3000h",
            "mttr": "4h",
            "redundancy": {"mode": "active-passive", "coverage": 0.99},
        },
    },
    "journeys": {"j": {"entry": "web"}},
}


def analysis_of(arch: dict[str, Any]) -> Any:
    return analyse(System.from_spec(ArchitectureSpec.model_validate(arch)))


def test_the_plan_biases_the_likely_cut() -> None:
    import numpy as np

    analysis = analysis_of(PAIR)
    events, _, _ = prepare(np, analysis, ["a"])
    tilt, window = importance_plan(analysis, events, ["a"])
    q = 24 / 2424
    assert 2 == len(tilt)
    for q_e, theta, _ in tilt.values():
        assert (q, 0.5) == (pytest.approx(q_e, rel=1e-12), theta)
    assert 6.0 == window  # a quarter of the 24 h repair


def test_importance_sampling_intervals_cover_95_percent() -> None:
    analysis = analysis_of(PAIR)
    exact = analysis.journeys["a"].unavailability
    runs = 500
    hits = sum(
        simulate(analysis, seed=s, importance=True)["a"].contains(exact) for s in range(runs)
    )
    assert 0.93 <= hits / runs <= 0.97, hits / runs


def test_importance_sampling_agrees_on_zones_and_a_failover_pair() -> None:
    analysis = analysis_of(MIXED)
    exact = analysis.journeys["j"].unavailability
    hits = sum(simulate(analysis, seed=s, importance=True)["j"].contains(exact) for s in range(20))
    assert hits >= 17


@pytest.mark.serial
def test_ten_times_faster_than_plain_monte_carlo_at_1e_4() -> None:
    analysis = analysis_of(PAIR)

    def cpu(importance: bool) -> float:
        began = time.process_time()
        for s in range(6):
            sim = simulate(analysis, seed=s, importance=importance)["a"]
            assert sim.relative_half_width <= 0.1
        return time.process_time() - began

    # The seeds fix the work each way needs, so other load on the machine can only add to a run's
    # CPU time: the least of three interleaved runs is each way's cost (one run each read 8.7x
    # once on a busy machine, against 11-12x quiet).
    runs = [(cpu(False), cpu(True)) for _ in range(3)]
    plain = min(p for p, _ in runs)
    biased = min(b for _, b in runs)
    assert plain >= 10 * biased, runs


def test_cli_rare_flag(tmp_path: Any) -> None:
    import json

    from click.testing import CliRunner

    from buttress.cli import main

    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        "architecture:\n  components:\n    a: {mtbf: 2400h, mttr: 24h, replicas: 2}\n", "utf-8"
    )
    result = CliRunner().invoke(
        main, ["assess", str(spec), "--json", "--simulate", "--rare", "--report-only"]
    )
    assert 0 == result.exit_code, result.output
    (j,) = json.loads(result.stdout)["journeys"]
    assert j["simulation"]["agrees"] is True
    assert j["simulation"]["relative_half_width"] <= 0.1
