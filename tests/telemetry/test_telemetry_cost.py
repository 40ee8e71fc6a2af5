"""With no listener, no event object is ever built; with one, exactly the events delivered are
built.

Constructions are counted with :func:`sys.setprofile`: every call of an event class's generated
``__init__`` is seen, whatever module the class lives in, without patching the classes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from buttress.events import Event, add_listener
from buttress.telemetry import logging as blog
from buttress.telemetry import prometheus
from buttress.testing import FakeClock

from .scenario import EXPECTED, run_scenario


def _event_classes(root: type[Event] = Event) -> Iterator[type[Event]]:
    yield root
    for sub in root.__subclasses__():
        yield from _event_classes(sub)


@contextmanager
def count_event_constructions() -> Iterator[list[int]]:
    inits: set[CodeType] = {
        cls.__init__.__code__ for cls in _event_classes() if "__init__" in vars(cls)
    }
    seen = [0]
    previous = sys.getprofile()

    def profiler(frame: FrameType, what: str, arg: Any) -> None:
        if what == "call" and frame.f_code in inits:
            seen[0] += 1

    sys.setprofile(profiler)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


async def test_no_listener_builds_no_event(clock: FakeClock) -> None:
    # The scenario exercises every event the core emits: retries, give-ups of each kind, an empty
    # budget, sync and async timeouts, a fallback, pipeline outcomes.
    with count_event_constructions() as built:
        await run_scenario(clock)
    assert 0 == built[0]


async def test_with_listeners_each_event_is_built_once(clock: FakeClock) -> None:
    delivered: list[Event] = []
    remove_capture = add_listener(delivered.append)
    remove_prom = prometheus.install(CollectorRegistry())
    remove_log = blog.install()
    try:
        with count_event_constructions() as built:
            await run_scenario(clock)
    finally:
        remove_capture()
        remove_prom()
        remove_log()
    assert sum(EXPECTED.values()) == len(delivered)
    # Three listeners share each event object: it is built once, not once per listener.
    assert len(delivered) == built[0]


def test_the_profiler_sees_constructions() -> None:
    """The counter itself works: building events by hand is counted."""
    from buttress.events import CallSucceeded, GaveUp

    with count_event_constructions() as built:
        CallSucceeded("p", "p", 0.0, 1.0)
        GaveUp("p", "retry", 0.0, 3, "attempts", None)
    assert 2 == built[0]
