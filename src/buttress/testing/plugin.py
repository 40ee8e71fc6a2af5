"""pytest plugin (registered as the ``buttress`` entry point): fixtures for code that uses Buttress.

* ``fake_clock``: a fresh :class:`~buttress.testing.FakeClock` (monotonic 1000.0); pass it to the
  policies and pipelines under test and their waits take no real time.
* ``no_waits``: real sleeps of the system clock are skipped for the test (for code whose policies
  were built without a clock argument); the previous setting is restored afterwards.
* ``captured_events``: a list that receives every event emitted by any pipeline during the test; the
  listener is removed afterwards.

The plugin is loaded automatically once Buttress is installed (``-p no:buttress`` turns it off).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from buttress.events import Event, add_listener
from buttress.testing import FakeClock, set_testing

__all__ = ["captured_events", "fake_clock", "no_waits"]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh FakeClock at monotonic 1000.0: sleeps on it advance it at once."""
    return FakeClock()


@pytest.fixture
def no_waits() -> Iterator[None]:
    """Skip the system clock's real sleeps during the test; restore the previous setting after."""
    with set_testing(True):
        yield


@pytest.fixture
def captured_events() -> Iterator[list[Event]]:
    """Every Buttress event emitted during the test, in order."""
    seen: list[Event] = []
    remove = add_listener(seen.append)
    try:
        yield seen
    finally:
        remove()
