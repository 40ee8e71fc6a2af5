"""Bad input: a service that fails to start, a plan that names nothing, a missing section."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.errors import SpecError
from buttress.lab.errors import LabError
from buttress.lab.system.load import load_lab

from .helpers import copy_shop, new_marker, run_lab, wait_no_marked


@pytest.mark.usefixtures("lab_lock")
def test_a_service_that_fails_to_start_is_named_and_everything_stops(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)
    # payments crashes on import: its instances exit while the others come up.
    (shop / "shop" / "payments.py").write_text(
        "raise RuntimeError('payments cannot read its key file')\n", encoding="utf-8"
    )
    marker = new_marker()
    done = run_lab(shop, tmp_path / "out", marker, "--quick", timeout=60)
    assert 2 == done.returncode
    assert "Traceback" not in done.stderr.split("--- last lines of")[0]
    assert "service 'payments-1' failed to start: it exited with status" in done.stderr
    assert "payments cannot read its key file" in done.stderr  # why: the end of its log
    assert "process(es) stopped" in done.stderr
    assert [] == wait_no_marked(marker)


@pytest.mark.usefixtures("lab_lock")
def test_a_service_that_never_gets_ready_is_named(tmp_path: Path) -> None:
    shop = copy_shop(tmp_path)
    text = (shop / "reliability.yaml").read_text(encoding="utf-8")
    text = text.replace(
        'inventory: {app: "shop.inventory:app"}',
        'inventory: {app: "shop.inventory:app", ready: /nowhere, start_timeout: 2s}',
    )
    (shop / "reliability.yaml").write_text(text, encoding="utf-8")
    marker = new_marker()
    done = run_lab(shop, tmp_path / "out", marker, "--quick", timeout=60)
    assert 2 == done.returncode
    assert "service 'inventory' failed to start: not ready after 2s" in done.stderr
    assert [] == wait_no_marked(marker)


def _write(tmp_path: Path, old: str, new: str) -> Path:
    shop = copy_shop(tmp_path)
    text = (shop / "reliability.yaml").read_text(encoding="utf-8")
    assert old in text
    (shop / "reliability.yaml").write_text(text.replace(old, new), encoding="utf-8")
    return shop


def test_a_fault_target_behind_no_proxy_points_at_its_line(tmp_path: Path) -> None:
    shop = _write(tmp_path, "target: payments-1, at: 4s", "target: paymnts-1, at: 4s")
    with pytest.raises(SpecError) as e:
        load_lab(shop)
    assert "experiments.plan[0].target" == e.value.field
    assert e.value.line is not None and e.value.file is not None
    assert "'paymnts-1' is not behind the fault proxy" in str(e.value)


def test_an_unknown_dependency_and_a_hypothesis_without_slo_are_refused(tmp_path: Path) -> None:
    shop = _write(tmp_path, "depends_on: [inventory, payments, datastore]", "depends_on: [cache]")
    with pytest.raises(SpecError, match="unknown service 'cache'"):
        load_lab(shop)
    shop2 = _write(tmp_path / "b", "checkout: {policies_on: held", "checkuot: {policies_on: held")
    with pytest.raises(SpecError, match="no SLO named 'checkuot'") as e:
        load_lab(shop2)
    assert "experiments.hypotheses.slos.checkuot" == e.value.field


def test_a_fault_of_the_wrong_shape_is_a_spec_error(tmp_path: Path) -> None:
    shop = _write(tmp_path, "latency: 2500ms}", "rate: 5}")
    with pytest.raises(SpecError, match="latency fault needs latency > 0"):
        load_lab(shop)


def test_a_file_without_experiments_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text("version: 1\nservice: x\n", encoding="utf-8")
    with pytest.raises(LabError, match="no 'experiments:' section"):
        load_lab(tmp_path)
    with pytest.raises(LabError, match="no such file"):
        load_lab(tmp_path / "missing")


def test_the_cli_turns_a_spec_error_into_one_message(tmp_path: Path) -> None:
    shop = _write(tmp_path, "    entry: api\n    duration", "    entry: gateway\n    duration")
    done = run_lab(shop, tmp_path / "out", new_marker(), "--quick", timeout=30)
    assert 2 == done.returncode
    assert "Traceback" not in done.stderr
    assert "experiments.load.entry: unknown service 'gateway'" in done.stderr
