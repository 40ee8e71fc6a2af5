"""`buttress lab examples/shop --drill` (issue 17): the datastore's database deleted mid-load and
restored from the newest of its online backups; the achieved RTO and RPO measured and judged
against the checkout journey's objectives, in under 60 s."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from buttress.errors import SpecError
from buttress.spec import load_spec

from .helpers import SHOP, copy_shop, new_marker, run_lab, wait_no_marked


@pytest.mark.usefixtures("lab_lock")
def test_the_shop_drill_measures_rto_and_rpo_against_the_objectives(tmp_path: Path) -> None:
    marker = new_marker()
    t0 = time.monotonic()
    done = run_lab(SHOP, tmp_path / "drill", marker, "--drill", "--json", timeout=120)
    elapsed = time.monotonic() - t0
    assert [] == wait_no_marked(marker)
    assert done.returncode in (0, 3), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert ["on"] == list(result["runs"])
    drill = result["drill"]
    assert drill == result["runs"]["on"]["drill"]
    assert elapsed < 60, elapsed  # the figure: a drill of the shop's datastore in 60 s
    # Backups were taken before the disaster (every 5 s from the start; the disaster at 12 s)
    # and the newest was restored.
    assert drill["backups_taken"] >= 2 and drill["restored_backup"]
    # RPO: at most the backup interval plus the time a backup takes; RTO: the restore and a
    # restart, seconds, far inside the 15 min objective.
    assert 0 <= drill["rpo"] <= 5.0 + 2.0, drill
    assert 0 < drill["rto"] < 20.0, drill
    assert drill["objectives"]["rto"] == 900.0 and drill["objectives"]["rpo"] == 30.0
    assert drill["objectives"]["estimated_rpo"] == 5.0
    # The orders committed between the backup and the disaster are the ones lost: counted.
    assert drill["lost"] == result["runs"]["on"]["history"]["lost_count"]
    judged = [h for h in result["hypotheses"] if h["hypothesis"].startswith("drill of datastore")]
    assert 2 == len(judged) and all(h["passed"] for h in judged), judged
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert "Disaster-recovery drill" in report and "assessment&#39;s estimate" in report


def test_a_drill_needs_a_section_and_a_single_instance_target(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)
    path = shop / "reliability.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("drill: {target: datastore", "drill: {target: payments"))
    with pytest.raises(SpecError, match="a drill's target runs one instance"):
        load_spec(path)
    path.write_text(text.replace("at: 12s, detect: 1s", "at: 3s, detect: 1s"))
    with pytest.raises(SpecError, match=r"backup_every < at"):
        load_spec(path)
    plan_loss = "    - {name: lost, kind: data_loss, target: inventory, at: 5s, duration: 1s}\n"
    path.write_text(text.replace("  plan:\n", "  plan:\n" + plan_loss))
    with pytest.raises(SpecError, match="data_loss needs a drill: section with this target"):
        load_spec(path)
