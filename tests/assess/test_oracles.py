"""Published figures as oracles, for the closed forms, the full model and the Monte Carlo."""

from __future__ import annotations

import math
from typing import Any

import pytest

from buttress.assess import (
    ActivePassive,
    And,
    Event,
    Or,
    active_passive_2,
    analyse,
    dependency_budget,
    k_of_n,
    minimal_cut_sets,
    parallel,
    point_availability,
    series,
    simulate,
    steady_state,
    yearly_budget,
)
from buttress.assess.model import ArchitectureSpec
from buttress.assess.system import System


def system_of(arch: dict[str, Any]) -> System:
    """A system from an ``architecture:`` mapping, validated as the file would be."""
    return System.from_spec(ArchitectureSpec.model_validate(arch))


# Ebeling, An Introduction to Reliability and Maintainability Engineering, example 11.3:
# lambda = 0.1 per hour, mu = 0.2 per hour, i.e. MTBF 10 h and MTTR 5 h.
EBELING_UNIT = {"mtbf": "10h", "mttr": "5h"}

# -- Ebeling, example 11.3 (lambda = 0.1/h, mu = 0.2/h) --------------------------------------------

SINGLE = {"components": {"a": dict(EBELING_UNIT)}}
SERIES = {
    "components": {"a": {**EBELING_UNIT, "depends_on": {"b": "hard"}}, "b": dict(EBELING_UNIT)}
}
PARALLEL = {"components": {"a": {**EBELING_UNIT, "replicas": 2}}}
THREE_OF_FOUR = {
    "components": {
        "a": {"availability": 0.9, "replicas": 4, "redundancy": {"required": 3}, "mttr": "1h"}
    }
}
AWS_SPARES = {"components": {"a": {"availability": 0.995, "replicas": 3, "mttr": "1h"}}}


def test_ebeling_single_unit_closed_form() -> None:
    assert 2 / 3 == pytest.approx(steady_state(10.0, 5.0), abs=1e-12)
    assert 0.683262 == pytest.approx(point_availability(0.1, 0.2, 10.0), abs=5e-7)


def test_ebeling_series_and_parallel_closed_forms() -> None:
    a = steady_state(10.0, 5.0)
    assert 0.444444 == pytest.approx(series([a, a]), abs=5e-7)
    assert 0.888889 == pytest.approx(parallel([a, a]), abs=5e-7)


@pytest.mark.parametrize(
    ("arch", "expected"),
    [(SINGLE, 2 / 3), (SERIES, 0.444444), (PARALLEL, 0.888889)],
    ids=["single", "series", "parallel"],
)
def test_ebeling_through_the_full_model(arch: dict[str, object], expected: float) -> None:
    result = analyse(system_of(arch))
    (journey,) = result.journeys.values()
    assert expected == pytest.approx(journey.availability, abs=5e-7)


def test_ebeling_point_availability_through_the_full_model() -> None:
    result = analyse(system_of(SINGLE))
    assert 0.683262 == pytest.approx(result.availability_at("a", 10.0), abs=5e-7)
    # Long after the start the point availability settles at the steady state.
    assert 2 / 3 == pytest.approx(result.availability_at("a", 500.0), abs=1e-9)


def test_three_of_four_at_unit_availability_0_9() -> None:
    assert 0.9477 == pytest.approx(k_of_n(3, 4, 0.9), abs=5e-5)
    (journey,) = analyse(system_of(THREE_OF_FOUR)).journeys.values()
    assert 0.9477 == pytest.approx(journey.availability, abs=5e-5)


def test_aws_sparing_example_two_spares_at_99_5_percent() -> None:
    (journey,) = analyse(system_of(AWS_SPARES)).journeys.values()
    assert 0.999999875 == pytest.approx(journey.availability, abs=1e-12)
    # The same with one active and two standbys, perfect failover: the Markov chain agrees.
    standby = {"components": {"a": {**AWS_SPARES["components"]["a"]}}}
    standby["components"]["a"]["redundancy"] = {
        "mode": "active-passive",
        "detection": 0,
        "switchover": 0,
        "coverage": 1.0,
    }
    (ap,) = analyse(system_of(standby)).journeys.values()
    assert 0.999999875 == pytest.approx(ap.availability, abs=1e-12)


