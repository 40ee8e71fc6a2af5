"""The lab's audit-log and recovery hypotheses (``experiments.hypotheses.audit_log`` and
``.recovery``) on synthetic runs of the government example: a broken or diverging chain fails,
the time to recover is measured from the fault to the first good answer after it and judged
against the journey's RTO at the lab's 60x, bad references point at their line; and the drill's
RPO is 0 when nothing acknowledged was lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from buttress.dr.chain import GENESIS, make_record, verify_chain
from buttress.errors import SpecError
from buttress.lab.system.audit import audit_hypotheses, recovery_figures, recovery_hypotheses
from buttress.lab.system.drill import Backups, drill_figures, drill_lab, drill_rows
from buttress.lab.system.driver import Sample
from buttress.lab.system.load import LoadedLab, load_lab
from buttress.lab.system.plan import AppliedFault

GOV = Path(__file__).resolve().parents[2] / "examples" / "government"


@pytest.fixture(scope="module")
def lab() -> LoadedLab:
    return load_lab(GOV)


def _chain(n: int) -> list[dict[str, Any]]:
    out, prev = [], GENESIS
    for i in range(1, n + 1):
        out.append(make_record(i, prev, {"claim_id": f"on-1-{i:06d}"}))
        prev = out[-1]["hash"]
    return out


def _read(service: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"service": service, "path": "/audit", **verify_chain(records).to_json()}


def test_intact_copies_that_agree_pass(lab: LoadedLab) -> None:
    chain = _chain(4)
    runs = {"on": {"audit": [_read("primary", chain), _read("recovery", chain)]}}
    hyps = audit_hypotheses(lab, runs)
    assert [True, True, True] == [h["passed"] for h in hyps]
    assert "audit log of primary: hash chain complete and intact" == hyps[0]["hypothesis"]
    assert hyps[0]["observed"].startswith("4 records, head ")
    assert "the audit logs of primary and recovery hold the same chain" == hyps[2]["hypothesis"]


def test_a_broken_copy_or_a_diverging_one_fails(lab: LoadedLab) -> None:
    chain = _chain(4)
    edited = [dict(r) for r in chain]
    edited[1] = {**edited[1], "body": {"claim_id": "forged"}}
    runs = {
        "off": {"audit": [_read("primary", edited), _read("recovery", chain)]},
        "on": {"audit": [_read("primary", chain), _read("recovery", chain[:3])]},
    }
    hyps = audit_hypotheses(lab, runs)
    off = [h for h in hyps if h["mode"] == "off"]
    assert [False, True, False] == [h["passed"] for h in off]
    assert "broken at record 2: record 2's hash does not match its content" == off[0]["observed"]
    on = [h for h in hyps if h["mode"] == "on"]
    assert [True, True, False] == [h["passed"] for h in on]  # both intact, one is shorter
    unread = {"on": {"audit": [{"service": "primary", "path": "/audit", "error": "refused"},
                               _read("recovery", chain)]}}  # fmt: skip
    assert [False, True, False] == [h["passed"] for h in audit_hypotheses(lab, unread)]


def _sample(kind: str, start: float, latency: float, good: bool = True) -> Sample:
    return Sample(kind, start, latency, 200 if good else 503, good)


def test_time_to_recover_is_the_first_good_answer_after_the_fault(lab: LoadedLab) -> None:
    plan = {f.name: f for f in lab.experiments.plan}
    lost = AppliedFault(plan["primary-site-lost"], (2.0, 6.0), ["primary"], applied_at=2.05)
    outage = AppliedFault(plan["long-outage"], (18.0, 26.0), ["primary"], applied_at=18.0)
    corrupted = AppliedFault(plan["storage-corrupted"], (11.0, 12.5), ["primary"])  # never applied
    samples = [
        _sample("claim", 1.9, 0.4),  # before the fault: does not count, though answered after
        _sample("claim", 2.1, 0.2, good=False),
        _sample("lookup", 2.2, 0.01),  # not a kind that ends the outage (claims place orders)
        _sample("claim", 2.3, 1.0),  # answered at 3.3
        _sample("claim", 2.9, 0.1),  # answered at 3.0: the first
        _sample("claim", 18.5, 6.0),  # after the outage: 6.5 s, over the bound
    ]
    figures = recovery_figures(lab, samples, [lost, corrupted, outage])
    assert figures is not None
    assert {"disruption": "region", "applied_at": 2.05, "seconds": 0.95} == figures[
        "primary-site-lost"
    ]
    assert figures["storage-corrupted"]["seconds"] is None
    assert 6.5 == figures["long-outage"]["seconds"]
    runs = {"on": {"service_recovery": figures}, "off": {"service_recovery": figures}}
    hyps = recovery_hypotheses(lab, runs)
    assert ["on"] * 3 == [h["mode"] for h in hyps]  # judged with Buttress only
    assert [True, False, False] == [h["passed"] for h in hyps]
    assert hyps[0]["hypothesis"] == (
        "primary-site-lost: service back within journey claims's RTO for region "
        "(5 min, 5 s of lab time at 60x)"
    )
    assert ("<= 5 s", "0.95 s") == (hyps[0]["expected"], hyps[0]["observed"])
    assert "never" == hyps[1]["observed"]
    starved = {"on": {"service_recovery": figures, "driver": {"starved": True}}}
    assert [True, None, None] == [h["passed"] for h in recovery_hypotheses(lab, starved)]


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = (GOV / "reliability.yaml").read_text(encoding="utf-8")
    assert old in text
    spec = tmp_path / "reliability.yaml"
    spec.write_text(text.replace(old, new), encoding="utf-8")
    return spec


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '- {service: recovery, path: "/audit?settle=8"}',
            '- {service: recovry, path: "/audit?settle=8"}',
            "hypotheses.audit_log.reads[1].service: unknown service 'recovry'",
        ),
        (
            "faults: {primary-site-lost: region,",
            "faults: {primary-site-gone: region,",
            "hypotheses.recovery.faults.primary-site-gone: no fault named 'primary-site-gone'",
        ),
        (
            "faults: {primary-site-lost: region,",
            "faults: {primary-site-lost: zone,",
            "journey 'claims' declares no RTO for 'zone'",
        ),
        (
            "    recovery:\n      journey: claims",
            "    recovery:\n      journey: payments",
            "hypotheses.recovery.journey: no journey named 'payments' (claims, lookup)",
        ),
        ("journey: claims, every: 90d", "journey: claims, every: soon", "drill.every"),
    ],
)
def test_bad_references_point_at_their_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    spec = _write(tmp_path, old, new)
    with pytest.raises(SpecError) as err:
        load_lab(spec)
    text = str(err.value)
    assert message in text
    anchor = new.splitlines()[-1].strip()
    line = next(i for i, s in enumerate(spec.read_text().splitlines(), 1) if anchor in s)
    assert f"reliability.yaml:{line}:" in text


def test_the_drill_keeps_the_audit_log_and_nothing_lost(lab: LoadedLab) -> None:
    drilled = drill_lab(lab).experiments
    assert drilled.hypotheses.nothing_lost is True  # drill: nothing_lost: true
    assert drilled.hypotheses.audit_log == lab.experiments.hypotheses.audit_log
    assert ["data-loss"] == [f.name for f in drilled.plan]
    assert 90 * 86400.0 == drilled.drill.every  # type: ignore[union-attr]


@pytest.mark.parametrize(("lost", "rpo"), [(0, 0.0), (3, 2.5)])
def test_the_drills_rpo_is_the_backups_age_only_when_orders_were_lost(
    lab: LoadedLab, tmp_path: Path, lost: int, rpo: float
) -> None:
    run = {"faults": [{"name": "x", "kind": "data_loss", "target": "primary",
                       "applied_at": 12.0, "removed_at": 15.0}],
           "history": {"lost_count": lost}}  # fmt: skip
    backups = Backups(tmp_path / "site.db", tmp_path / "backups", 5.0)
    backups.taken = [1000.0, 1005.0, 1009.5]
    restored = {"backup": "site-1", "taken_at": 1009.5}
    samples = [_sample("claim", 12.5, 0.6)]
    fig = drill_figures(lab, run, samples, wall0=1000.0, restored=restored, backups=backups)
    assert (rpo, 2.5, lost) == (fig["rpo"], fig["backup_age"], fig["lost"])
    assert fig["rto"] == pytest.approx(1.1)
    assert ("restored backup's age", "2.50 s", "-", "-") in drill_rows(fig)
