"""Properties: exactness against brute force, common cause, monotonicity under redundancy."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buttress.assess.analysis import analyse
from buttress.assess.compiler import occurs
from buttress.assess.model import ArchitectureSpec
from buttress.assess.system import System


def system_of(arch: dict[str, Any]) -> System:
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def brute_force(system: System, journey: str) -> float:
    """Unavailability by enumerating every combination of basic events (independent)."""
    result = analyse(system, cut_sets=False)
    events = list(result.compiled.info)
    p = result.probabilities
    top = result.compiled.tops[journey]
    total = 0.0
    for bits in itertools.product((False, True), repeat=len(events)):
        down = frozenset(e for e, b in zip(events, bits, strict=True) if b)
        if occurs(top, down, {}):
            w = 1.0
            for e, b in zip(events, bits, strict=True):
                w *= p[e] if b else 1.0 - p[e]
            total += w
    return total


ZONES = {"za": {"mtbf": "500h", "mttr": "5h"}, "zb": {"mtbf": "400h", "mttr": "4h"}}


def two_replicas(placement: list[str]) -> System:
    return system_of(
        {
            "domains": ZONES,
            "components": {"db": {"replicas": 2, "placement": placement, "availability": 0.99}},
        }
    )


def test_common_cause_one_zone_differs_from_independence() -> None:
    q_unit = 0.01
    q_zone = 5 / 505
    same = analyse(two_replicas(["za", "za"])).journeys["db"].unavailability
    # Exact: the zone takes both down, else both units must fail.
    assert q_zone + (1 - q_zone) * q_unit**2 == pytest.approx(same, rel=1e-12)
    # Assuming independent replicas (zone folded into each unit) is wrong twenty-fold and more.
    q_rep = 1 - (1 - q_unit) * (1 - q_zone)
    assert same > 20 * q_rep**2
    assert brute_force(two_replicas(["za", "za"]), "db") == pytest.approx(same, rel=1e-12)


def test_two_zones_match_independence() -> None:
    q_unit = 0.01
    spread = analyse(two_replicas(["za", "zb"])).journeys["db"].unavailability
    qa = 1 - (1 - q_unit) * (1 - 5 / 505)
    qb = 1 - (1 - q_unit) * (1 - 4 / 404)
    assert qa * qb == pytest.approx(spread, rel=1e-12)
    assert spread < analyse(two_replicas(["za", "za"])).journeys["db"].unavailability / 20


@st.composite
def small_architectures(draw: st.DrawFn) -> dict[str, Any]:
    """2-3 components in a chain of hard/soft edges, 1-3 replicas, zones in one region."""
    n = draw(st.integers(2, 3))
    zones = ["z1", "z2"]
    domains: dict[str, Any] = {
        "r": {"kind": "region", "availability": draw(st.floats(0.9, 0.999))},
        "dns": {"kind": "shared", "availability": draw(st.floats(0.9, 0.999))},
    }
    for z in zones:
        domains[z] = {"kind": "zone", "parent": "r", "availability": draw(st.floats(0.8, 0.99))}
    comps: dict[str, Any] = {}
    for i in range(n):
        replicas = draw(st.integers(1, 3))
        c: dict[str, Any] = {
            "replicas": replicas,
            "availability": draw(st.floats(0.7, 0.99)),
            "placement": draw(st.lists(st.sampled_from(zones), min_size=0, max_size=replicas)),
            "redundancy": {"required": draw(st.integers(1, replicas))},
        }
        if draw(st.booleans()):
            c["shared"] = ["dns"]
        if i + 1 < n:
            c["depends_on"] = {f"c{i + 1}": draw(st.sampled_from(["hard", "soft"]))}
        comps[f"c{i}"] = c
    return {"domains": domains, "components": comps, "journeys": {"j": {"entry": "c0"}}}


def _events(arch: dict[str, Any]) -> int:
    return len(analyse(system_of(arch), cut_sets=False).compiled.info)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_architectures())
def test_bdd_equals_brute_force_enumeration(arch: dict[str, Any]) -> None:
    system = system_of(arch)
    exact = analyse(system, cut_sets=False).journeys["j"].unavailability
    assert brute_force(system, "j") == pytest.approx(exact, rel=1e-9, abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(small_architectures(), st.data())
def test_adding_redundancy_never_lowers_availability(
    arch: dict[str, Any], data: st.DataObject
) -> None:
    system = system_of(arch)
    before = analyse(system, cut_sets=False).journeys["j"].availability
    name = data.draw(st.sampled_from(sorted(system.components)))
    comp = system.components[name]
    placement = comp.placement
    if placement:  # existing replicas stay where they are; the new one goes to a drawn zone
        zone = data.draw(st.sampled_from(["z1", "z2"]))
        placement = (*[comp.zone_of(i) or "z1" for i in range(comp.replicas)], zone)
    more = replace(comp, replicas=comp.replicas + 1, placement=placement)
    after = analyse(system.with_component(more), cut_sets=False).journeys["j"].availability
    assert after >= before - 1e-12


@settings(max_examples=30, deadline=None)
@given(small_architectures())
def test_cut_sets_are_minimal_and_cut(arch: dict[str, Any]) -> None:
    result = analyse(system_of(arch), max_order=3)
    compiled = result.compiled
    top = compiled.tops["j"]
    for cut in result.journeys["j"].cut_sets:
        events = frozenset(compiled.events[name] for name in cut.events)
        assert occurs(top, events, {})
        for smaller in itertools.combinations(events, len(events) - 1):
            assert not occurs(top, frozenset(smaller), {})
