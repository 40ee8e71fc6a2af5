"""The nothing-lost check must catch a real loss: a datastore with a planted write-behind bug
(orders acknowledged from memory, committed every half second) is SIGKILLed mid-load by the plan's
datastore-crash fault, and the lab must report the acknowledged orders it lost and fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import copy_shop, new_marker, run_lab, wait_no_marked

EXPERIMENTS = """
experiments:
  system:
    datastore:
      app: "shop.datastore:app"
      env: {SHOP_DB_POOL: "2", SHOP_CATALOGUE_COST: "0.1", SHOP_DB_WRITE_BEHIND: "0.5"}
    inventory: {app: "shop.inventory:app"}
    payments: {app: "shop.payments:app", instances: 2}
    api: {app: "shop.api:app", depends_on: [inventory, payments, datastore]}
  load:
    entry: api
    duration: 8s
    quick_duration: 8s
    timeout: 2s
    requests:
      checkout: {method: POST, path: /checkout, rate: 20, order: true}
    final_read: {service: datastore, path: /orders, field: ids}
  plan:
    # 4 s in, the write-behind buffer holds up to half a second of acknowledged orders.
    - {name: datastore-crash, kind: kill, target: datastore, at: 4s, duration: 1s}
  hypotheses:
    nothing_lost: true
"""


def _planted_shop(tmp_path: Path) -> Path:
    """The example shop with the datastore's planted write-behind bug switched on."""
    shop = copy_shop(tmp_path)
    path = shop / "reliability.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("\nexperiments:")] + EXPERIMENTS, encoding="utf-8")
    return shop


@pytest.mark.usefixtures("lab_lock")
def test_a_crash_exposes_acknowledged_orders_that_were_never_stored(tmp_path: Path) -> None:
    marker = new_marker()
    done = run_lab(
        _planted_shop(tmp_path),
        tmp_path / "report",
        marker,
        "--quick",
        "--json",
        "--runs",
        "off,buttress",
    )
    assert [] == wait_no_marked(marker)
    assert 1 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert "failed" == result["verdict"]
    for mode in ("on", "off"):
        run = result["runs"][mode]
        crash = next(f for f in run["faults"] if f["name"] == "datastore-crash")
        assert crash["applied_at"] is not None and crash["removed_at"] is not None
        history = run["history"]
        # At 20 orders a second and a 0.5 s flush, a kill loses a few acknowledged orders.
        assert history["lost_count"] > 0, history
        assert history["valid"] is False
        assert history["acknowledged_count"] > history["lost_count"]
    lost = [h for h in result["hypotheses"] if "lost" in h["hypothesis"]]
    assert 2 == len(lost) and not any(h["passed"] for h in lost), lost
