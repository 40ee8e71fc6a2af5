"""One shop lab at a time: each starts seven Python processes, and two at once on a small machine
starve each other (the figures measure latency).  Tests that start a lab hold this lock, across
pytest-xdist workers too."""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def lab_lock() -> Iterator[None]:
    path = Path(tempfile.gettempdir()) / "buttress-tests-shop-lab.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every shop-lab test runs in the serial pass of `make test` (`-m serial`), after the parallel
    pass: the lab's figures are latencies, and a second xdist worker running other tests on the same
    two cores starves the lab's seven processes."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.serial)
