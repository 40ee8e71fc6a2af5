"""Time: A(T) and the mean availability over [0, T] against closed forms, mission reliability by
simulation against exact figures, Weibull and lognormal repairs in the YAML (the long-run figure
depends only on the mean), and bad mission or repair input located."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.assess import analyse, simulate
from buttress.assess.mission import mean_availability, simulate_mission, wilson_interval
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.cli import main
from buttress.errors import SpecError

LAM, MU = 1 / 100, 1 / 8
S = LAM + MU


def analysis_of(component: dict[str, Any]) -> Any:
    arch = {"components": {"a": {"mtbf": "100h", "mttr": "8h", **component}}}
    return analyse(System.from_spec(ArchitectureSpec.model_validate(arch)), cut_sets=False)


@pytest.mark.parametrize("t", [0.5, 10.0, 200.0, 8760.0])
def test_mean_availability_of_one_unit_closed_form(t: float) -> None:
    expected = MU / S + LAM / (S * S * t) * (1 - math.exp(-S * t))
    assert expected == pytest.approx(mean_availability(analysis_of({}), "a", t), abs=1e-10)


@pytest.mark.parametrize("t", [1.0, 30.0, 720.0])
def test_mean_availability_of_a_pair_closed_form(t: float) -> None:
    # U(t) = (lam/s)^2 (1 - e^-st)^2 for two independent units up at 0; integrate term by term.
    integral = (LAM / S) ** 2 * (
        t - 2 * (1 - math.exp(-S * t)) / S + (1 - math.exp(-2 * S * t)) / (2 * S)
    )
    got = mean_availability(analysis_of({"replicas": 2}), "a", t)
    assert 1 - integral / t == pytest.approx(got, abs=1e-10)


def test_mean_availability_of_a_markov_group_matches_the_chain_integral() -> None:
    # Quadrature of the BDD's A(t) against Van Loan's integral of the group's own chain.
    redundancy = {"mode": "active-passive", "coverage": 0.9, "switchover": "10m"}
    analysis = analysis_of({"replicas": 2, "redundancy": redundancy, "repair": {"crews": 1}})
    chain = analysis.system.components["a"].chain()
    for t in (2.0, 100.0, 5000.0):
        assert chain.mean_availability(t) == pytest.approx(
            mean_availability(analysis, "a", t), abs=1e-10
        )
        assert chain.availability_at(t) == pytest.approx(analysis.availability_at("a", t))


def test_simulated_mission_reliability_agrees_with_exact_figures() -> None:
    t = 50.0
    single = analysis_of({})
    sim = simulate_mission(single, t, runs=4000, seed=1)["a"]
    assert sim.reliability_low <= math.exp(-LAM * t) <= sim.reliability_high
    assert sim.mean_availability_low <= mean_availability(single, "a", t)
    assert mean_availability(single, "a", t) <= sim.mean_availability_high
    group = analysis_of({"replicas": 2, "redundancy": {"mode": "active-passive", "coverage": 0.8}})
    exact = group.system.components["a"].chain().reliability(t)
    sim = simulate_mission(group, t, runs=4000, seed=2)["a"]
    assert sim.reliability_low <= exact <= sim.reliability_high
    assert 0.5 < exact < 0.95  # a figure the simulation can get wrong


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(0, 100)
    assert lo == pytest.approx(0, abs=1e-12) and 0.03 < hi < 0.04  # about the "rule of three"
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


@pytest.mark.parametrize(
    "repair",
    [
        {"distribution": "weibull", "shape": 0.7},
        {"distribution": "weibull", "shape": 3.0},
        {"distribution": "lognormal", "shape": 1.2},
        {"distribution": "deterministic"},
    ],
)
def test_non_exponential_repairs_keep_the_long_run_figure(repair: dict[str, Any]) -> None:
    # Two units, 2-of-2 and 1-of-2: independent alternating renewals, so the steady state depends
    # only on MTTR; the simulation with the stated repair law (stationary start from the
    # length-biased residual) agrees.
    analysis = analysis_of({"replicas": 2, "redundancy": {"required": 2}, "repair": repair})
    exact = analysis.journeys["a"].unavailability
    assert 1 - (MU / S) ** 2 == pytest.approx(exact, rel=1e-12)
    sim = simulate(analysis, seed=4, years=60, horizon_years=0.5)["a"]
    assert sim.contains(exact), (sim, exact)


def test_the_repair_law_is_read_from_the_yaml() -> None:
    arch = {
        "domains": {"z": {"availability": 0.999, "repair": {"distribution": "deterministic"}}},
        "components": {
            "a": {
                "availability": 0.99,
                "placement": "z",
                "repair": {"distribution": "lognormal", "shape": 0.5},
            }
        },
    }
    system = System.from_spec(ArchitectureSpec.model_validate(arch))
    assert ("lognormal", 0.5) == (system.components["a"].unit.law.kind, 0.5)
    assert "deterministic" == system.domains["z"].unit.law.kind


def test_cli_mission_report(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        "architecture:\n  components:\n    a: {mtbf: 100h, mttr: 8h, replicas: 2}\n"
        "  journeys:\n    j: {entry: a, mission: 30d}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main, ["assess", str(spec), "--json", "--simulate", "--report-only"]
    )
    assert 0 == result.exit_code, result.output
    (j,) = json.loads(result.stdout)["journeys"]
    m = j["mission"]
    assert 720.0 == m["hours"]
    assert j["availability"] < m["mean_availability"] < 1  # all up at 0: above the long run
    lo, hi = m["simulation"]["mean_availability_ci95"]
    assert lo <= m["mean_availability"] <= hi
    text = CliRunner().invoke(main, ["assess", str(spec), "--mission", "2h", "--report-only"])
    assert "Mission (exact, from an all-up start)" in text.output and "2h" in text.output


def test_bad_mission_and_repair_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["assess", "x.yaml", "--mission", "-3h"])
    assert 2 == result.exit_code and "--mission" in result.output
    cases = [
        ("j: {entry: a, mission: -5m}", "architecture.journeys.j.mission", 5),
        ("j: {entry: a, mission: 0s}", "architecture.journeys.j.mission", 5),
    ]
    base = "architecture:\n  components:\n    a:\n      availability: 0.99\n  journeys:\n    {}\n"
    for line, field, lineno in cases:
        path = tmp_path / "r.yaml"
        path.write_text(base.format(line), encoding="utf-8")
        with pytest.raises(SpecError) as info:
            load_architecture(path)
        assert (field, lineno + 1) == (info.value.field, info.value.line)
    repairs = [
        ("repair: {distribution: weibull}", "architecture.components.a.repair"),
        ("repair: {distribution: exponential, shape: 2}", "architecture.components.a.repair"),
        ("repair: {distribution: weibull, shape: 0}", "architecture.components.a.repair.shape"),
        (
            "replicas: 2\n      repair: {crews: 1, distribution: deterministic}",
            "architecture.components.a.repair.distribution",
        ),
    ]
    for text, field in repairs:
        path = tmp_path / "r.yaml"
        path.write_text(
            f"architecture:\n  components:\n    a:\n      availability: 0.99\n      {text}\n",
            encoding="utf-8",
        )
        with pytest.raises(SpecError) as info:
            load_architecture(path)
        assert field == info.value.field, text