def test_treynor_budget() -> None:
    assert 52.56 == pytest.approx(yearly_budget(0.9999), abs=1e-9)
    budget = dependency_budget(0.9999, [(f"dep{i}", 0.99999) for i in range(5)])
    assert 26.28 == pytest.approx(budget.dependency_minutes, abs=1e-9)
    assert 26.28 == pytest.approx(budget.remaining_minutes, abs=1e-9)
    assert all(line.extra_nine for line in budget.lines)


def test_treynor_counts_each_dependency_once() -> None:
    budget = dependency_budget(0.9999, [("db", 0.99999), ("db", 0.99999), ("dns", 0.99999)])
    assert 2 == len(budget.lines)
    assert 10.512 == pytest.approx(budget.dependency_minutes, abs=1e-9)


def test_minimal_cut_sets_of_or_or_and() -> None:
    a, b, c, d = (Event(x) for x in "abcd")
    cuts = minimal_cut_sets(Or(Or(a, b), And(c, d)))
    assert [{"a"}, {"b"}, {"c", "d"}] == [{e.name for e in s} for s in cuts]


def test_active_passive_closed_form_matches_the_chain() -> None:
    from buttress.assess.analytic import active_passive

    g = ActivePassive(n=2, lam=0.01, mu=0.5, tau=0.05, coverage=0.9, lam_standby=0.01)
    assert active_passive(g) == pytest.approx(active_passive_2(g), abs=1e-12)
    cold = ActivePassive(n=2, lam=0.01, mu=0.5, tau=0.05, coverage=0.9, lam_standby=0.0)
    assert active_passive(cold) == pytest.approx(active_passive_2(cold), abs=1e-12)
    # Imperfect coverage and switchover time cost availability against the perfect pair.
    perfect = ActivePassive(n=2, lam=0.01, mu=0.5, tau=0.0, coverage=1.0, lam_standby=0.01)
    assert active_passive_2(g) < active_passive_2(perfect)
    q = 0.01 / 0.51
    assert 1 - q * q == pytest.approx(active_passive_2(perfect), abs=1e-12)


# -- The Monte Carlo agrees with the analytic figure on every oracle model -------------------------

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


@pytest.mark.parametrize(
    ("arch", "years", "repair"),
    [
        (SINGLE, 100, "exponential"),
        (SERIES, 100, "exponential"),
        (PARALLEL, 100, "deterministic"),
        (THREE_OF_FOUR, 200, "exponential"),
        (AWS_SPARES, 30_000, "exponential"),
        (ACTIVE_PASSIVE, 2_000, "deterministic"),
    ],
    ids=["single", "series", "parallel", "3-of-4", "aws-spares", "active-passive"],
)
def test_monte_carlo_agrees_within_its_interval(
    arch: dict[str, object], years: int, repair: str
) -> None:
    result = analyse(system_of(arch))
    (name,) = result.journeys
    sim = simulate(result, seed=7, years=years, repair=repair)  # type: ignore[arg-type]
    q = result.journeys[name].unavailability
    mc = sim[name]
    assert mc.outages > 30, "too few outages for the interval to mean anything"
    assert mc.contains(q), (q, mc)
    assert mc.relative_half_width < 0.35


def test_monte_carlo_reaches_requested_precision() -> None:
    result = analyse(system_of(PARALLEL))
    sim = simulate(result, seed=1, rel_precision=0.02, batch=50)["a"]
    assert sim.relative_half_width <= 0.02
    assert sim.contains(1 - 0.888889 + 1e-7) or math.isclose(
        sim.unavailability, 1 / 9, rel_tol=0.03
    )
