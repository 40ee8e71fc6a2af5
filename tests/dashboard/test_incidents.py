"""The dashboard's incidents section (issue 19): open incidents with state, age and SLO impact,
and the history's time-to-x figures; in a real Chromium, an incident appears, is acknowledged and
is resolved live while a real uvicorn serves the page."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from buttress.dashboard.state import DashboardConfig, DashboardData
from buttress.errors import ButtressError
from buttress.incident import IncidentStore, parse_generic
from buttress.slo import SLIStore

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
"""


def _firing(key: str, started: float, *, mode: str = "db-down") -> Any:
    return parse_generic({"key": key, "status": "firing", "title": f"{key} errors",
                          "service": "shop", "mode": mode, "started_at": started})  # fmt: skip


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "slo.db"
    SLIStore(path).close()
    return path


def test_payload_open_incident_impact_and_time_to_x(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text(SPEC)
    slo_db = tmp_path / "slo.db"
    base = int(T // 60)
    with SLIStore(slo_db) as sli:  # 100 requests a minute; 20 fail in minutes 11 to 20
        sli.add([("shop-availability", m, 80 if base + 11 <= m <= base + 20 else 100, 100)
                 for m in range(base - 60, base + 60)])  # fmt: skip
    inc_db = tmp_path / "inc.db"
    with IncidentStore(inc_db) as store:
        # three resolved incidents a day apart, recovered in 60, 120 and 600 seconds
        for n, ttr in enumerate((60.0, 120.0, 600.0)):
            start = T - (3 - n) * 86400
            store.ingest([_firing(f"old-{n}", start)], received=start + 30)
            store.transition(n + 1, "resolved", actor="sre", at=start + ttr)
        store.ingest([_firing("shop-availability", T + 14 * M)], received=T + 15 * M)
        store.transition(4, "acknowledged", actor="alice", at=T + 16 * M)
    data = DashboardData(DashboardConfig(store=slo_db, spec=spec, incidents=inc_db))
    try:
        p = data.incidents_payload(now=T + 25 * M)
    finally:
        data.close()
    [inc] = p["open"]
    assert (inc["id"], inc["state"], inc["acknowledged_by"]) == (4, "acknowledged", "alice")
    assert (inc["started"], inc["detected"]) == (T + 14 * M, T + 15 * M)
    [impact] = inc["impact"]
    # by hand: the window [started - 30 min, now) holds 41 minutes of 100 requests, 10 of them
    # with 20 failures; the 30-day period ending at minute 25 holds 85 recorded minutes
    assert (impact["failed"], impact["total"]) == (200, 4100)
    assert impact["budget_share"] == pytest.approx(200 / (0.01 * 8500))
    assert impact["budget_minutes"] == pytest.approx(200 / 85 * 432)
    assert impact["peak_failing_share"] == pytest.approx(0.2)
    assert [i["id"] for i in p["resolved"]] == [3, 2, 1] and p["total"] == 4
    ttr = p["mttx"]["time_to_recover"]
    assert (ttr["n"], ttr["median"]["value"], ttr["mean"]) == (3, 120.0, 260.0)
    assert p["mttx"]["time_to_detect"]["n"] == 4  # every incident was detected 30 s or 1 min in
    assert p["mttx"]["time_to_detect"]["median"]["value"] == 30.0
    json.dumps(p, allow_nan=False)  # what the stream sends


def test_no_store_yet_and_bad_paths(tmp_path: Path) -> None:
    data = DashboardData(DashboardConfig(store=_store(tmp_path), incidents=tmp_path / "inc.db"))
    try:
        assert "no incident store yet" in data.incidents_payload()["note"]
        assert not (tmp_path / "inc.db").exists()  # the dashboard never creates it
        assert "incidents" in data.snapshot()
    finally:
        data.close()
    slo_db = _store(tmp_path)  # an SLO store given by mistake: named, and left untouched
    data = DashboardData(DashboardConfig(store=slo_db, incidents=slo_db))
    try:
        assert data.incidents_payload()["note"] == "not an incident store (no incidents table)"
    finally:
        data.close()
    with sqlite3.connect(slo_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "incidents" not in tables
    with pytest.raises(ButtressError, match=r"--incidents .*is a directory"):
        DashboardData(DashboardConfig(store=_store(tmp_path), incidents=tmp_path))
    off = DashboardData(DashboardConfig(store=_store(tmp_path)))
    try:
        assert off.incidents_payload() == {"enabled": False}
    finally:
        off.close()


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).inner_text())


def test_the_page_follows_an_incident_from_detection_to_resolution(
    page: Any, served_factory: Any, tmp_path: Path
) -> None:
    inc_db = tmp_path / "inc.db"
    served = served_factory(
        DashboardConfig(store=_store(tmp_path), incidents=inc_db, poll=0.05, journals_every=0.2)
    )
    page.goto(served.url + "/")
    page.wait_for_function(
        "() => document.getElementById('incidents').textContent.includes('no incident store yet')",
        timeout=10_000,
    )
    now = time.time()
    with IncidentStore(inc_db) as store:
        store.ingest([_firing("checkout-burn", now - 90, mode="payments-down")])
        row = '#incidents tr.incident[data-incident="1"]'
        page.wait_for_selector(row, timeout=10_000)
        assert "detected" in _text(page, row + " .badge")
        assert "checkout-burn errors" in _text(page, row)
        assert "shop / payments-down" in _text(page, row)
        assert "nobody yet" in _text(page, row)
        # ages from the alert's start (90 s ago: shown in minutes past 90 s) and the detection
        ages = page.locator(row + " .age").all_inner_texts()
        assert ages[0].strip() in {"90 s", "2 min"} and ages[1].strip().endswith(" s")
        page.wait_for_function(  # and they tick without any new payload
            f"() => document.querySelectorAll('{row} .age')[1].textContent !== '{ages[1]}'",
            timeout=5_000,
        )

        store.transition(1, "acknowledged", actor="alice")
        page.wait_for_function(
            "() => document.querySelector('#incidents tr.incident .badge')"
            ".textContent.includes('acknowledged')",
            timeout=10_000,
        )
        assert "acknowledged by alice" in _text(page, row)

        store.transition(1, "resolved", actor="carol", note="rolled back")
        page.wait_for_selector("#no-open-incident", timeout=10_000)
        resolved = '#incidents tr.resolved[data-incident="1"]'
        assert "by carol" in _text(page, resolved)
        recover = _text(page, '#incidents tr[data-metric="time_to_recover"]')
        assert recover.split("\t")[1].strip() == "1"  # n: the one resolved incident
    assert page.evaluate("window.ButtressDashboard.received.incidents") >= 4
    api = page.request.get(served.url + "/api/incidents").json()
    assert api["open"] == [] and api["resolved"][0]["resolved_by"] == "carol"


def test_cli_refuses_a_directory_as_the_incident_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from buttress.cli import main

    result = CliRunner().invoke(
        main, ["dashboard", "--store", str(_store(tmp_path)), "--incidents", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--incidents" in result.output and "is a directory" in result.output
    assert "Traceback" not in result.output
