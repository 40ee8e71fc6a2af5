"""What-if changes evaluated incrementally on the base analysis's BDD agree with a full
re-analysis of the changed system, for every candidate change the recommender makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.assess.analysis import analyse
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.assess.whatif import _candidates, _domain_alerting, _soften, incremental

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assess" / "reliability.yaml"

GROUPS = {
    "domains": {
        "r": {"kind": "region", "mtbf": "20000h", "mttr": "4h"},
        "za": {"parent": "r", "mtbf": "5000h", "mttr": "1h"},
        "zb": {"parent": "r", "mtbf": "5000h", "mttr": "1h"},
        "dns": {"kind": "shared", "availability": 0.99999},
    },
    "components": {
        "web": {
            "replicas": 3,
            "placement": ["za", "zb"],
            "availability": 0.999,
            "redundancy": {"required": 2},
            "depends_on": {"api": "hard", "recs": "soft"},
            "shared": ["dns"],
        },
        "api": {
            "replicas": 2,
            "placement": ["za", "za"],
            "availability": 0.998,
            "repair": {"crews": 1},
            "depends_on": ["db"],
        },
        "db": {
            "kind": "datastore",
            "replicas": 2,
            "placement": ["za", "zb"],
            "availability": 0.999,
            "redundancy": {"mode": "active-passive", "coverage": 0.95, "beta": 0.02},
        },
        "recs": {"availability": 0.99},
    },
    "journeys": {"home": {"entry": "web"}, "orders": {"entry": "api"}},
}


def systems() -> list[System]:
    arch, _ = load_architecture(EXAMPLE)
    return [System.from_spec(arch), System.from_spec(ArchitectureSpec.model_validate(GROUPS))]


@pytest.mark.parametrize("index", [0, 1], ids=["example", "groups"])
def test_every_candidate_agrees_with_a_full_reanalysis(index: int) -> None:
    system = systems()[index]
    analysis = analyse(system, cut_sets=False)
    changes = []
    for comp in system.components.values():
        changes += _candidates(system, comp) + _soften(system, comp.name)
    for dom in system.domains:
        changes += _domain_alerting(system, dom)
    assert len(changes) > 8
    for title, _, changed in changes:
        fast = incremental(analysis, changed, set(system.journeys))
        assert fast is not None, title
        full = analyse(changed, cut_sets=False)
        for j, a in fast.items():
            assert full.journeys[j].availability == pytest.approx(a, abs=1e-13), (title, j)
