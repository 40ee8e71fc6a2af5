"""The dashboard's lab section (issue 22): a lab's result.json shown as its runs side by side (off,
typical, Buttress) with its hypotheses, in a real Chromium, and updated when the lab writes a new
result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from buttress.dashboard.state import DashboardConfig, DashboardData
from buttress.lab.system.compare import beats_typical
from buttress.lab.system.report import notes, rows
from buttress.slo import SLIStore
from lab.test_compare import _run


def _result(verdict: str, bad_on: int) -> dict[str, Any]:
    runs = {
        "off": _run({"outage": 90}, {"outage": 1.0}),
        "typical": _run({"outage": 40}, {"outage": 3.0}, pending=7),
        "on": _run({"outage": bad_on}, {"outage": 0.5}, pending=12),
    }
    result: dict[str, Any] = {"runs": runs, "hypotheses": beats_typical(runs), "verdict": verdict}
    result["side_by_side"] = rows(result)
    result["notes"] = notes(result)
    return result


def _store(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    SLIStore(path).close()
    return path


def test_the_payload_is_the_lab_table_or_says_why_there_is_none(tmp_path: Path) -> None:
    out = tmp_path / "lab-report"
    data = DashboardData(DashboardConfig(store=_store(tmp_path), lab=out))
    try:
        assert "no result yet" in data.lab_payload()["note"]
        out.mkdir()
        (out / "result.json").write_text("{not json", encoding="utf-8")
        assert "not a lab result.json" in data.lab_payload()["note"]
        (out / "result.json").write_text(json.dumps(_result("passed", 2)), encoding="utf-8")
        payload = data.lab_payload()
        assert ["off", "typical", "Buttress"] == payload["columns"]
        rows_by_label = {r[0]: r[1:] for r in payload["rows"]}
        assert ["0", "7", "12"] == rows_by_label["orders left unfinished"]
        assert payload["verdict"] == "passed" and payload["hypotheses"]
        assert "lab" in data.snapshot()
    finally:
        data.close()
    assert {"enabled": False} == DashboardData(
        DashboardConfig(store=_store(tmp_path))
    ).lab_payload()


def test_the_page_shows_three_columns_and_follows_a_new_result(
    page: Any, served_factory: Any, tmp_path: Path
) -> None:
    out = tmp_path / "lab-report"
    out.mkdir()
    result_file = out / "result.json"
    result_file.write_text(json.dumps(_result("passed", 2)), encoding="utf-8")
    served = served_factory(
        DashboardConfig(store=_store(tmp_path), lab=out, poll=0.05, journals_every=0.2)
    )
    page.goto(served.url + "/")
    page.wait_for_selector("#lab table")
    heads = page.locator("#lab table").first.locator("th").all_inner_texts()
    assert ["", "off", "typical", "Buttress"] == [h.strip() for h in heads]
    assert "passed" in page.locator("#lab .badge").first.inner_text()
    assert "orders left unfinished" in page.locator("#lab").inner_text()
    # The lab writes a new result: the section follows without a reload.
    result_file.write_text(json.dumps(_result("failed", 80)), encoding="utf-8")
    page.wait_for_function(
        "() => document.querySelector('#lab .badge').textContent.includes('failed')", timeout=10_000
    )
    assert "FAILED" in page.locator("#lab").inner_text()
