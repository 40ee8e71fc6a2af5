"""`buttress lab --prometheus` without processes: the compressed rules (checked by promtool), the
embedded evaluator's firing steps against hand-computed ones, the comparison and its hypothesis,
the time to detect per fault, and the error when the binaries are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from buttress.lab.errors import LabError
from buttress.lab.system import alerts
from buttress.lab.system.load import load_lab
from buttress.lab.system.prometheus import PACKAGES, PROMETHEUS_ENV, binaries, detection
from buttress.slo.rules import to_yaml
from buttress.slo.spec import SLOSpec

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"


def slo(objective: float = 99.0, **alerting: object) -> SLOSpec:
    return SLOSpec.model_validate(
        {
            "name": "checkout",
            "service": "shop",
            "objective": objective,
            "window": "30d",
            "sli": {"kind": "latency", "threshold": 2.0, "pipeline": "checkout"},
            "alerting": alerting,
        }
    )


def test_compressed_divides_every_window_and_keeps_the_thresholds() -> None:
    original = slo(tiers=[{"name": "page-1h", "long_window": "1h", "short_window": "5m",
                           "budget_fraction": 0.02, "alert_after": "2m"}])  # fmt: skip
    fast = alerts.compressed(original)
    assert 43_200 == fast.period
    (tier,) = fast.alerting.tiers
    assert (60.0, 5.0, 2.0) == (tier.long_window, tier.short_window, tier.alert_after)
    assert [t.threshold for t in original.tiers()] == [t.threshold for t in fast.tiers()]
    assert 10.0 == fast.alerting.absent_for
    _, good, total = fast.sli.queries()
    assert 'buttress_sli_events_total{sli="checkout",outcome="good"}[{{.window}}]' in str(good)
    assert 'buttress_sli_events_total{sli="checkout"}[{{.window}}]' in str(total)


def test_the_shops_lab_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run scripts/sysdeps.sh (Debian package prometheus)")
    lab = load_lab(SHOP)
    doc = alerts.lab_rules(lab.spec.slos, "shop")
    path = tmp_path / "rules.yml"
    path.write_text(to_yaml(doc))
    check = [promtool, "check", "rules", str(path)]
    done = subprocess.run(check, check=False, capture_output=True, text=True)
    assert 0 == done.returncode, done.stdout + done.stderr
    loaded = yaml.safe_load(path.read_text())
    names = [g["name"] for g in loaded["groups"]]
    assert ["buttress-slo-shop-checkout", "buttress-slo-shop-browse"] == names
    rules = loaded["groups"][0]["rules"]
    page = next(r for r in rules if r.get("labels", {}).get("burn_tier") == "page-1h")
    assert "slo:sli_error:ratio_rate1m" in page["expr"]
    assert "slo:sli_error:ratio_rate5s" in page["expr"]
    assert "compressed 60x" in page["annotations"]["time_compression"]
    assert all(g["interval"] == "1s" for g in loaded["groups"])


def test_embedded_firing_at_the_hand_computed_steps() -> None:
    """99% SLO (b = 0.01): page-1h needs both windows above 14.4 x 0.01 = 14.4%, page-6h above
    6%.  100 events a step, half of them bad from count 10 on; step k sees counts [k - W, k).
    page-1h: its 5-step window holds 100 bad of 500 (20%) from k = 12; its 60-step window holds
    everything so far, 50 (k - 10) / 100 k > 0.144 from k = 15: first fired at 15.  page-6h: both
    windows hold everything so far, 50 (k - 10) / 100 k > 0.06 from k = 12."""
    good = [100] * 10 + [50] * 20
    total = [100] * 30
    fired = alerts.embedded_firing([slo()], {"checkout": (good, total)}, 30)
    assert 15 == fired[("checkout", "page-1h")][0]
    assert 12 == fired[("checkout", "page-6h")][0]
    assert list(range(15, 31)) == fired[("checkout", "page-1h")]


def test_episodes_and_agreement() -> None:
    assert [(1.0, 3.0), (7.0, 7.0)] == alerts.episodes([1.0, 2.0, 3.0, 7.0], 2.5)
    rows = alerts.compare(
        [slo()],
        prometheus={("checkout", "page-1h"): [6.0, 7.0, 8.0], ("checkout", "ticket-1d"): [29.5]},
        embedded={("checkout", "page-1h"): [5, 6, 7], ("checkout", "page-6h"): [3]},
        users={("checkout", "page-1h"): [4]},
        phase={"checkout": -0.5},
        end=30.0,
    )
    by_tier = {r["tier"]: r for r in rows}
    page = by_tier["page-1h"]
    assert (6.0, 4.5, 1.5, True) == (
        page["prometheus"], page["embedded"], page["difference"], page["agree"]
    )  # fmt: skip
    assert (9.0, 7.5, 4.0) == (
        page["prometheus_resolved"], page["embedded_resolved"], page["users_view"]
    )  # fmt: skip
    assert by_tier["page-6h"]["agree"] is False  # embedded only, long before the end
    assert by_tier["ticket-1d"]["agree"] is True  # Prometheus only, within 2 s of the end
    assert by_tier["ticket-1d"]["prometheus_resolved"] is None  # still firing
    (hyp,) = alerts.alert_hypotheses({"off": {"prometheus": {"factor": 60.0, "alerts": rows}}})
    assert hyp["passed"] is False
    assert "page-6h: Prometheus never, embedded 2.5 s" in hyp["observed"]
    prom = {"factor": 60.0, "tolerance": 2.0, "alerts": rows, "detection": [], "incidents": []}
    tables = alerts.alert_tables({"off": {"prometheus": prom}}, {"off": "off"})
    assert tables is not None
    assert ["yes", "NO", "yes"] == [r[-1] for r in tables["alerts"]]


def test_time_to_detect_per_fault() -> None:
    faults = [
        {"name": "a", "applied_at": 2.0},
        {"name": "b", "applied_at": 10.0},
        {"name": "never", "applied_at": None},
        {"name": "c", "applied_at": 20.0},
    ]
    incidents = [
        {"id": 1, "title": "T", "tier": "page-1h", "detected": 5.5, "resolved": None},
        {"id": 2, "title": "T", "tier": "page-6h", "detected": 21.0, "resolved": 25.0},
    ]
    got = detection(faults, incidents, duration=30.0)
    assert [("a", 1, 3.5), ("b", None, None), ("c", 2, 1.0)] == [
        (d["fault"], d["incident"], d["time_to_detect"]) for d in got
    ]
    assert [1] == got[1]["open"]  # b met incident 1 still open: no new incident


def test_missing_binaries_name_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROMETHEUS_ENV, "/nonexistent/prometheus")
    with pytest.raises(LabError) as err:
        binaries()
    text = str(err.value)
    assert "/nonexistent/prometheus" in text
    assert f"apt-get install {' '.join(PACKAGES)}" in text


def test_lab_refuses_to_start_without_the_binaries(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "lab", str(SHOP), "--quick", "--prometheus",
         "--runs", "off", "--out", str(tmp_path / "out")],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, PROMETHEUS_ENV: "/nonexistent/prometheus"},
        timeout=60,
    )  # fmt: skip
    assert 2 == done.returncode, done.stderr
    assert "apt-get install prometheus prometheus-alertmanager" in done.stderr
    assert "services and the fault proxy are up" not in done.stderr
