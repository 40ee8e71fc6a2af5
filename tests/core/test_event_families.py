"""Event families: made by ``EventFamily``'s metaclass, they behave as hand-declared events do
(frozen, slotted, picklable, compared and hashed by value); hand-declared events still work."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

import buttress.db.events
import buttress.dr.events
import buttress.events
import buttress.failover.events
import buttress.outbox.events
import buttress.policies.breaker_events
import buttress.remediation.engine
import buttress.supervise.events
from buttress.events import Event, EventFamily, EventType

MODULES = (
    buttress.events,
    buttress.db.events,
    buttress.dr.events,
    buttress.failover.events,
    buttress.outbox.events,
    buttress.policies.breaker_events,
    buttress.remediation.engine,
    buttress.supervise.events,
)


def _values(field: dataclasses.Field[Any], i: int) -> Any:
    kinds: dict[str, Any] = {
        "str": f"s{i}",
        "float": 0.5 + i,
        "int": i,
        "bool": True,
        "int | None": i,
        "float | None": 1.5,
        "str | None": None,
        "tuple[str, ...]": ("a", "b"),
        "tuple[int, ...]": (50, 50),
        "tuple[bool, ...]": (False, True),
        "BaseException": None,
        "BaseException | None": None,
        "object": None,
    }
    return kinds[str(field.type)]


def _events() -> Iterator[type[Event]]:
    for module in MODULES:
        for obj in vars(module).values():
            mine = isinstance(obj, type) and obj.__module__ == module.__name__
            if mine and issubclass(obj, Event) and obj.kind != Event.kind:
                yield obj


EVENTS = sorted(set(_events()), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _build(cls: type[Event]) -> Event:
    fields = dataclasses.fields(cls)
    return cls(*("pipe", "pol", 1.0), *(_values(f, i) for i, f in enumerate(fields[3:])))


@pytest.mark.parametrize("cls", EVENTS, ids=lambda c: c.__name__)
def test_every_event_is_frozen_slotted_and_picklable(cls: type[Event]) -> None:
    event = _build(cls)
    assert not hasattr(event, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.time = 2.0  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(event))
    assert event == again and hash(event) == hash(again) and type(again) is cls
    assert event.name == f"buttress_{cls.policy_type}_{cls.kind}"


def test_a_family_shares_its_fields_and_comes_first() -> None:
    from buttress.dr.events import BackupEvent, RestoreCompleted

    names = [f.name for f in dataclasses.fields(RestoreCompleted)]
    assert ["pipeline", "policy", "time", "backup", "duration", "target"] == names
    event = RestoreCompleted("dr", "app", 1.0, "b1", 2.5, "/tmp/app.db")
    assert isinstance(event, BackupEvent) and isinstance(event, EventFamily)
    assert "buttress_dr_restore_completed" == event.name
    assert event != RestoreCompleted("dr", "app", 1.0, "b1", 2.5, "/tmp/other.db")


def test_a_hand_declared_event_is_left_to_its_decorator() -> None:
    @dataclass(frozen=True, slots=True)
    class Probed(Event, policy_type="probe", kind="checked"):
        detail: str

    @dataclass(frozen=True, slots=True)
    class Refreshed(Event):
        policy_type: ClassVar[str] = "cache"
        kind: ClassVar[str] = "refreshed"
        duration: float

    for event in (Probed("p", "q", 0.0, "ok"), Refreshed("p", "q", 0.0, 0.25)):
        assert not hasattr(event, "__dict__") and not isinstance(event, EventFamily)
    assert "buttress_probe_checked" == Probed("p", "q", 0.0, "ok").name


def test_the_pipeline_events_keep_the_plain_metaclass() -> None:
    """Listeners test these with ``isinstance`` on every call: a class made by a metaclass other
    than ``type`` answers that through the metaclass, about 50 ns slower when the answer is no."""
    from buttress.events import AttemptSucceeded, CallFailed, CallSucceeded, GaveUp

    for cls in (Event, CallSucceeded, CallFailed, AttemptSucceeded, GaveUp):
        assert type is type(cls), cls
    assert EventType is type(EventFamily)
