"""The lab's tenant hypotheses (``experiments.hypotheses.tenants``) on synthetic runs of the SaaS
example: Jain's index, the shard's-share bound, who is charged with what, the spec's cross-checks
(file, line and field) and ``experiments.runs``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import SpecError
from buttress.lab.system.driver import Sample
from buttress.lab.system.load import LoadedLab, load_lab
from buttress.lab.system.report import render_table, rows
from buttress.lab.system.spec import MODES
from buttress.lab.system.tenants import (
    jain_index,
    share_bound,
    tenant_figures,
    tenant_hypotheses,
    tenant_sentences,
)

SAAS = Path(__file__).resolve().parents[2] / "examples" / "saas"
SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
PLACEMENT = {
    "acme": ["backend-1", "backend-6"],
    "globex": ["backend-1", "backend-2"],
    "initech": ["backend-1", "backend-4"],
    "umbrella": ["backend-3", "backend-5"],
    "wayne": ["backend-2", "backend-7"],
    "hooli": ["backend-1", "backend-5"],
    "piedpiper": ["backend-4", "backend-5"],
}
FAULTS = [
    {"name": "backend-killed", "kind": "kill", "target": "backend-2",
     "applied_at": 4.0, "removed_at": 8.0},
    {"name": "piedpiper-floods", "kind": "burst", "target": "piedpiper",
     "applied_at": 12.0, "removed_at": 16.0},
]  # fmt: skip


@pytest.fixture(scope="module")
def lab() -> LoadedLab:
    return load_lab(SAAS)


def _samples(bad: dict[tuple[str, str], int] | None = None, rate: int = 2) -> list[Sample]:
    """Every tenant sends ``rate`` requests a second for 24 s, all served; ``bad[(tenant,
    window)]`` of them fail in the window ``kill`` (4 s to 10 s) or ``flood`` (12 s to 18 s)."""
    windows = {"kill": (4.0, 10.0), "flood": (12.0, 18.0)}
    left = dict(bad or {})
    out = []
    for tenant in PLACEMENT:
        for i in range(24 * rate):
            t = i / rate
            failing = False
            for (who, w), n in left.items():
                lo, hi = windows[w]
                if who == tenant and lo <= t < hi and n > 0:
                    left[(who, w)] = n - 1
                    failing = True
            out.append(Sample(tenant, t, 2.0 if failing else 0.1, 0 if failing else 200,
                              not failing, failing))  # fmt: skip
    return out


def _run(lab: LoadedLab, samples: list[Sample], *, starved: bool = False) -> dict[str, Any]:
    return {
        "tenants": tenant_figures(lab, samples, FAULTS, PLACEMENT),
        "driver": {"starved": starved},
    }


def test_jain_index_figures() -> None:
    assert 1.0 == jain_index([0.5, 0.5, 0.5])
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(1 / 4)  # one gets all: 1/n
    assert jain_index([1.0, 1.0, 0.0, 0.0]) == pytest.approx(2 / 4)  # k of n: k/n
    assert jain_index([]) is None
    assert 1.0 == jain_index([0.0, 0.0])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_jain_index_lies_between_one_over_n_and_one(shares: list[float]) -> None:
    j = jain_index(shares)
    assert j is not None
    assert 1 / len(shares) - 1e-9 <= j <= 1 + 1e-9


def test_share_bound_is_the_mean_plus_three_sd_plus_one() -> None:
    assert share_bound(40, 0.5) == pytest.approx(20 + 3 * math.sqrt(10) + 1)
    assert 1.0 == share_bound(0, 0.5)


def test_a_clean_run_passes_every_tenant_hypothesis(lab: LoadedLab) -> None:
    runs = {"off": _run(lab, _samples()), "on": _run(lab, _samples())}
    hyps = tenant_hypotheses(lab, runs)
    # off: the shard failure's two checks; on: noisy, the shard failure's two, fairness.
    assert [h["mode"] for h in hyps] == ["off", "off", "on", "on", "on", "on"]
    assert all(h["passed"] is True for h in hyps), hyps
    fig = runs["on"]["tenants"]
    assert fig["fleet"] == 8
    assert fig["well_behaved"] == ["acme", "globex", "initech", "umbrella", "wayne", "hooli"]
    assert fig["shard_failures"]["backend-killed"] == {
        "instance": "backend-2", "serves": ["globex", "wayne"]}  # fmt: skip
    assert fig["noisy"]["piedpiper-floods"]["shares"]["initech"] == ["backend-4"]
    assert fig["noisy"]["piedpiper-floods"]["shares"]["acme"] == []
    # The kill's window: 4 s to 8 s + the 2 s timeout, cut at the flood's start (12 s).
    assert fig["counts"]["backend-killed"]["acme"] == {
        "sent": 12, "served": 12, "throttled": 0, "bad": 0}  # fmt: skip
    assert fig["fairness"] == {"run": 1.0, "backend-killed": 1.0, "piedpiper-floods": 1.0}


def test_who_is_charged_with_what(lab: LoadedLab) -> None:
    # off: globex loses half its kill window (its share: 1 of its 2 backends), wayne all of it,
    # acme one request; initech notices the flood.
    bad = {("globex", "kill"): 6, ("wayne", "kill"): 12, ("acme", "kill"): 1,
           ("initech", "flood"): 5}  # fmt: skip
    runs = {"off": _run(lab, _samples(bad)), "on": _run(lab, _samples(bad))}
    by = {(h["mode"], h["hypothesis"]): h for h in tenant_hypotheses(lab, runs)}
    untouched = by[("off", "tenants backend-2 does not serve untouched by backend-killed with "
                           "policies off")]  # fmt: skip
    assert untouched["passed"] is False and "acme 1/12" in untouched["observed"]
    share = by[("off", "tenants backend-2 serves lose at most their shard's share during "
                       "backend-killed with policies off")]  # fmt: skip
    assert share["passed"] is True  # 12 of 12 is within 6 + 3 sqrt(3) + 1 on so few requests
    assert "globex 6/12 (share 1/2), wayne 12/12 (share 1/2)" in share["observed"]
    noisy = by[("on", "no other tenant notices piedpiper-floods (piedpiper) with Buttress")]
    assert noisy["passed"] is False and "initech 5/12" in noisy["observed"]
    fair = next(h for h in tenant_hypotheses(lab, runs) if "Jain" in h["hypothesis"])
    assert fair["passed"] is False  # initech served 7 of 12 during the flood
    # The noisy and fairness hypotheses are judged in the Buttress run only (judged: [on]).
    assert not any(h["mode"] == "off" and "notices" in h["hypothesis"] for h in by.values())


def test_more_than_the_shards_share_fails(lab: LoadedLab) -> None:
    # 6 requests a second: 36 in the kill window, 30 of them lost (more than 18 + 9 + 1).
    assert share_bound(36, 0.5) < 30
    runs = {"off": _run(lab, _samples({("globex", "kill"): 30}, rate=6))}
    share = [h for h in tenant_hypotheses(lab, runs) if "shard's share" in h["hypothesis"]]
    assert [False] == [h["passed"] for h in share]


def test_a_starved_driver_makes_a_failure_inconclusive(lab: LoadedLab) -> None:
    runs = {"on": _run(lab, _samples({("acme", "flood"): 2}), starved=True)}
    noisy = next(h for h in tenant_hypotheses(lab, runs) if "notices" in h["hypothesis"])
    assert noisy["passed"] is None and "inconclusive" in noisy["observed"]


def test_rows_and_sentences_print_the_figures(lab: LoadedLab) -> None:
    runs = {"off": _run(lab, _samples({("initech", "flood"): 3})), "on": _run(lab, _samples())}
    table = {r[0]: r[1:] for r in rows({"runs": _full(lab, runs)})}
    assert table["initech bad / sent during piedpiper-floods (shares backend-4)"] == (
        "3 / 12",
        "0 / 12",
    )
    assert table["globex bad / sent during backend-killed (on backend-2)"] == ("0 / 12", "0 / 12")
    assert table["Jain's fairness index (well-behaved tenants)"][1] == "1.000"
    fates = table["piedpiper served / throttled / bad of sent during piedpiper-floods"]
    assert fates == ("12 / 0 / 0 of 12", "12 / 0 / 0 of 12")
    text = " ".join(tenant_sentences(runs))
    assert "piedpiper on backend-4 + backend-5" in text
    assert "shared in part by initech, umbrella, hooli and entirely by no tenant" in text
    assert "1 in 28" in text


def _full(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The tenant figures inside runs shaped as the lab's (what rows() reads)."""
    out = {}
    for mode, run in runs.items():
        out[mode] = {"slos": [], "faults": [], "requests": {}, "history": {
            "acknowledged_count": 0, "lost_count": 0}, "breakers": [], **run}  # fmt: skip
    return out


