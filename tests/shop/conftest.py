"""One shop lab at a time (the ``lab_lock`` fixture, shared with tests/dashboard: see
``tests/_lab_lock.py``), and every shop test in the serial pass."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _lab_lock import lab_lock, lab_lock_held

from .helpers import SHOP, new_marker, run_lab

__all__ = ["QuickLab", "lab_lock", "shop_quick_lab"]


@dataclass(frozen=True)
class QuickLab:
    """One run of ``buttress lab examples/shop --quick --json`` (off, typical, Buttress)."""

    done: subprocess.CompletedProcess[str]
    result: dict[str, Any]  # the JSON it printed ({} when it printed none)
    out: Path
    marker: str  # the environment marker of its processes (``wait_no_marked``)


@pytest.fixture(scope="session")
def shop_quick_lab(tmp_path_factory: pytest.TempPathFactory) -> QuickLab:
    """The shop's quick lab, run once for the tests that read it (its figures, and a postmortem
    from its recording): each run costs a minute and a half of the serial pass."""
    marker = new_marker()
    out = tmp_path_factory.mktemp("shop-quick") / "report"
    with lab_lock_held():
        done = run_lab(SHOP, out, marker, "--quick", "--json")
    result = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    return QuickLab(done, result, out, marker)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every shop-lab test runs in the serial pass of `make test` (`-m serial`), after the parallel
    pass: the lab's figures are latencies, and a second xdist worker running other tests on the same
    two cores starves the lab's seven processes."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.serial)
