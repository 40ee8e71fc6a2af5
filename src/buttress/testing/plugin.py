"""pytest plugin (registered as the ``buttress`` entry point): fixtures for code that uses Buttress.

* ``fake_clock``: a fresh :class:`~buttress.testing.FakeClock`.
* ``no_waits``: real sleeps of the system clock are skipped for the test.
* ``captured_events``: a list that receives every event emitted during the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..events import Event, add_listener
from . import FakeClock, set_testing


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_waits() -> Iterator[None]:
    with set_testing(True):
        yield


@pytest.fixture
def captured_events() -> Iterator[list[Event]]:
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        yield seen
    finally:
        remove()
