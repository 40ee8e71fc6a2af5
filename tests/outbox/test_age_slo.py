"""The example's SLO on the age of the oldest outbox message (examples/outbox/reliability.yaml).

Its indicator is the gauge the outbox exports (``buttress_outbox_oldest_age_seconds``), so the
tests check both ends: the real collector, over a real SQLite outbox, exports the series the SLO
selects; and the rules generated from the example, run by the real promtool, page when a message
is stuck and stay quiet while the relay keeps up."""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import prometheus_client
import yaml
from click.testing import CliRunner

from buttress.cli import main
from buttress.outbox import SQLiteOutbox
from buttress.outbox.metrics import install
from buttress.slo.generate import build_outputs, write_outputs
from buttress.slo.load import load_slos

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "outbox" / "reliability.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
SELECTOR = re.compile(r'(buttress_outbox_oldest_age_seconds)\{queue="([^"]+)"\}')


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_example_validates_and_its_rules_pass_promtool_check(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["slo", "validate", str(EXAMPLE)])
    assert 0 == result.exit_code, result.output
    gen = build_outputs(load_slos(EXAMPLE))
    write_outputs(gen, tmp_path)
    checked = _promtool("check", "rules", "outbox-reserve-age.rules.yaml", cwd=tmp_path)
    assert 0 == checked.returncode, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_the_collector_exports_the_series_the_slo_selects(tmp_path: Path) -> None:
    (slo,) = load_slos(EXAMPLE)
    queries = {slo.sli.of.good, slo.sli.of.total}  # type: ignore[union-attr]
    selected = {m for q in queries for m in SELECTOR.findall(q or "")}
    assert {("buttress_outbox_oldest_age_seconds", "reserve")} == selected
    clock = [1000.0]
    outbox = SQLiteOutbox(tmp_path / "shop.db", queues=["reserve"], now=lambda: clock[0])
    registry = prometheus_client.CollectorRegistry()
    remove = install(outbox, registry)
    try:
        with sqlite3.connect(tmp_path / "shop.db") as conn:  # the producer's own transaction
            outbox.enqueue(conn, "reserve", {"order": 1})
        conn.close()
        clock[0] += 75.0  # the relay is down: the message waits
        age = registry.get_sample_value("buttress_outbox_oldest_age_seconds", {"queue": "reserve"})
        assert 75.0 == age  # above the SLO's 60 s: a bad sample
    finally:
        remove()
        outbox.close()


def _alert_test(
    series: str, fired: list[str], rules: dict[str, dict[str, object]]
) -> dict[str, object]:
    """A promtool test: ``series`` as the age gauge, the tiers ``fired`` at 75 minutes (their
    labels and annotations as the generated ``rules`` give them)."""
    return {
        "interval": "1m",
        "input_series": [
            {"series": 'buttress_outbox_oldest_age_seconds{queue="reserve"}', "values": series}
        ],
        "alert_rule_test": [
            {
                "eval_time": "75m",
                "alertname": "OutboxReserveAgeBurnRate",
                "exp_alerts": [
                    {
                        "exp_labels": rules[tier]["labels"],
                        "exp_annotations": rules[tier]["annotations"],
                    }
                    for tier in fired
                ],
            }
        ],
    }


def test_a_stuck_message_pages_and_a_relay_that_keeps_up_does_not(tmp_path: Path) -> None:
    gen = build_outputs(load_slos(EXAMPLE))
    write_outputs(gen, tmp_path)
    rules = yaml.safe_load((tmp_path / "outbox-reserve-age.rules.yaml").read_text())
    alerts = {
        r["labels"]["burn_tier"]: r
        for g in rules["groups"]
        for r in g["rules"]
        if r.get("alert") == "OutboxReserveAgeBurnRate"
    }
    assert {"page": 2, "ticket": 1} == {
        sev: [r["labels"]["severity"] for r in alerts.values()].count(sev)
        for sev in ("page", "ticket")
    }
    tests = {
        "rule_files": ["outbox-reserve-age.rules.yaml"],
        "evaluation_interval": "1m",
        "group_eval_order": [g["name"] for g in rules["groups"]],
        "tests": [
            # The relay is down from the start: the oldest message ages a minute per minute.  Every
            # minute after the first is bad: both pages fire, and the ticket.
            _alert_test("0+60x120", ["page-1h", "page-6h", "ticket-1d"], alerts),
            # The relay keeps up: messages never wait longer than 40 s.
            _alert_test("0 20 40 0 20 40 0 20 40 0 20 40 0+0x108", [], alerts),
        ],
    }
    (tmp_path / "age.test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    ran = _promtool("test", "rules", "age.test.yaml", cwd=tmp_path)
    assert 0 == ran.returncode, ran.stdout + ran.stderr
