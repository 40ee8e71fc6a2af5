"""What the page is given: breaker timelines, stale sources, the assessment summary, the
coalesced state changes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from buttress.dashboard.feed import FeedWriter, StateEvent, Update
from buttress.dashboard.state import DashboardConfig, DashboardData, coalesce_events
from buttress.slo.store import SLIStore

from .conftest import SPEC


def brk(state: str, t: float, kind: str, frm: str | None = None) -> Update:
    level = {"closed": "ok", "half_open": "warn", "open": "bad"}[state]
    fields = {"from_state": frm} if frm else {}
    return Update("circuit_breaker", "payments", "brk", state, level, fields, t, kind)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    p = tmp_path / "s.db"
    SLIStore(p).close()
    return p


def test_breaker_timeline_as_steps(db: Path) -> None:
    now = time.time()
    with FeedWriter(db, source="svc") as w:
        w.write([brk("closed", now - 100, "state")])  # the publisher's first sample
        w.write([brk("open", now - 50, "opened", "closed")])
        w.write([brk("half_open", now - 20, "half_opened", "open")])
    d = DashboardData(DashboardConfig(store=db))
    (tl,) = d.states_payload(now)["timelines"]
    assert [now - 100, now - 50, now - 20, now] == pytest.approx(tl["x"])
    assert [0, 2, 1, 1] == tl["y"]
    d.close()


def test_breaker_open_since_before_the_window(db: Path) -> None:
    now = time.time()
    with FeedWriter(db, source="svc") as w:
        w.write([brk("open", now - 3600, "opened", "closed")])
    d = DashboardData(DashboardConfig(store=db, timeline_minutes=15))
    (tl,) = d.states_payload(now)["timelines"]
    assert [now - 900, now] == pytest.approx(tl["x"])
    assert [2, 2] == tl["y"]
    d.close()


def test_states_of_a_silent_or_stopped_source_are_stale(db: Path) -> None:
    now = time.time()
    for source, hb_state, age in (
        ("live", "up", 1.0),
        ("silent", "up", 30.0),
        ("gone", "stopped", 1.0),
    ):
        with FeedWriter(db, source=source) as w:
            w.write(
                [
                    Update("bulkhead", "p", f"bh-{source}", "ok", "ok", {}, now, "state"),
                    Update("source", "process", source, hb_state, "ok", {"watching": 1}, now - age),
                ]
            )
    with FeedWriter(db, source="no-heartbeat") as w:
        w.write([Update("endpoint", "pool", "http://a", "healthy", "ok", {}, now - 999, "set")])
    d = DashboardData(DashboardConfig(store=db, stale_after=5.0))
    p = d.states_payload(now)
    stale = {s["name"]: s["stale"] for s in p["states"]}
    assert {"bh-live": False, "bh-silent": True, "bh-gone": True, "http://a": False} == stale
    alive = {s["source"]: s["alive"] for s in p["sources"]}
    assert {"live": True, "silent": False, "gone": False} == alive
    assert all(s["policy_type"] != "source" for s in p["states"])
    d.close()


def test_assessment_summary_from_the_spec(db: Path) -> None:
    d = DashboardData(DashboardConfig(store=db, spec=SPEC))
    a = d.assessment_payload()
    (j,) = a["summary"]["journeys"]
    assert ("checkout", 0.999, True) == (j["name"], j["target"], j["meets_target"])
    assert {"payments", "db"} == set(a["summary"]["single_points"])
    assert j["risks"] and j["risks"][0]["mode"] == "payments down"
    d.close()


def test_spec_without_architecture_has_no_assessment(db: Path, tmp_path: Path) -> None:
    spec = tmp_path / "r.yaml"
    spec.write_text("version: 1\nservice: s\nslos: []\n")
    d = DashboardData(DashboardConfig(store=db, spec=spec))
    assert {"enabled": False, "summary": None, "error": None} == d.assessment_payload()
    assert [] == d.slos_payload()["slos"]
    d.close()


def _same_minute_window() -> None:
    """Wait out the last 2 s of a minute, so two quick calls see the same minute."""
    while time.time() % 60 > 58:
        time.sleep(0.1)


def test_board_is_reused_within_a_minute_after_it_settles(db: Path) -> None:
    """After ``settle`` seconds into a minute only the filling minute is refreshed; with a long
    ``settle`` every refresh re-evaluates."""
    spec = SPEC
    for settle, expect_reuse in ((0.0, True), (60.0, False)):
        _same_minute_window()
        now_min = int(time.time() // 60)
        with SLIStore(db) as s:
            s.add([("checkout-availability", now_min - 5, 100, 100)])
            d = DashboardData(DashboardConfig(store=db, spec=spec, settle=settle))
            before = {e["name"]: e for e in d.slos_payload()["slos"]}["checkout-availability"]
            s.add([("checkout-availability", now_min - 4, 0, 100)])  # a late count, past minute
            s.add([("checkout-availability", now_min, 1, 2)])  # the minute still filling
            after = {e["name"]: e for e in d.slos_payload()["slos"]}["checkout-availability"]
        assert 2 == after["recent"]["total"][-1]  # the filling minute is always fresh
        assert (True, 2) == (after["so_far"]["partial"], after["so_far"]["partial_total"])
        assert 202 == after["so_far"]["total"]  # the late count is in the figures so far
        if expect_reuse:
            assert before["budget_remaining"] == after["budget_remaining"]
        else:
            assert after["budget_remaining"] < before["budget_remaining"]
        d.close()
        db.unlink()
        SLIStore(db).close()


# -- recent state changes, coalesced --------------------------------------------------------------


def ev(seq: int, t: float, name: str, state: str, kind: str = "state", **kw: str) -> StateEvent:
    level = {"ok": "ok", "closed": "ok", "saturated": "warn", "rejecting": "bad", "open": "bad"}
    policy = "circuit_breaker" if name == "brk" else "bulkhead"
    return StateEvent(seq, t, kw.get("source", "svc"), policy, "p", name, kind, state, level[state])


def test_a_flapping_component_is_one_row_with_its_count_span_and_tallies() -> None:
    cycle = ["saturated", "rejecting", "ok"]
    events = [ev(i + 1, 100 + i, "bh", cycle[i % 3]) for i in range(30)]
    events.insert(12, ev(100, 111.5, "brk", "open", "opened"))
    rows = coalesce_events(events, gap=60)
    assert ["bh", "brk"] == [r["name"] for r in rows]  # newest change first
    bh, brk = rows
    assert (30, 100, 129) == (bh["count"], bh["first"], bh["last"])
    assert {"saturated": 10, "rejecting": 10, "ok": 10} == bh["states"]
    assert {"saturated": "warn", "rejecting": "bad", "ok": "ok"} == bh["levels"]
    assert {"state": 30} == bh["kinds"]
    assert ("ok", "ok", "bad") == (bh["state"], bh["level"], bh["worst"])
    assert [29, 28] == [m["time"] - 100 for m in bh["members"][:2]]  # newest first
    assert (1, "opened", "open", "bad") == (brk["count"], brk["kind"], brk["state"], brk["worst"])
    assert len(events) == sum(r["count"] for r in rows)  # nothing lost


def test_changes_further_apart_than_the_gap_are_separate_rows() -> None:
    events = [ev(1, 0, "bh", "saturated"), ev(2, 10, "bh", "ok"), ev(3, 100, "bh", "saturated")]
    events.append(ev(4, 100, "bh", "ok", source="other"))  # another process's bulkhead
    rows = coalesce_events(events, gap=60)
    assert [(1, "other"), (1, "svc"), (2, "svc")] == [(r["count"], r["source"]) for r in rows]
    assert [(0, 10)] == [(r["first"], r["last"]) for r in rows if r["count"] == 2]


def test_a_row_lists_its_newest_changes_and_counts_them_all() -> None:
    events = [ev(i + 1, float(i), "bh", ["ok", "saturated"][i % 2]) for i in range(500)]
    (row,) = coalesce_events(events, members=50)
    assert (500, 50) == (row["count"], len(row["members"]))
    assert [500, 499] == [m["seq"] for m in row["members"][:2]]
    assert {"ok": 250, "saturated": 250} == row["states"]


def test_states_payload_carries_the_coalesced_changes(db: Path) -> None:
    now = time.time()
    with FeedWriter(db, source="svc") as w:
        for i in range(90):
            state = ["ok", "saturated", "rejecting"][i % 3]
            level = {"ok": "ok", "saturated": "warn", "rejecting": "bad"}[state]
            w.write([Update("bulkhead", "p", "bh", state, level, {}, now - 45 + i / 2, "state")])
        w.write([brk("open", now - 30, "opened", "closed")])
        w.write([Update("source", "process", "svc", "up", "ok", {}, now, "state")])
    d = DashboardData(DashboardConfig(store=db, coalesce_gap=60))
    p = d.states_payload(now)
    assert [("bulkhead", 90), ("circuit_breaker", 1)] == [
        (c["policy_type"], c["count"]) for c in p["changes"]
    ]
    assert now - 900 == p["changes_since"]
    assert 91 == len(p["events"])  # the raw events are still there (no heartbeat among them)
    d.close()
