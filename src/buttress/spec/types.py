"""Field types shared by every spec section: durations, finite numbers, ratios, names."""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any

from pydantic import AllowInfNan, BeforeValidator, Field

__all__ = [
    "Duration",
    "FiniteFloat",
    "PositiveDuration",
    "PositiveShare",
    "Share",
    "format_duration",
    "parse_duration",
]

# Milliseconds per unit: whole numbers, so a sum of parts is exact until the one division.
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


@functools.lru_cache(maxsize=1024)  # a status table formats the same few windows for every SLO
def format_duration(seconds: float, *, days_from: int = 1) -> str:
    """The duration text for ``seconds`` in the largest unit that divides it exactly, the inverse of
    :func:`parse_duration`.

    ``3600`` -> ``1h``, ``5400`` -> ``90m``, ``28 x 86400`` -> ``28d`` (units d, h, m, s, ms; the
    text is valid in PromQL range selectors and in YAML).  Days are used only from ``days_from``
    days on (``days_from=2``: ``24h``, not ``1d``).
    """
    if not math.isfinite(seconds * 1000):  # beyond any unit (1e308 s): plain seconds, not a crash
        return f"{seconds:g}s"
    ms = round(seconds * 1000)
    day = 86_400_000
    for unit, size in (("d", day), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= max(size, day * days_from if unit == "d" else 0) and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_duration(value: Any) -> float:
    """Seconds from a number (seconds) or a string such as ``250ms``, ``2s``, ``1h30m``, ``30d``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text.startswith("-"):
            raise ValueError(f"a duration must not be negative, got {value!r}")
        if not text:
            raise ValueError("expected a duration such as '250ms', '2s', '5m', '1h', '30d'")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            ms = 0.0  # divided once at the end: 29211ms is 29.211, not 29.211000000000002
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                ms += float(m.group(1)) * _UNIT_MS[m.group(2)]
                pos = m.end()
            seconds = ms / 1000
            if pos != len(text):
                raise ValueError(
                    f"cannot read {value!r} as a duration; use e.g. '250ms', '2s', '5m', '1h'"
                ) from None
    else:
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"a duration must be finite, got {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration must not be negative, got {value!r}")
    return seconds


def _positive(value: Any) -> float:
    s = parse_duration(value)
    if s <= 0:
        raise ValueError(f"must be a duration > 0, got {value!r}")
    return s


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds (float); YAML may say ``2``, ``2.5``, ``"250ms"``, ``"1h30m"``."""

PositiveDuration = Annotated[float, BeforeValidator(_positive)]


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value!r}")
    return value


FiniteFloat = Annotated[float, BeforeValidator(_number), AllowInfNan(False)]
"""A float that is a real number: NaN, infinities (``.nan``, ``.inf``, ``"1e999"``) and booleans
are refused.  Use it for every number a section reads (bounds go in ``Field(ge=..., le=...)``)."""

Share = Annotated[float, Field(ge=0, le=1)]
"""A share or a probability, in ``[0, 1]``."""

PositiveShare = Annotated[float, Field(gt=0, le=1)]
"""A share that cannot be nothing, in ``(0, 1]``: an availability, a fraction of a budget."""
