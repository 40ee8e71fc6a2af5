"""A postmortem from a recorded lab run: the shop's quick lab (``shop_quick_lab``, run once for
this test and test_lab_quick.py), its Buttress run's directory is the recording --
``store.db`` with the SLI minutes and the state feed the services published, ``result.json`` with
the run's start and each fault's times.  An incident spanning the faults is opened and resolved
through the generic webhook's parser, as a receiver would; its timeline is then checked event by
event against the recording read independently, and the postmortem drafted from it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from buttress.incident import IncidentStore, parse_generic
from buttress.incident.postmortem import (
    load_risks,
    postmortem_context,
    render_html,
    render_markdown,
)
from buttress.incident.timeline import DEFAULT_AFTER, DEFAULT_BEFORE, build_timeline
from buttress.slo.load import load_slos
from buttress.slo.store import SLIStore

from .conftest import QuickLab

ROOT = Path(__file__).resolve().parents[2]
SHOP_SPEC = ROOT / "examples" / "shop" / "reliability.yaml"
FEED_SOURCES = ("feed", "supervisor", "remediation")


@pytest.fixture
def lab_run(shop_quick_lab: QuickLab) -> dict[str, Any]:
    # 0 held, 1 a hypothesis failed, 3 inconclusive (a starved driver): all recorded a run
    assert shop_quick_lab.done.returncode in (0, 1, 3), shop_quick_lab.done.stderr[-3000:]
    result = json.loads((shop_quick_lab.out / "result.json").read_text(encoding="utf-8"))
    run = result["runs"]["on"]
    return {"run": run, "store": Path(run["dir"]) / "store.db"}


def _incident(tmp: Path, run: dict[str, Any]) -> tuple[Path, float, float, float]:
    """An incident from the first fault's start to a second after the last one's end."""
    wall0 = run["wall_start"]
    faults = [f for f in run["faults"] if f.get("applied_at") is not None]
    started = wall0 + min(f["applied_at"] for f in faults)
    detected = started + 1.0
    resolved = wall0 + max(f["removed_at"] for f in faults) + 1.0
    path = tmp / "incidents.db"
    with IncidentStore(path) as store:
        firing = parse_generic({"key": "shop-lab", "status": "firing", "title": "shop lab faults",
                                "service": "shop", "mode": faults[0]["name"],
                                "started_at": started})  # fmt: skip
        store.ingest([firing], received=detected)
        store.transition(1, "resolved", actor="lab", at=resolved, note="faults removed")
    return path, started, detected, resolved


def _recorded_feed(store: Path, lo: float, hi: float) -> list[tuple[float, str]]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT time, policy_type || '.' || kind FROM buttress_events "
            "WHERE time >= ? AND time <= ? ORDER BY time, seq",
            (lo, hi),
        ).fetchall()
    finally:
        conn.close()
    return [(float(t), str(k)) for t, k in rows]


def test_postmortem_from_a_recorded_lab_run(lab_run: dict[str, Any], tmp_path: Path) -> None:
    run, store = lab_run["run"], lab_run["store"]
    inc_db, started, detected, resolved = _incident(tmp_path, run)
    slos = load_slos(SHOP_SPEC)
    with IncidentStore(inc_db) as incidents, SLIStore(store) as sli:
        tl = build_timeline(
            incidents.get(1), incidents.log(1), slos=slos, sli_store=sli, feed=store
        )
        lo, hi = started - DEFAULT_BEFORE, resolved + DEFAULT_AFTER
        assert (tl.start, tl.end) == (lo, hi)
        # Every minute of every SLO, read from the store on its own.
        first, last = int(lo // 60), -(-int(resolved) // 60)
        minutes = {s.name: sli.series(s.name, first, last) for s in slos}

    # 1. The incident's own steps, at their times.
    assert [(e.time, e.kind, e.text) for e in tl.entries if e.source == "incident"] == [
        (detected, "detected", "incident detected (webhook)"),
        (resolved, "resolved", "resolved by lab: faults removed"),
    ]
    # 2. Every state change the services published in the window, in order, none invented.
    recorded = _recorded_feed(store, lo, hi)
    assert any(k.startswith("circuit_breaker.") for _, k in recorded)  # the shop's guards acted
    assert [(e.time, e.kind) for e in tl.entries if e.source in FEED_SOURCES] == recorded
    # 3. Per SLO: errors began in the first minute with a failure, stopped after the last one,
    #    and the failures counted are the store's.
    for impact in tl.impacts:
        good, total = minutes[impact.slo]
        bad = [i for i, (g, t) in enumerate(zip(good, total, strict=True)) if t > g]
        entries = [e for e in tl.entries if e.source == "slo" and impact.slo in e.text]
        assert impact.failed == int((total - good).sum())
        assert impact.total == int(total.sum())
        if not bad:
            assert entries == []
            continue
        assert [e.kind for e in entries] == ["errors.start", "errors.peak", "errors.end"]
        assert entries[0].time == (first + bad[0]) * 60.0
        assert entries[2].time == (first + bad[-1] + 1) * 60.0
        assert f"{impact.failed} failed" in entries[2].text
    # 4. Oldest first (causes before effects at one instant).
    assert [e.time for e in tl.entries] == sorted(e.time for e in tl.entries)

    # The postmortem: the timeline line by line, the impact, an action item linked to a real risk
    # of the shop's register.
    risks = load_risks(SHOP_SPEC)
    risk = max(risks, key=lambda r: r.bad_minutes)
    with IncidentStore(inc_db) as incidents:
        incidents.add_action_item(1, "add an inventory replica", owner="shop", risk=risk.event)
        items = incidents.action_items(incident=1)
    context = postmortem_context(tl, items, risks)
    markdown = render_markdown(context)
    timeline_md = markdown.split("## Timeline", 1)[1]
    at = 0
    for e in tl.entries:  # each entry, in order (the same text may recur: search onwards)
        at = timeline_md.index(f"[{e.source}] {e.text}", at) + 1
    assert "add an inventory replica" in markdown and risk.event in markdown
    assert "shop lab faults" in render_html(context)
