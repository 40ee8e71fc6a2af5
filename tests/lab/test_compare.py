"""Buttress against the typical protections (issue 22) on synthetic runs: load amplification from
the attempts the api counted, the noise rule, the beats-typical hypotheses, the plain sentences
where typical does as well, recovery times, unfinished orders, and three columns everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.lab.system.cli import parse_runs
from buttress.lab.system.compare import (
    add_amplification,
    as_well_sentences,
    attempt_totals,
    beats_typical,
    within_noise,
)
from buttress.lab.system.driver import Sample
from buttress.lab.system.figures import _recovered_after
from buttress.lab.system.load import LoadedLab, load_lab
from buttress.lab.system.report import render_html, render_table, rows

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
WALL0 = 1_000_000.0


@pytest.fixture(scope="module")
def lab() -> LoadedLab:
    return load_lab(SHOP)


def _steady_samples(seconds: int = 20, rate: int = 10) -> list[Sample]:
    return [Sample("checkout", i / rate, 0.05, 200, True) for i in range(seconds * rate)]


def test_amplification_is_attempts_per_request_against_the_steady_state(lab: LoadedLab) -> None:
    samples = _steady_samples()  # 10 requests a second for 20 s
    # One inventory attempt per request, except 3 per request during the outage (8 s to 12 s).
    inventory = {int(WALL0) + t: (30 if 8 <= t < 12 else 10) for t in range(20)}
    faults = [
        {"name": "inventory-outage", "kind": "outage", "target": "inventory",
         "applied_at": 8.0, "removed_at": 10.0},
        {"name": "overload", "kind": "burst", "target": "browse",
         "applied_at": 14.0, "removed_at": 15.0},
    ]  # fmt: skip
    add_amplification(lab, samples, faults, {"inventory": inventory}, wall0=WALL0)
    outage, burst = faults
    # Window: 8 s to 10 s + the 2 s client timeout = 12 s: three times the steady load.
    assert outage["failing"] == "inventory"
    assert outage["amplification"]["inventory"] == pytest.approx(3.0)
    assert burst["failing"] is None and burst["amplification"]["inventory"] == pytest.approx(1.0)
    totals = attempt_totals({"inventory": inventory}, samples)
    assert totals["inventory"]["total"] == 16 * 10 + 4 * 30
    assert totals["inventory"]["per_request"] == pytest.approx(280 / 200)


def test_only_a_slow_dependency_has_its_load_judged() -> None:
    on, typical = _run({"a": 0}, {"a": 9.0}), _run({"a": 0}, {"a": 1.0})
    judged = beats_typical({"on": on, "typical": typical})
    assert [False] == [h["passed"] for h in judged if "amplifies" in h["hypothesis"]]
    # An outage refuses the connections at the proxy: no work for the dependency, not judged.
    for run in (on, typical):
        run["faults"][0]["kind"] = "outage"
    judged = beats_typical({"on": on, "typical": typical})
    assert not [h for h in judged if "amplifies" in h["hypothesis"]]


def test_a_service_target_sums_its_instances_and_an_instance_stands_alone(lab: LoadedLab) -> None:
    samples = _steady_samples()
    one = {int(WALL0) + t: (10 if t < 8 else 5) for t in range(20)}  # ejected: half the load
    two = {int(WALL0) + t: (10 if t < 8 else 15) for t in range(20)}  # takes the rest
    attempts = {"payments-1": one, "payments-2": two}
    faults = [
        {"name": "slow", "kind": "latency", "target": "payments-1", "applied_at": 8.0,
         "removed_at": 10.0},
        {"name": "down", "kind": "outage", "target": "payments", "applied_at": 14.0,
         "removed_at": 15.0},
    ]  # fmt: skip
    add_amplification(lab, samples, faults, attempts, wall0=WALL0)
    slow, down = faults
    assert slow["failing"] == "payments-1"
    assert slow["amplification"]["payments-1"] == pytest.approx(0.5)
    assert slow["amplification"]["payments-2"] == pytest.approx(1.5)
    assert down["failing"] == "payments" and down["amplification"]["payments"] == pytest.approx(1.0)


@given(st.integers(0, 10_000), st.integers(0, 10_000))
def test_noise_is_symmetric_and_grows_with_the_counts(a: int, b: int) -> None:
    assert within_noise(a, b) == within_noise(b, a)
    assert within_noise(a, a)
    if within_noise(a, b):
        assert within_noise(a * 4, b * 4) or abs(a - b) > 0  # scaled counts: relative noise shrinks
    assert within_noise(0, 1) and not within_noise(0, 10) and within_noise(100, 120)


def _run(bad: dict[str, int], amp: dict[str, float], pending: int = 0) -> dict[str, Any]:
    faults = [
        {"name": name, "kind": "latency", "target": "inventory", "applied_at": 1.0,
         "removed_at": 2.0, "planned": [1.0, 2.0], "failing": "inventory",
         "bad_requests": {"checkout": n}, "budget_consumed": {"checkout": n / 5},
         "amplification": {"inventory": amp[name]}}
        for name, n in bad.items()
    ]  # fmt: skip
    return {
        "slos": [{"name": "checkout", "objective": 99.5, "sli": 0.99, "verdict": "burned",
                  "budget_consumed": 2.0, "good": 990, "total": 1000, "service_good": 990,
                  "service_total": 1000, "service_sli": 0.99}],
        "faults": faults,
        "requests": {"checkout": {"good": 990, "total": 1000, "p99": 0.1, "p99_all": 0.2}},
        "history": {"valid": True, "lost_count": 0, "acknowledged_count": 990,
                    "attempted_count": 1000, "recovered_count": 0, "vanished_count": 0},
        "pending": {"count": pending, "ids": []},
        "attempts": {"inventory": {"total": 1200, "per_request": 1.2}},
        "recovery": [{"fault": "a", "kind": "checkout", "recovered_after": 1.5,
                      "stayed_failed": False}],
        "breakers": [],
        "breaker_names": [],
        "series": {"t": [0.0, 1.0], "checkout_error": [0.0, 0.5], "checkout_p99": [0.1, 0.2]},
    }  # fmt: skip


def test_buttress_must_beat_typical_beyond_noise_and_amplify_less() -> None:
    on = _run({"a": 2, "b": 30, "c": 40}, {"a": 1.0, "b": 2.0, "c": 1.15})
    typical = _run({"a": 40, "b": 33, "c": 10}, {"a": 3.0, "b": 1.2, "c": 0.0})
    hyps = {h["hypothesis"]: h for h in beats_typical({"on": on, "typical": typical})}
    spend = "Buttress spends no more of the checkout budget than typical during {}"
    load = "Buttress amplifies load on inventory no more than typical during {}"
    assert hyps[spend.format("a")]["passed"] is True  # 2 against 40: better
    assert hyps[spend.format("b")]["passed"] is True  # 30 against 33: within noise
    assert "(within noise)" in hyps[spend.format("b")]["observed"]
    assert hyps[spend.format("c")]["passed"] is False  # 40 against 10: typical did better
    assert hyps[load.format("a")]["passed"] is True
    assert hyps[load.format("b")]["passed"] is False  # x2.00 against x1.20
    assert hyps[load.format("b")]["observed"] == "x2.00 against x1.20"
    # Typical's breaker cut the load to nothing: Buttress must only stay near the steady load.
    assert hyps[load.format("c")]["passed"] is True  # x1.15 <= max(0, 1) * 1.1 + 0.1
    # Typical doing as well is said plainly, figures and all.
    said = as_well_sentences({"on": on, "typical": typical})
    assert any("During b, typical did as well" in s and "within noise" in s for s in said)
    assert any("During c, typical did as well" in s and "10 bad requests" in s for s in said)
    assert not any("During a," in s for s in said)
    # A starved driver in either run turns a lost comparison into an inconclusive one.
    typical["driver"] = {"starved": True}
    hyps = {h["hypothesis"]: h for h in beats_typical({"on": on, "typical": typical})}
    assert hyps[spend.format("c")]["passed"] is None and hyps[spend.format("a")]["passed"] is True
    assert (
        "inconclusive: the load driver was starved in typical"
        in hyps[spend.format("c")]["observed"]
    )
    # Without a typical run there is nothing to compare.
    assert [] == beats_typical({"on": on}) == as_well_sentences({"on": on, "off": typical})


def test_three_runs_three_columns_with_every_figure(lab: LoadedLab, tmp_path: Path) -> None:
    runs = {
        "off": _run({"a": 90}, {"a": 1.0}, pending=0),
        "typical": _run({"a": 40}, {"a": 3.0}, pending=7),
        "on": _run({"a": 2}, {"a": 0.5}, pending=12),
    }
    result = {"file": "reliability.yaml", "quick": True, "seed": 1, "assessment": None,
              "runs": runs, "hypotheses": beats_typical(runs), "verdict": "passed",
              "passed": True, "elapsed": 9.0, "report": "report.html"}  # fmt: skip
    table = rows(result)
    assert table[0] == ("", "off", "typical", "Buttress")
    by_label = {r[0]: r[1:] for r in table}
    assert by_label["orders left unfinished"] == ("0", "7", "12")
    assert by_label["inventory: attempts per request"] == ("1.20", "1.20", "1.20")
    assert by_label["  load on inventory during a"] == ("x1.00", "x3.00", "x0.50")
    assert by_label["checkout recovered after a"] == ("1.5 s", "1.5 s", "1.5 s")
    assert by_label["    by a"] == ("1800%", "800%", "40%")
    assert render_table(result).splitlines()[0].split() == ["off", "typical", "Buttress"]
    html = render_html(lab, result)
    assert "<th>off</th><th>typical</th><th>Buttress</th>" in html
    assert "left unfinished" in html and "Typical did as well" in html


def test_recovery_time_is_the_first_second_back_to_the_steady_state() -> None:
    # Errors until 3.2 s after a fault removed at 10 s, then clean.
    ks = [Sample("checkout", t / 20, 0.05, 200, not (10 <= t / 20 < 13.2)) for t in range(400)]
    assert _recovered_after(ks, 10.0, 20.0, 0.0) == 3.5  # the first clean window on the 0.5 s grid
    assert _recovered_after(ks, 10.0, 12.0, 0.0) is None  # not within the window


def test_runs_are_chosen_by_name_in_the_lab_order() -> None:
    assert parse_runs("buttress,off") == ("off", "on")
    assert parse_runs(" typical , BUTTRESS ") == ("typical", "on")
    assert parse_runs("off,typical,buttress") == ("off", "typical", "on")
    for bad in ("", "all", "on,nope"):
        with pytest.raises(Exception, match="choose from off, typical, buttress"):
            parse_runs(bad)
