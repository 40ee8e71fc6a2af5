"""One shop lab at a time: each starts seven Python processes, and two at once on a small machine
starve each other (the figures measure latency).  Tests that start a lab hold this lock, across
pytest-xdist workers too.

Shared by ``tests/shop`` and ``tests/dashboard`` (``tests/`` is on ``sys.path`` under pytest's
rootdir-based imports, so this module is importable as ``_lab_lock``); each conftest imports the
fixture."""

from __future__ import annotations

import contextlib
import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["lab_lock", "lab_lock_held"]


@contextlib.contextmanager
def lab_lock_held() -> Iterator[None]:
    """Hold the lock for a ``with`` block (a session-scoped fixture cannot use ``lab_lock``)."""
    path = Path(tempfile.gettempdir()) / "buttress-tests-shop-lab.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def lab_lock() -> Iterator[None]:
    with lab_lock_held():
        yield
