"""Events of the failover-aware pools (``buttress_db_<kind>``), labelled ``pipeline=<pool name>``,
``policy="write_pool"`` or ``"read_pool"``."""

from __future__ import annotations

from dataclasses import dataclass

from buttress.events import Emitter, Event

__all__ = ["PrimaryFound", "PrimaryLost", "ReadFellBack", "emitter"]


@dataclass(frozen=True, slots=True)
class PrimaryLost(Event, policy_type="db", kind="primary_lost"):
    """The pool stopped trusting ``primary`` (``host:port``); ``reason`` says what it saw."""

    primary: str
    reason: str


@dataclass(frozen=True, slots=True)
class PrimaryFound(Event, policy_type="db", kind="primary_found"):
    """The pool now writes to ``primary``; ``duration``: seconds spent finding it and opening."""

    primary: str
    duration: float


@dataclass(frozen=True, slots=True)
class ReadFellBack(Event, policy_type="db", kind="read_fell_back"):
    """A read went to the primary: no standby was fresh enough (``reason``)."""

    reason: str


_emitter: Emitter | None = None


def emitter() -> Emitter:
    """The emitter of the pools' events, made on first use."""
    global _emitter
    if _emitter is None:
        _emitter = Emitter("db")
    return _emitter