def _write(tmp_path: Path, old: str, new: str) -> Path:
    text = (SAAS / "reliability.yaml").read_text(encoding="utf-8")
    assert old in text
    spec = tmp_path / "reliability.yaml"
    spec.write_text(text.replace(old, new), encoding="utf-8")
    return spec


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "placement: {service: gateway,",
            "placement: {service: gatewy,",
            "hypotheses.tenants.placement.service: unknown service 'gatewy'",
        ),
        (
            "noisy: [piedpiper-floods]",
            "noisy: [backend-killed]",
            "hypotheses.tenants.noisy[0]: 'backend-killed' is a kill, not a burst",
        ),
        (
            "shard_failures: [backend-killed]",
            "shard_failures: [piedpiper-flood]",
            "hypotheses.tenants.shard_failures[0]: no fault named 'piedpiper-flood'",
        ),
        (
            "kind: kill, target: backend-2,",
            "kind: outage, target: backend,",
            "'backend-killed' targets the whole service 'backend': name one instance",
        ),
        ("fairness: 0.99", "fairness: 1.5", "fairness"),
        ("runs: [off, on]", "runs: [off, off]", "a run is named twice"),
        ("runs: [off, on]", "runs: [off, buttress]", "runs"),
    ],
)
def test_bad_tenant_hypotheses_point_at_their_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    spec = _write(tmp_path, old, new)
    with pytest.raises(SpecError) as err:
        load_lab(spec)
    text = str(err.value)
    assert message in text
    at = "shard_failures:" if "whole service" in message else new  # where the field is
    line = next(i for i, s in enumerate(spec.read_text().splitlines(), 1) if at in s)
    assert f"reliability.yaml:{line}:" in text


def test_runs_default_to_all_three_and_the_saas_example_skips_typical(lab: LoadedLab) -> None:
    assert ["off", "typical", "on"] == load_lab(SHOP).experiments.runs == list(MODES)
    assert ["off", "on"] == lab.experiments.runs


def test_the_table_of_a_saas_result_renders(lab: LoadedLab) -> None:
    runs = _full(lab, {"off": _run(lab, _samples()), "on": _run(lab, _samples())})
    text = render_table({"runs": runs, "hypotheses": [], "passed": True, "elapsed": 1.0})
    assert "Jain's fairness index" in text
