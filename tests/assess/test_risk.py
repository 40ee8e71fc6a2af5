"""The risk register: the two phases of a failure (detecting, recovering), their shares of users
hit, and bad minutes that multiply out from the columns shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from buttress.assess.analysis import analyse
from buttress.assess.model import ArchitectureSpec
from buttress.assess.risk import Risk, risk_register, routed_share
from buttress.assess.system import System
from buttress.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assess" / "reliability.yaml"


def system_of(arch: dict[str, Any]) -> System:
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def rows(system: System, journey: str = "j") -> dict[str, Risk]:
    return {r.event: r for r in risk_register(analyse(system), journey)}


def test_replica_row_matches_the_hand_computed_figures() -> None:
    """web: 3 replicas (MTBF 1000 h, MTTR 30 min of which 5 detecting) in front of a single db."""
    system = system_of(
        {
            "components": {
                "web": {
                    "replicas": 3,
                    "mtbf": "1000h",
                    "mttr": "30m",
                    "detect": "5m",
                    "depends_on": {"db": "hard"},
                },
                "db": {"availability": 0.9995, "mttr": "1h", "detect": "10m"},
            },
            "journeys": {"j": {"entry": "web", "target": 0.999}},
        }
    )
    r = rows(system)["unit:web[0]"]
    q = 0.5 / 1000.5
    q_db = 0.0005
    birnbaum = (1 - q_db) * q * q  # the other two replicas must be down too, db up
    assert 8760 / 1000.5 == pytest.approx(r.frequency, rel=1e-12)
    assert (5 / 60, 25 / 60) == pytest.approx((r.detect, r.recover), rel=1e-12)
    assert birnbaum == pytest.approx(r.hit_recover, rel=1e-9)
    assert 1 / 3 == pytest.approx(r.hit_detect, rel=1e-12)  # its 1/n of traffic until detected
    expected = 8760 / 1000.5 * (5 * (1 / 3) + 25 * birnbaum)
    assert expected == pytest.approx(r.bad_minutes, rel=1e-9)
    assert 30.0 == pytest.approx(r.outage_minutes)
    assert (5 * (1 / 3) + 25 * birnbaum) / 30 == pytest.approx(r.hit, rel=1e-9)
    assert expected / (0.001 * 525_600) == pytest.approx(r.budget_share, rel=1e-9)
    # The single db is a single point of failure: every request is routed to it while it is down
    # undetected; afterwards everyone who gets past web is hit (web itself down otherwise).
    d = rows(system)["unit:db[0]"]
    assert 1.0 == d.hit_detect
    assert 1 - q**3 == pytest.approx(d.hit_recover, rel=1e-9)
    assert 10.0 == pytest.approx(d.detect * 60)


def test_a_zone_fails_the_requests_routed_into_it_until_detected() -> None:
    """web has 2 of 3 replicas in za, api 1 of 2: before detection a request survives only if
    both hops avoid za, ``(1 - 2/3) * (1 - 1/2)``."""
    system = system_of(
        {
            "domains": {
                "za": {"mtbf": "4380h", "mttr": "1h", "detect": "5m"},
                "zb": {"mtbf": "4380h", "mttr": "1h", "detect": "5m"},
                "dns": {"kind": "shared", "availability": 0.99999},
            },
            "components": {
                "web": {
                    "replicas": 3,
                    "placement": ["za", "za", "zb"],
                    "depends_on": {"api": "hard"},
                },
                "api": {
                    "replicas": 2,
                    "placement": ["za", "zb"],
                    "shared": ["dns"],
                    "depends_on": {"db": "hard"},
                },
                "db": {
                    "replicas": 2,
                    "placement": ["za", "zb"],
                    "redundancy": {"mode": "active-passive"},
                },
            },
            "journeys": {"j": {"entry": "web"}},
        }
    )
    analysis = analyse(system)
    ev = analysis.compiled.events
    assert 5 / 6 == pytest.approx(routed_share(analysis, "j", ev["domain:za"]))
    assert 2 / 3 == pytest.approx(routed_share(analysis, "j", ev["domain:zb"]))
    assert 1.0 == routed_share(analysis, "j", ev["domain:dns"])  # api shares its fate
    assert 0.0 == routed_share(analysis, "j", ev["ap:db"])  # failover time is its own outage
    assert 0.5 == pytest.approx(routed_share(analysis, "j", ev["unit:api[1]"]))
    register = {r.event: r for r in risk_register(analysis, "j")}
    za = register["domain:za"]
    assert 5 / 6 == pytest.approx(za.hit_detect)
    assert za.hit_recover < 0.01  # zb still serves every hop once za is routed around
    ap = register["ap:db"]
    assert ap.hit_detect == ap.hit_recover


def test_every_row_of_the_example_multiplies_out() -> None:
    result = CliRunner().invoke(main, ["assess", str(EXAMPLE), "--json", "--report-only"])
    assert 0 == result.exit_code, result.output
    for j in json.loads(result.stdout)["journeys"]:
        for r in j["risks"]:
            minutes = (r["detect_seconds"] + r["recover_seconds"]) / 60
            assert minutes == pytest.approx(r["outage_minutes"], rel=1e-12)
            assert r["users_hit_detecting"] >= r["users_hit_recovering"]
            phased = (
                r["detect_seconds"] / 60 * r["users_hit_detecting"]
                + r["recover_seconds"] / 60 * r["users_hit_recovering"]
            )
            assert r["frequency_per_year"] * phased == pytest.approx(
                r["bad_minutes_per_year"], rel=1e-9
            )
            assert r["frequency_per_year"] * minutes * r["users_hit"] == pytest.approx(
                r["bad_minutes_per_year"], rel=1e-9
            )


def test_the_table_shows_both_phases_and_the_formula() -> None:
    """The auditor's row: catalog (2 replicas) loses a replica; half the users fail for the 5
    minutes before detection, almost none after, and the bad minutes say so."""
    text = CliRunner().invoke(main, ["assess", str(EXAMPLE)]).stdout
    header = next(line for line in text.splitlines() if line.startswith("failure mode"))
    assert ["failure mode", "per yr", "detect", "hit (detect)", "recover", "hit (recover)"] == [
        h.strip() for h in header.split("  ") if h.strip()
    ][:6]
    assert "bad min/yr = per yr x (detect x hit (detect) + recover x hit (recover))" in text
    row = next(line for line in text.splitlines() if line.startswith("catalog replica 1"))
    cells = row.split()
    # mode (5 words), per yr, detect, hit (detect), recover, hit (recover), bad min/yr
    per_yr, detect, hit_d, recover, hit_r, bad = cells[5:11]
    assert ("5m", "50%", "25m") == (detect, hit_d, recover)
    assert float(hit_r.rstrip("%")) < 0.1
    assert float(bad) == pytest.approx(float(per_yr) * 5 * 0.5, rel=0.02)
