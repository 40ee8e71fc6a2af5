"""One shop lab at a time (the ``lab_lock`` fixture, shared with tests/dashboard: see
``tests/_lab_lock.py``), and every shop test in the serial pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from _lab_lock import lab_lock

__all__ = ["lab_lock"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every shop-lab test runs in the serial pass of `make test` (`-m serial`), after the parallel
    pass: the lab's figures are latencies, and a second xdist worker running other tests on the same
    two cores starves the lab's seven processes."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.serial)
