"""Structured stdlib logging of Buttress events.

Each event becomes one record on the ``buttress`` logger:

* the message starts with the event's name, ``buttress_<policy_type>_<kind>`` (the message key),
  followed by ``key=value`` pairs for people reading plain text (``fields_in_message=False`` leaves
  the name alone);
* ``extra=`` fields for structured formatters: ``event`` (the name), ``pipeline``, ``policy`` and
  every field the event carries (``attempt``, ``delay``, ``reason``, ``duration``, ...).  Exceptions
  become ``"TypeName: message"`` strings and other objects their ``repr`` (at most 200 characters),
  so any JSON formatter can write them.  A field whose name a :class:`logging.LogRecord` already
  uses is prefixed with ``buttress_``;
* the level by kind (:data:`DEFAULT_LEVELS`): WARNING when a call is about to fail or was cut short
  (``gave_up``, ``budget_exhausted``, ``exceeded``, ``deadline_exceeded``), INFO for what
  changed the course of a call (``scheduled``, ``used``, ``call_failed``), DEBUG for
  the rest (per-attempt and success records, which are as frequent as calls).  A ``gave_up`` with
  reason ``nested`` is DEBUG: the inner retry handed the decision to an outer one, nothing was given
  up.  Event types that define ``log_level: ClassVar[int]`` choose their own level; others default
  to INFO.

The level check comes first: a record the logger would drop costs one ``isEnabledFor`` call.

Usage::

    from buttress.telemetry import logging as blog
    remove = blog.install()                        # logger "buttress"
    remove = blog.install(levels={"buttress_retry_scheduled": "DEBUG"})
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from buttress.errors import ConfigError
from buttress.events import Event

from . import event_fields, event_name, listen

if TYPE_CHECKING:
    from buttress.pipeline import Pipeline

__all__ = ["DEFAULT_LEVELS", "LOGGER_NAME", "LoggingListener", "install"]

LOGGER_NAME = "buttress"

DEFAULT_LEVELS: dict[str, int] = {
    "gave_up": logging.WARNING,
    "exceeded": logging.WARNING,
    "deadline_exceeded": logging.WARNING,
    "scheduled": logging.INFO,
    "used": logging.INFO,
    "call_failed": logging.INFO,
    "attempt_failed": logging.DEBUG,
    "attempt_succeeded": logging.DEBUG,
    "call_succeeded": logging.DEBUG,
    # kinds used by the other policy modules
    "opened": logging.WARNING,
    "forced_open": logging.WARNING,
    "budget_exhausted": logging.WARNING,
    "waited": logging.DEBUG,
    "launched": logging.DEBUG,
    "won": logging.DEBUG,
    "losers_cancelled": logging.DEBUG,
}
"""Level by event *kind* (the part after the policy type); kinds not listed log at INFO."""

_RESERVED = frozenset(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_MAX_REPR = 200


def _plain(value: object) -> object:
    """A value any formatter can write: numbers, strings, bools and None as they are."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseException):
        text = str(value)
        return f"{type(value).__name__}: {text}" if text else type(value).__name__
    r = repr(value)
    return r if len(r) <= _MAX_REPR else r[: _MAX_REPR - 3] + "..."


def _level(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(where, value, "a level is an int or a name such as 'WARNING'")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        found = logging.getLevelNamesMapping().get(value.upper())
        if found is not None:
            return found
    raise ConfigError(where, value, "a level is an int or a name such as 'WARNING'")


class LoggingListener:
    """A listener that writes each event as one structured log record.

    :param logger: a :class:`logging.Logger` or a logger name; default ``"buttress"``.
    :param levels: overrides, keyed by event name (``"buttress_retry_gave_up"``) or kind
        (``"gave_up"``); values are ints or level names.  Names win over kinds.
    :param default_level: level of events no table or class names; default INFO.
    :param fields_in_message: append ``key=value`` pairs (those not ``None``) to the message
        (default ``True``).
    """

    __slots__ = ("_lock", "_specs", "default_level", "fields_in_message", "levels", "logger")

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        levels: Mapping[str, int | str] | None = None,
        default_level: int | str = logging.INFO,
        fields_in_message: bool = True,
    ) -> None:
        if logger is None or isinstance(logger, str):
            self.logger = logging.getLogger(logger or LOGGER_NAME)
        elif isinstance(logger, logging.Logger):
            self.logger = logger
        else:
            raise ConfigError("logger", logger, "must be a logging.Logger or a logger name")
        self.levels: dict[str, int] = {}
        for key, value in (levels or {}).items():
            if not isinstance(key, str) or not key:
                raise ConfigError("levels", key, "keys are event names or kinds (strings)")
            self.levels[key] = _level(value, f"levels[{key!r}]")
        self.default_level = _level(default_level, "default_level")
        self.fields_in_message = fields_in_message
        # event type -> (level, name, ((field, key in extra), ...))
        self._specs: dict[type[Event], tuple[int, str, tuple[tuple[str, str], ...]]] = {}
        self._lock = threading.Lock()

    def level_for(self, cls: type[Event]) -> int:
        """The level at which events of type ``cls`` are logged (before the ``nested``
        refinement)."""
        name = event_name(cls)
        if name in self.levels:
            return self.levels[name]
        if cls.kind in self.levels:
            return self.levels[cls.kind]
        own = getattr(cls, "log_level", None)
        if isinstance(own, int) and not isinstance(own, bool):
            return own
        return DEFAULT_LEVELS.get(cls.kind, self.default_level)

    def _spec(self, cls: type[Event]) -> tuple[int, str, tuple[tuple[str, str], ...]]:
        fields = tuple((f, f"buttress_{f}" if f in _RESERVED else f) for f in event_fields(cls))
        spec = (self.level_for(cls), event_name(cls), fields)
        with self._lock:
            self._specs[cls] = spec
        return spec

    def __call__(self, event: Event) -> None:
        cls = type(event)
        spec = self._specs.get(cls)
        if spec is None:
            spec = self._spec(cls)
        level, name, fields = spec
        if cls.kind == "gave_up" and getattr(event, "reason", None) == "nested":
            level = logging.DEBUG
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        extra: dict[str, Any] = {"event": name, "pipeline": event.pipeline, "policy": event.policy}
        for field, key in fields:
            extra[key] = _plain(getattr(event, field))
        if self.fields_in_message:
            pairs = " ".join(
                f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                for k, v in list(extra.items())[1:]
                if v is not None
            )
            logger.log(level, "%s %s", name, pairs, extra=extra)
        else:
            logger.log(level, name, extra=extra)

    def __repr__(self) -> str:
        return f"LoggingListener(logger={self.logger.name!r})"


def install(
    logger: logging.Logger | str | None = None,
    *,
    levels: Mapping[str, int | str] | None = None,
    default_level: int | str = logging.INFO,
    fields_in_message: bool = True,
    pipeline: Pipeline | None = None,
) -> Callable[[], None]:
    """Log Buttress events; returns the function that stops it.

    Parameters as for :class:`LoggingListener`; ``pipeline`` limits it to one pipeline's events
    (default: every pipeline).  Handlers and formatting stay yours: this only creates records.
    """
    listener = LoggingListener(
        logger, levels=levels, default_level=default_level, fields_in_message=fields_in_message
    )
    return listen(listener, pipeline)
