"""`buttress lab examples/shop --quick` end to end: real processes, real faults, the figures."""

from __future__ import annotations

from pathlib import Path

from .conftest import QuickLab
from .helpers import wait_no_marked


def test_quick_lab_reaches_the_published_figures(shop_quick_lab: QuickLab) -> None:
    done, result, out, marker = (
        shop_quick_lab.done,
        shop_quick_lab.result,
        shop_quick_lab.out,
        shop_quick_lab.marker,
    )
    # 0 passed; 3 inconclusive (the load driver was starved: judged below, after what holds anyway).
    failed = [h for h in result.get("hypotheses", []) if h["passed"] is False]
    assert done.returncode in (0, 3), f"{failed or done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == (3 if result["verdict"] == "inconclusive" else 0)

    # Nothing left running, every fault removed and verified.
    assert [] == wait_no_marked(marker)
    assert ["off", "typical", "on"] == list(result["runs"])
    for mode in ("off", "typical", "on"):
        cleanup = result["runs"][mode]["cleanup"]
        assert cleanup["clean"], cleanup
        assert [] == result["runs"][mode]["killed_at_stop"]

    on, off, typical = result["runs"]["on"], result["runs"]["off"], result["runs"]["typical"]
    runs = (off, typical, on)
    # Nothing acknowledged lost, in every run, whatever the driver's lag.
    for run in runs:
        assert run["history"]["valid"] is True
        assert 0 == run["history"]["lost_count"]
    # Every figure for every run (issue 22): unfinished orders, attempts per dependency instance,
    # the load and the budget each fault cost, the recovery after it.
    for run in runs:
        assert 0 <= run["pending"]["count"] <= run["history"]["acknowledged_count"]
        assert {"inventory", "payments-1", "payments-2", "datastore"} == set(run["attempts"])
        assert all(a["total"] > 0 for a in run["attempts"].values())
        for f in run["faults"]:
            assert {"budget_consumed", "bad_requests", "amplification", "failing"} <= set(f)
        assert all("recovered_after" in r for r in run["recovery"])
    # Issue 18: with the policies, orders accepted during the inventory outage went through the
    # datastore's outbox: none is left pending, each was reserved once and charged once.  In
    # every run nothing was applied twice.
    assert 0 == on["pending"]["count"]
    for name in ("reserved", "charged"):
        assert on["effects"][name]["once"] == on["history"]["acknowledged_count"]
        for run in runs:
            assert 0 == run["effects"][name]["duplicated_count"], run["effects"]
    # Without an outbox, every acknowledged order the inventory never reserved is one the typical
    # run left pending.  Not the converse: a reservation the inventory applied but whose answer
    # the api lost (a timeout as the outage began) is pending too (seen once: 298 pending, 297
    # never reserved, the extra one the first order of the outage).
    missing = typical["effects"]["reserved"]["missing_count"]
    assert 0 < missing <= typical["pending"]["count"]
    # The comparison with typical is in the hypotheses, one per fault and SLO at least.
    compared = [h for h in result["hypotheses"] if "than typical" in h["hypothesis"]]
    assert len(compared) >= len(on["faults"]) * len(on["slos"])
    # The driver's own lag is measured and reported for every run.
    for run in runs:
        lag = run["driver"]
        assert lag["count"] == sum(r["total"] for r in run["requests"].values()) > 0
        assert 0 <= lag["p50"] <= lag["p99"] <= lag["max"] and lag["limit"] == 0.2
        assert lag["starved"] == (lag["p99"] > lag["limit"])
        if not lag["starved"]:
            assert "passed" == run["verdict"], result["hypotheses"]
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert "Load driver" in report and "lag p99" in report
    assert "<th>off</th><th>typical</th><th>Buttress</th>" in report
    # Timeouts count at the client timeout (2 s): the latency spike of payments times requests
    # out without the policies, and the p99 series shows it.
    assert 2.0 == max(p for p in off["series"]["checkout_p99"] if p is not None)
    assert sum(off["series"]["checkout_timeouts"]) == off["requests"]["checkout"]["timed_out"] > 0
    # Every breaker the api published is charted, the inventory breaker among them.
    assert any("inventory" in n for n in on["breaker_names"]), on["breaker_names"]
    assert 'id="breaker-0"' in report
    if result["verdict"] == "inconclusive":
        starved = {m: r["driver"] for m, r in result["runs"].items() if r["driver"]["starved"]}
        assert starved and any(h["passed"] is None for h in result["hypotheses"])
        # An honest "inconclusive" with the lag figures is the designed outcome on a starved
        # machine (issue 14): what it reports is checked above; the SLO figures below would be
        # the driver's, not the system's.
        return
    assert "passed" == result["verdict"]
    checkout_on = next(s for s in on["slos"] if s["name"] == "checkout")
    checkout_off = next(s for s in off["slos"] if s["name"] == "checkout")
    # The figures of the issue: 99.5% held with the policies, burned without, apart from the
    # datastore crash (a single point of failure), whose share the hypothesis leaves out.
    by_fault = {f["name"]: f for f in on["faults"]}
    crash = by_fault["datastore-crash"]
    assert crash["applied_at"] is not None and crash["removed_at"] is not None
    outside = checkout_on["budget_consumed"] - crash["budget_consumed"]["checkout"]
    assert outside <= 1.0, (checkout_on, crash)
    assert "burned" == checkout_off["verdict"]
    assert checkout_off["sli"] < 0.995
    # Through the latency spike and the inventory outage, the policies keep the budget.
    for name in ("payments-latency", "inventory-outage"):
        assert by_fault[name]["applied_at"] is not None and by_fault[name]["removed_at"] is not None
        assert by_fault[name]["budget_consumed"]["checkout"] < 1.0
        off_fault = next(f for f in off["faults"] if f["name"] == name)
        assert off_fault["budget_consumed"]["checkout"] > 1.0  # alone enough to burn the SLO
    # Every run acknowledged orders.
    for run in runs:
        assert run["history"]["acknowledged_count"] > 50
    assert on["history"]["acknowledged_count"] > off["history"]["acknowledged_count"]
    # The breaker opened during the inventory outage with the policies on.
    assert "open" in {b["state"] for b in on["breakers"]}
    # The services recorded SLIs into the run's store too.
    assert checkout_on["service_total"] > 0

    assert result["passed"] is True
    assert all(h["passed"] for h in result["hypotheses"])
    assert "uPlot" in report and 'id="err-checkout"' in report and 'id="budget-checkout"' in report
    assert "<script src=" not in report and "<link " not in report  # self-contained
    assert (out / "result.json").exists()
    for mode in ("off", "typical", "on"):
        assert (out / f"policies-{mode}" / "history.jsonl").exists()
