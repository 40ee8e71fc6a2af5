"""Different components in redundancy: "any of [A, B]" and k-of-n over different components, each
member with its own dependencies, against hand computations of the same independent events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.assess import analyse, assess, simulate
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.cli import main
from buttress.errors import SpecError


def analysis_of(arch: dict[str, Any]) -> Any:
    return analyse(System.from_spec(ArchitectureSpec.model_validate(arch)))


# Two regions, each with its own app and database, and a global DNS counted once: the engineer's
# whiteboard drawing of an active-active two-region deployment.
TWO_REGIONS: dict[str, Any] = {
    "domains": {
        "us": {"kind": "region", "availability": 0.999},
        "eu": {"kind": "region", "availability": 0.998},
        "dns": {"kind": "shared", "availability": 0.99999},
    },
    "components": {
        "site": {"members": ["app-us", "app-eu"], "shared": ["dns"]},
        "app-us": {"availability": 0.9995, "placement": "us", "depends_on": ["db-us"]},
        "app-eu": {"availability": 0.999, "placement": "eu", "depends_on": ["db-eu"]},
        "db-us": {"availability": 0.9992, "placement": "us"},
        "db-eu": {"availability": 0.9991, "placement": "eu"},
    },
    "journeys": {"home": {"entry": "site"}},
}


def test_two_regions_with_a_shared_dns_counted_once() -> None:
    a = analysis_of(TWO_REGIONS)
    # Each region's stack is up when its region, app and db are (independent events); the region
    # event is shared by its app and db, so it is counted once per stack.
    us = 0.999 * 0.9995 * 0.9992
    eu = 0.998 * 0.999 * 0.9991
    expected = 0.99999 * (1 - (1 - us) * (1 - eu))
    assert expected == pytest.approx(a.journeys["home"].availability, abs=1e-12)
    assert [] == a.journeys["home"].spofs[1:]  # the DNS, nothing else
    (dns,) = a.journeys["home"].spofs
    assert ("domain:dns",) == dns.events


def test_k_of_n_over_different_components() -> None:
    arch = {
        "components": {
            "pay": {"members": ["psp-a", "psp-b", "psp-c"], "redundancy": {"required": 2}},
            "psp-a": {"availability": 0.99},
            "psp-b": {"availability": 0.98},
            "psp-c": {"availability": 0.97},
        },
        "journeys": {"pay": {"entry": "pay"}},
    }
    a, b, c = 0.99, 0.98, 0.97
    expected = a * b * c + (1 - a) * b * c + a * (1 - b) * c + a * b * (1 - c)
    result = analysis_of(arch)
    assert expected == pytest.approx(result.journeys["pay"].availability, abs=1e-12)
    pairs = {c.events for c in result.journeys["pay"].cut_sets}
    assert ("unit:psp-a[0]", "unit:psp-b[0]") in pairs
    explained = result.journeys["pay"].cut_sets[0].explanation
    assert "pay needs 2 of psp-a, psp-b, psp-c and loses" in explained
    sim = simulate(result, seed=2, years=400)["pay"]
    assert sim.contains(1 - expected)


def test_a_member_can_itself_be_replicated_and_depend_on_others() -> None:
    arch = {
        "components": {
            "search": {"members": ["primary", "fallback"]},
            "primary": {"availability": 0.99, "replicas": 2, "depends_on": ["index"]},
            "index": {"availability": 0.995},
            "fallback": {"availability": 0.95},
        }
    }
    q_primary = 1 - (1 - 0.01**2) * 0.995
    expected = 1 - q_primary * 0.05
    result = analysis_of(arch)
    assert expected == pytest.approx(result.journeys["search"].availability, abs=1e-12)
    report = assess(System.from_spec(ArchitectureSpec.model_validate(arch)))
    assert ["search"] == [j["name"] for j in report["journeys"]]  # members are not entry points
    assert "search" not in report["single_points"]


FILE = """\
architecture:
  components:
    site:
      members: [a, b]
    a: {availability: 0.99}
    b: {availability: 0.99}
"""


@pytest.mark.parametrize(
    ("old", "new", "field", "line"),
    [
        ("[a, b]", "[a, c]", "components.site.members[1]", 4),
        ("[a, b]", "[a, site]", "components.site.members[1]", 4),
        ("[a, b]", "[a, a]", "components.site.members[1]", 4),
        (
            "      members: [a, b]\n",
            "      members: [a, b]\n      replicas: 2\n",
            "components.site.replicas",
            5,
        ),
        (
            "      members: [a, b]\n",
            "      members: [a, b]\n      redundancy: {required: 3}\n",
            "components.site.redundancy.required",
            5,
        ),
        (
            "b: {availability: 0.99}",
            "b: {availability: 0.99, depends_on: [site]}",
            "components.b.depends_on[0]",
            6,
        ),
    ],
)
def test_bad_members_are_located(tmp_path: Path, old: str, new: str, field: str, line: int) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(FILE.replace(old, new), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    assert (f"architecture.{field}", line) == (info.value.field, info.value.line)
    result = CliRunner().invoke(main, ["assess", str(path)])
    assert 2 == result.exit_code and "Traceback" not in result.output


# -- a replica's dependencies bound within its own failure domain ---------------------------------

SCOPED: dict[str, Any] = {
    "domains": {
        "us": {"kind": "region", "availability": 0.999},
        "eu": {"kind": "region", "availability": 0.998},
        "dns": {"kind": "shared", "availability": 0.99999},
    },
    "components": {
        "app": {
            "replicas": 2,
            "placement": ["us", "eu"],
            "availability": 0.9995,
            "shared": ["dns"],
            "depends_on": {"db": {"type": "hard", "within": "region"}, "auth": "hard"},
        },
        "db": {"replicas": 2, "placement": ["us", "eu"], "availability": 0.9992},
        "auth": {"availability": 0.99995},
    },
    "journeys": {"home": {"entry": "app"}},
}


def test_replicas_use_their_own_regions_database() -> None:
    a = analysis_of(SCOPED)
    # Region r's app replica serves when region r, its app unit and r's db unit are up; the
    # global DNS and auth are counted once.
    us = 0.999 * 0.9995 * 0.9992
    eu = 0.998 * 0.9995 * 0.9992
    expected = 0.99999 * 0.99995 * (1 - (1 - us) * (1 - eu))
    assert expected == pytest.approx(a.journeys["home"].availability, abs=1e-12)
    # Unbound, the app would survive app-us with db-eu: a different (higher) figure.
    unbound = {**SCOPED, "components": {**SCOPED["components"]}}
    unbound["components"]["app"] = {
        **SCOPED["components"]["app"],
        "depends_on": {"db": "hard", "auth": "hard"},
    }
    assert analysis_of(unbound).journeys["home"].availability > expected
    pair = next(c for c in a.journeys["home"].cut_sets if c.events == ("unit:app[0]", "unit:db[1]"))
    assert "db in eu" in pair.explanation


def test_a_scoped_dependency_without_a_local_replica_is_located(tmp_path: Path) -> None:
    text = """\
architecture:
  domains:
    us: {kind: region}
    eu: {kind: region}
  components:
    app:
      replicas: 2
      placement: [us, eu]
      depends_on: {db: {within: region}}
    db: {placement: us}
"""
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    assert "architecture.components.app.depends_on.db.within" == info.value.field
    assert 9 == info.value.line
    assert "db has no replica in eu" in info.value.message
