"""A postmortem from a recorded run: an SLI store with per-minute counts, a state feed with health
and breaker transitions (written by the real publishers' writer), a Chaos Toolkit journal, a
deploy marker and an incident that went through its lifecycle; the timeline is checked event by
event and the impact against hand-computed figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.dashboard.feed import FeedWriter, Update
from buttress.incident import IncidentStore, parse_generic
from buttress.incident.postmortem import (
    load_risks,
    postmortem_context,
    render_html,
    render_markdown,
)
from buttress.incident.timeline import build_timeline
from buttress.slo.load import load_slos
from buttress.slo.store import SLIStore

T = 1_767_225_600.0  # 2026-01-01T00:00:00Z
M = 60.0

SPEC = """\
version: 1
service: shop
slos:
  - name: shop-availability
    objective: 99
    window: 30d
    sli:
      kind: ratio
      bad: sum(rate(errors_total[{{.window}}]))
      total: sum(rate(requests_total[{{.window}}]))
architecture:
  components:
    web: {replicas: 2, mtbf: 1000h, mttr: 30m, depends_on: {db: hard}}
    db: {availability: 0.9995, mttr: 1h, detect: 10m}
  journeys:
    checkout: {entry: web, target: 0.999}
"""


def _iso_naive(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


@pytest.fixture
def recorded(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "reliability.yaml"
    spec.write_text(SPEC)
    slo_db = tmp_path / "slo.db"
    base = int(T // 60)
    rows = []
    for minute in range(base - 60, base + 60):  # 100 requests a minute for two hours
        bad = 50 if minute == base + 15 else 20 if base + 11 <= minute <= base + 20 else 0
        rows.append(("shop-availability", minute, 100 - bad, 100))
    with SLIStore(slo_db) as sli:
        sli.add(rows)
    with FeedWriter(slo_db, source="shop:1") as feed:
        for at, ptype, state, level in [
            (T + 11 * M + 30, "health", "fail", "bad"),
            (T + 12 * M + 5, "circuit_breaker", "open", "bad"),
            (T + 19 * M, "circuit_breaker", "half_open", "warn"),
            (T + 21 * M, "circuit_breaker", "closed", "ok"),
        ]:
            feed.write([Update(ptype, "shop", "db", state, level, {}, at, log="transition")])
        # outside the window: not on the timeline
        feed.write([Update("health", "shop", "db", "pass", "ok", {}, T - 3 * 3600, log="x")])
    journal = tmp_path / "journals" / "kill-db.json"
    journal.parent.mkdir()
    journal.write_text(
        json.dumps(
            {
                "experiment": {"title": "kill the database"},
                "status": "completed",
                "deviated": False,
                "start": _iso_naive(T + 9 * M + 50),
                "end": _iso_naive(T + 25 * M),
                "run": [
                    {
                        "activity": {"name": "kill-db", "type": "action"},
                        "status": "succeeded",
                        "start": _iso_naive(T + 10 * M + 10),
                        "end": _iso_naive(T + 10 * M + 11),
                    }
                ],
                "rollbacks": [],
            }
        )
    )
    (journal.parent / "notes.json").write_text("not a journal")  # skipped, not fatal
    inc_db = tmp_path / "inc.db"
    with IncidentStore(inc_db) as store:
        store.add_deploy("shop", "2.0", actor="ci-7", at=T + 10 * M)
        firing = parse_generic(
            {
                "key": "shop-availability",
                "status": "firing",
                "title": "shop errors",
                "service": "shop",
                "mode": "db-down",
                "started_at": T + 14 * M,
            }
        )
        [o] = store.ingest([firing], received=T + 15 * M)
        assert o.incident == 1
        store.transition(1, "acknowledged", actor="alice", at=T + 16 * M)
        store.transition(1, "mitigated", actor="bob", at=T + 19 * M, note="failed over the db")
        store.transition(1, "resolved", actor="carol", at=T + 22 * M)
        store.add_action_item(1, "add a db replica", owner="dba", risk="unit:db[0]", at=T + 23 * M)
        store.add_action_item(1, "page faster", owner="sre", risk="unit:nope", at=T + 23 * M)
    return {"spec": spec, "slo": slo_db, "inc": inc_db, "journals": journal.parent}


def test_timeline_event_by_event(recorded: dict[str, Path]) -> None:
    with IncidentStore(recorded["inc"]) as store, SLIStore(recorded["slo"]) as sli:
        tl = build_timeline(
            store.get(1),
            store.log(1),
            deploys=store.deploys(),
            slos=load_slos(recorded["spec"]),
            sli_store=sli,
            feed=recorded["slo"],
            journals=[recorded["journals"]],
        )
    got = [(round(e.time - T), e.source, e.text) for e in tl.entries]
    assert got == [
        (590, "chaos", "chaos experiment 'kill the database' began"),
        (600, "deploy", "deploy of shop 2.0 by ci-7"),
        (610, "chaos", "chaos action 'kill-db': succeeded"),
        (660, "slo", "SLO shop-availability: errors began"),
        (690, "feed", "health shop/db: fail"),
        (725, "feed", "circuit_breaker shop/db: open"),
        (900, "slo", "SLO shop-availability: worst minute, 50.0% failing (burn rate 50.0x)"),
        (900, "incident", "incident detected (webhook)"),
        (960, "incident", "acknowledged by alice"),
        (1140, "feed", "circuit_breaker shop/db: half_open"),
        (1140, "incident", "mitigated by bob: failed over the db"),
        (1260, "feed", "circuit_breaker shop/db: closed"),
        (
            1260,
            "slo",
            "SLO shop-availability: errors stopped; 230 failed, 1211.7 budget minutes "
            "(280.5% of the period's)",
        ),
        (1320, "incident", "resolved by carol"),
        (1500, "chaos", "chaos experiment 'kill the database' ended: completed"),
    ]
    [impact] = tl.impacts
    # by hand: 9 minutes of 20 failures and one of 50; the window [started - 30 min, resolved)
    # holds 38 minutes of 100 requests; the 30-day period ending then holds 82 recorded minutes
    assert (impact.failed, impact.total) == (230, 3800)
    assert impact.budget_share == pytest.approx(230 / (0.01 * 8200))
    assert impact.period_budget_minutes == pytest.approx(0.01 * 30 * 1440)
    assert impact.budget_minutes == pytest.approx(230 / 82 * 432)
    assert (impact.peak_failing_share, impact.peak_burn_rate) == pytest.approx((0.5, 50.0))


def test_postmortem_markdown_and_html(recorded: dict[str, Path]) -> None:
    with IncidentStore(recorded["inc"]) as store, SLIStore(recorded["slo"]) as sli:
        tl = build_timeline(
            store.get(1),
            store.log(1),
            deploys=store.deploys(),
            slos=load_slos(recorded["spec"]),
            sli_store=sli,
            journals=[recorded["journals"]],
        )
        items = store.action_items(incident=1)
    risks = load_risks(recorded["spec"])
    db_risk = max((r for r in risks if r.event == "unit:db[0]"), key=lambda r: r.bad_minutes)
    ctx = postmortem_context(tl, items, risks)
    md = render_markdown(ctx)
    for heading in (
        "## Summary", "## Impact", "## Root causes", "## Trigger", "## Resolution",
        "## Detection", "## Action items", "## Lessons learned", "## Timeline",
    ):  # fmt: skip
        assert heading in md
    assert "1211.7 budget minutes in all; 230 requests failed" in md
    assert "- 2026-01-01 00:10:00Z deploy of shop 2.0 by ci-7" in md  # a trigger candidate
    assert "| time to detect | 4.0 min |" in md  # errors began 00:11, detected 00:15
    assert "| time to recover | 8.0 min |" in md  # alert started 00:14, resolved 00:22
    row = next(line for line in md.splitlines() if line.startswith("| add a db replica"))
    assert f"{db_risk.bad_minutes:.1f} | {db_risk.rpn} |" in row
    assert "unit:nope (not in the risk register)" in md
    html = render_html(ctx)
    assert html.startswith("<!doctype html>")
    assert "<h2>Action items</h2>" in html and "(not in the risk register)" in html
    assert "kill the database&#39; began" in html  # autoescaped


def test_cli_timeline_postmortem_and_action(recorded: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--store", str(recorded["inc"]), "--slo-store", str(recorded["slo"])]
    r = runner.invoke(main, ["incident", "timeline", "1", *common, "--spec", str(recorded["spec"])])
    assert r.exit_code == 0, r.output
    assert "feed      circuit_breaker shop/db: open" in r.output
    out = tmp_path / "pm.html"
    r = runner.invoke(
        main,
        ["incident", "postmortem", "1", *common, "--spec", str(recorded["spec"]), "--html",
         "-o", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "<h1>Postmortem: shop errors</h1>" in out.read_text()
    r = runner.invoke(
        main,
        ["incident", "action", "1", "--store", str(recorded["inc"]), "--title", "t",
         "--owner", "o", "--risk", "unit:db[1]", "--spec", str(recorded["spec"])],
    )  # fmt: skip
    assert r.exit_code == 2
    assert "not an event of the risk register; did you mean 'unit:db[0]'?" in r.output
