"""Linear growth, checked by counting work rather than timing it: a system made of k copies of a
subsystem costs k times one copy, journey-restricted analyses and incremental what-ifs give the
same figures as the full ones, and the BDD's passes read only the root's own diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from buttress.assess.analysis import analyse
from buttress.assess.bdd import BDD
from buttress.assess.faulttree import Event
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.assess.whatif import recommend

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assess" / "reliability.yaml"
ZONES = ["za", "zb", "zc"]


def clusters(k: int) -> System:
    """k copies of one five-component area (web -> api -> {db, cache}, api ~> search) sharing
    three zones, a region and DNS; one journey per copy."""
    domains: dict[str, Any] = {
        "region": {"kind": "region", "mtbf": "43800h", "mttr": "4h"},
        "dns": {"kind": "shared", "availability": 0.99999},
    }
    for z in ZONES:
        domains[z] = {"kind": "zone", "parent": "region", "mtbf": "8760h", "mttr": "1h"}
    comps: dict[str, Any] = {}
    journeys: dict[str, Any] = {}
    for i in range(k):
        comps[f"web{i}"] = {
            "replicas": 3,
            "placement": ZONES,
            "shared": ["dns"],
            "depends_on": {f"api{i}": "hard", f"search{i}": "soft"},
        }
        comps[f"api{i}"] = {
            "replicas": 2,
            "placement": ["za", "za"],
            "mtbf": "700h",
            "mttr": "20m",
            "depends_on": {f"db{i}": "hard", f"cache{i}": "hard"},
        }
        comps[f"db{i}"] = {
            "kind": "datastore",
            "replicas": 2,
            "placement": ["za", "zb"],
            "redundancy": {"mode": "active-passive", "coverage": 0.99},
        }
        comps[f"cache{i}"] = {"replicas": 3, "placement": ZONES, "redundancy": {"required": 2}}
        comps[f"search{i}"] = {"availability": 0.995}
        journeys[f"j{i}"] = {"entry": f"web{i}", "target": 0.999}
    arch = {"domains": domains, "components": comps, "journeys": journeys}
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def test_k_copies_cost_k_times_one_copy() -> None:
    one = analyse(clusters(1))
    eight = analyse(clusters(8))
    # The shared domain part of the diagram is built once; every copy adds the same nodes.
    per_copy = (len(eight.bdd) - len(one.bdd)) / 7
    assert per_copy <= len(one.bdd)
    nine = analyse(clusters(9))
    assert per_copy == len(nine.bdd) - len(eight.bdd)
    # Each journey's own diagram, cut sets and explanations do not grow with the others.
    assert {one.bdd.size(one.roots["j0"])} == {eight.bdd.size(r) for r in eight.roots.values()}
    assert [c.explanation.replace("0", "3") for c in one.journeys["j0"].cut_sets] == [
        c.explanation for c in eight.journeys["j3"].cut_sets
    ]
    assert one.journeys["j0"].availability == pytest.approx(
        eight.journeys["j5"].availability, rel=1e-12
    )


def test_a_journey_restricted_analysis_agrees_and_compiles_only_its_part() -> None:
    system = clusters(4)
    full = analyse(system)
    part = analyse(system, journeys=["j2"])
    assert ["j2"] == list(part.journeys)
    assert full.journeys["j2"].availability == pytest.approx(
        part.journeys["j2"].availability, rel=1e-12
    )
    assert full.journeys["j2"].full_service == pytest.approx(
        part.journeys["j2"].full_service, rel=1e-12
    )
    components = {i.component for i in part.compiled.info.values() if i.component}
    assert {"web2", "api2", "db2", "cache2", "search2"} == components


def brute_force(analysis: Any) -> dict[str, float]:
    """Every candidate of recommend(), re-evaluated by a full analysis of the changed system."""
    from buttress.assess import whatif
    from buttress.assess.analytic import MINUTES_PER_YEAR

    system = analysis.system
    out: dict[str, float] = {}
    targets: list[str] = []
    for res in analysis.journeys.values():
        for name, _ in res.sources[:6]:
            if name not in targets:
                targets.append(name)
    for name in targets:
        if name in system.components:
            found = whatif._candidates(system, system.components[name])
            found += whatif._soften(system, name)
        else:
            found = whatif._domain_alerting(system, name)
        for title, _, changed in found:
            new = analyse(changed, cut_sets=False, explain=False)
            saved = sum(
                (new.journeys[j].availability - r.availability) * system.journeys[j].users
                for j, r in analysis.journeys.items()
            )
            out.setdefault(title, saved * MINUTES_PER_YEAR)
    return out


@pytest.mark.parametrize("which", ["example", "clusters"])
def test_incremental_what_ifs_match_full_re_analysis(which: str) -> None:
    system = System.from_spec(load_architecture(EXAMPLE)[0]) if which == "example" else clusters(3)
    analysis = analyse(system)
    expected = brute_force(analysis)
    recs = recommend(analysis, limit=100)
    assert recs, "expected some recommendations"
    for r in recs:
        assert expected[r.title] == pytest.approx(r.minutes_saved, rel=1e-9, abs=1e-9)
    positive = {t for t, m in expected.items() if m > 1e-9}
    assert positive == {r.title for r in recs}
    # A change inside one copy gains nothing elsewhere, exactly.
    if which == "clusters":
        for r in recs:
            if r.target.endswith("1") and r.kind != "alerting":
                assert 0.0 == r.gain["j0"] == r.gain["j2"]


def test_bdd_passes_read_only_the_roots_diagram() -> None:
    """A huge unrelated function in the same manager changes neither the answer nor what is
    read: events outside the root's support need no probability at all."""
    a, b, c = Event("a"), Event("b"), Event("c")
    noise = [Event(f"n{i}") for i in range(300)]
    bdd = BDD([a, b, c, *noise])
    root = bdd.or_(bdd.var(a), bdd.and_(bdd.var(b), bdd.var(c)))
    acc = bdd.var(noise[0])
    for e in noise[1:]:
        acc = bdd.and_(acc, bdd.or_(bdd.var(e), bdd.var(a)))
    p = {a: 0.1, b: 0.2, c: 0.3}  # no entry for the noise events
    assert 0.1 + 0.9 * 0.2 * 0.3 == pytest.approx(bdd.probability(root, p), rel=1e-15)
    imp = bdd.importance(root, p)
    assert [a, b, c] == list(imp)
    assert 1 - 0.2 * 0.3 == pytest.approx(imp[a].birnbaum, rel=1e-12)
    assert 3 == len(bdd.reachable(root))
    with pytest.raises(KeyError, match="no probability for basic event"):
        bdd.probability(acc, p)
