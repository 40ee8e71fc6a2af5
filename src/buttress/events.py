"""Typed events and the listener registry.

Every policy reports what it does as a frozen, slotted event record.  Events are only *constructed*
when someone listens: policies check :attr:`Emitter.active` first, so with no listener the cost is
one attribute read on paths that are not the success path, and nothing at all on the success path.

Names follow one scheme everywhere (logs, metrics, docs, dashboard): ``buttress_<policy>_<event>``,
labelled by ``pipeline`` and ``policy`` (the policy instance's name).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast, dataclass_transform

__all__ = [
    "AttemptFailed",
    "AttemptSucceeded",
    "CallFailed",
    "CallOutcome",
    "CallSucceeded",
    "DeadlineHit",
    "Emitter",
    "Event",
    "EventType",
    "FallbackUsed",
    "GaveUp",
    "Listener",
    "RetryBudgetExhaustedEvent",
    "RetryEvent",
    "RetryScheduled",
    "TimeLimitEvent",
    "TimeoutEvent",
    "add_listener",
    "remove_listener",
]


@dataclass_transform(frozen_default=True)
class EventType(type):
    """The metaclass of events: it declares event *families* and the events in them.

    A family is a subclass of :class:`Event` declared with ``family=True``: it fixes the
    ``policy_type`` and the fields its events share, and is never emitted itself.  The family and
    every class below it are made frozen, slotted dataclasses here, so they take no decorator::

        class DrEvent(Event, policy_type="dr", family=True): ...

        class BackupVerified(DrEvent, kind="verify_passed"):
            backup: str

    An event outside any family (``class X(Event, policy_type=..., kind=...)``) declares itself
    with ``@dataclass(frozen=True, slots=True)``, as :class:`Event` does.
    """

    in_family: bool = False
    """True for a family and the events in it."""

    def __new__(
        mcs,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        *,
        family: bool = False,
        **kwargs: Any,
    ) -> type:
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if "__slots__" in namespace:  # the slotted copy ``dataclass`` makes of a class
            return cls
        if not family and not any(isinstance(b, EventType) and b.in_family for b in bases):
            return cls  # the root, or an event outside any family
        cls.in_family = True
        return dataclass(frozen=True, slots=True)(cast("type[Any]", cls))


class _Declared(metaclass=EventType):
    """Holds the metaclass for :class:`Event`: type checkers apply a ``dataclass_transform``
    metaclass to the classes below the one that names it, not to that class itself."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Event(_Declared):
    """Base of all events.  ``time`` is a monotonic reading of the policy's clock."""

    policy_type: ClassVar[str] = "pipeline"
    kind: ClassVar[str] = "event"

    def __init_subclass__(
        cls, *, policy_type: str | None = None, kind: str | None = None, **kwargs: Any
    ) -> None:
        # ``class BulkheadRejected(Event, policy_type="bulkhead", kind="rejected")``.  A slotted
        # dataclass is made twice, the second time without these arguments: keep what was set.
        super(Event, cls).__init_subclass__(**kwargs)  # zero-argument super() breaks in slots
        if policy_type is not None:
            cls.policy_type = policy_type
        if kind is not None:
            cls.kind = kind

    pipeline: str
    policy: str
    time: float

    @property
    def name(self) -> str:
        """``buttress_<policy>_<event>``: the one name used in logs and metrics."""
        return f"buttress_{self.policy_type}_{self.kind}"


# --- pipeline-level outcomes (emitted by the pipeline around the whole call) ----------------------


class CallOutcome(Event, family=True):
    """The family of the pipeline's outcomes of a whole call, which took ``duration`` seconds."""

    duration: float


class CallSucceeded(CallOutcome, kind="call_succeeded"):
    """The call returned."""


class CallFailed(CallOutcome, kind="call_failed"):
    """The call raised ``error``."""

    error: BaseException


# --- retry ----------------------------------------------------------------------------------------


class RetryEvent(Event, policy_type="retry", family=True):
    """The family of the retry's events."""


class AttemptSucceeded(RetryEvent, kind="attempt_succeeded"):
    attempt: int


class AttemptFailed(RetryEvent, kind="attempt_failed"):
    attempt: int
    error: BaseException | None
    result: object = None


class RetryScheduled(RetryEvent, kind="scheduled"):
    attempt: int
    delay: float
    error: BaseException | None


class GaveUp(RetryEvent, kind="gave_up"):
    """The retry stopped; ``reason`` is one of ``attempts``, ``elapsed``, ``deadline``, ``budget``,
    ``not_retryable``, ``nested``."""

    attempts: int
    reason: str
    error: BaseException | None


class RetryBudgetExhaustedEvent(RetryEvent, kind="budget_exhausted"):
    attempt: int


# --- timeout / deadline / fallback ----------------------------------------------------------------


class TimeLimitEvent(Event, policy_type="timeout", family=True):
    """The family of the timeout's events; ``timeout``: the limit that was hit, in seconds."""

    timeout: float


class TimeoutEvent(TimeLimitEvent, kind="exceeded"):
    """An attempt timeout expired (or the deadline had passed before the attempt)."""


class DeadlineHit(TimeLimitEvent, kind="deadline_exceeded"):
    """A total timeout expired (or the deadline had passed before the call)."""


@dataclass(frozen=True, slots=True)
class FallbackUsed(Event, policy_type="fallback", kind="used"):
    error: BaseException | None


Listener = Callable[[Event], None]

_lock = threading.Lock()
_global: list[Listener] = []
_emitters: weakref.WeakSet[Emitter] = weakref.WeakSet()


class Emitter:
    """Where one pipeline's policies send events.

    ``active`` is ``True`` only while at least one listener (global or for this pipeline) exists;
    check it before building an event.  A listener that raises is logged (with its traceback) on the
    ``buttress.events`` logger and never breaks the call it observes.
    """

    __slots__ = ("__weakref__", "_own", "active", "listeners", "pipeline")

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self._own: list[Listener] = []
        self.listeners: tuple[Listener, ...] = ()
        self.active = False
        with _lock:
            _emitters.add(self)
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        self.listeners = (*_global, *self._own)
        self.active = bool(self.listeners)

    def add_listener(self, listener: Listener) -> None:
        with _lock:
            self._own.append(listener)
            self._refresh_locked()

    def remove_listener(self, listener: Listener) -> None:
        with _lock:
            self._own.remove(listener)
            self._refresh_locked()

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must never break the guarded call
                import logging

                logging.getLogger("buttress.events").exception(
                    "event listener %r failed on %s", listener, event.name
                )


def add_listener(listener: Listener) -> Callable[[], None]:
    """Listen to every pipeline's events.  Returns a function that removes the listener."""
    with _lock:
        _global.append(listener)
        for em in list(_emitters):
            em._refresh_locked()

    def remove() -> None:
        remove_listener(listener)

    return remove


def remove_listener(listener: Listener) -> None:
    """Stop ``listener`` (added with :func:`add_listener`) from receiving events."""
    with _lock:
        if listener in _global:
            _global.remove(listener)
        for em in list(_emitters):
            em._refresh_locked()
