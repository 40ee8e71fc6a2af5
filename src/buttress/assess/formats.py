"""How the assessment's figures are written in its tables: availabilities, shares of users,
durations and estimates with their interval."""

from __future__ import annotations

import math
from collections.abc import Callable

from .analytic import nines

__all__ = ["duration", "interval", "pct", "share"]


def pct(a: float) -> str:
    """An availability as a percentage with enough digits to see the nines."""
    if a >= 1.0:
        return "100%"
    digits = max(2, min(8, math.ceil(nines(a)) + 1))
    return f"{a * 100:.{digits}f}%"


def share(x: float) -> str:
    """A share of users as a percentage with three significant digits (``50%``, ``0.123%``)."""
    return f"{x * 100:.3g}%"


def duration(seconds: float | None) -> str:
    """Seconds as ``45s``, ``12m``, ``3.5h``, ``2d``; ``-`` for ``None``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return "0s" if seconds == 0 else f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m".replace(".0m", "m")
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    return f"{seconds / 86400:.1f}d".replace(".0d", "d")


def interval(fmt: Callable[[float], str], value: float, low: float, high: float) -> str:
    """An estimate and its interval, each written by ``fmt``: ``value [low, high]``."""
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"
