"""Checks of the simulator's parameters, each raising :class:`~buttress.errors.ConfigError` that
names the parameter, its value and what it must be."""

from __future__ import annotations

import math
from collections.abc import Sequence

from buttress.errors import ConfigError

__all__ = [
    "DependencyParams",
    "check_measurement",
    "check_period",
    "integer",
    "integers",
    "non_negative",
    "positive",
]


def integer(name: str, value: object, low: int) -> int:
    """``value``, an ``int`` (not a ``bool``) ``>= low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(name, value, f"must be an integer >= {low}")
    return value


def integers(owner: object, names: Sequence[str], low: int) -> None:
    """Each attribute ``names`` of ``owner`` is an integer ``>= low`` (see :func:`integer`)."""
    for name in names:
        integer(name, getattr(owner, name), low)


def positive(name: str, value: object) -> float:
    """``value``, a finite number ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(name, value, "must be a finite number > 0")
    return float(value)


def non_negative(name: str, value: float) -> None:
    """``value`` is a finite number ``>= 0``."""
    if not 0 <= value < math.inf:
        raise ConfigError(name, value, "must be a finite number >= 0")


def check_period(start: tuple[str, float], end: tuple[str, float], duration: float) -> None:
    """``0 <= start <= end <= duration`` (each given as ``(name, value)``); the error names
    ``end``."""
    (start_name, lo), (end_name, hi) = start, end
    if not 0 <= lo <= hi <= duration:
        raise ConfigError(
            end_name, hi, f"need 0 <= {start_name} ({lo}) <= {end_name} <= duration ({duration})"
        )


def check_measurement(*, window: float, step: float, target: float) -> None:
    """The recovery measurement: ``step`` divides ``window`` evenly, ``target`` in ``(0, 1]``."""
    positive("window", window)
    positive("step", step)
    ratio = window / step
    if abs(ratio - round(ratio)) > 1e-9:
        raise ConfigError("step", step, f"must divide window ({window}) evenly")
    if not 0 < target <= 1:
        raise ConfigError("target", target, "must be within (0, 1]")


class DependencyParams:
    """What the traffic scenarios' parameter classes share (a mixin of their dataclasses): the
    dependency (``workers`` x ``service_time``, ``queue_limit``, ``network_delay``), the run's
    ``duration`` and the recovery measurement (``window``, ``step``, ``target``)."""

    __slots__ = ()

    workers: int
    service_time: float
    queue_limit: int
    network_delay: float
    duration: float
    window: float
    step: float
    target: float

    @property
    def capacity(self) -> float:
        """Calls per second the dependency serves when saturated: ``workers / service_time``."""
        return self.workers / self.service_time

    def check_dependency(self) -> None:
        """Check the shared parameters."""
        integer("workers", self.workers, 1)
        integer("queue_limit", self.queue_limit, 0)
        for name in ("service_time", "duration"):
            positive(name, getattr(self, name))
        non_negative("network_delay", self.network_delay)
        check_measurement(window=self.window, step=self.step, target=self.target)
