"""What the SLO models share: a strict frozen base, the name and label patterns, calendar lengths,
duration text, and the check that locates a bad SLI ``kind``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from buttress.spec.types import format_duration

__all__ = ["CALENDAR_NOMINAL", "LABEL", "NAME", "StrictModel", "check_kind", "format_duration"]

NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CALENDAR_NOMINAL = {"week": 7 * 86400.0, "month": 30 * 86400.0, "quarter": 90 * 86400.0}
"""Nominal lengths (seconds) of calendar windows, used where a fixed length is needed (Prometheus
rules and burn-rate thresholds): a week is 7 days, a month 30 days, a quarter 90 days."""


class StrictModel(BaseModel):
    """Unknown keys are errors; instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_kind(v: Any, kinds: tuple[str, ...]) -> Any:
    """Reject a missing or unknown ``kind`` with an error located at the ``kind`` key itself."""
    if not isinstance(v, dict):
        return v
    kind = v.get("kind")
    choices = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
    if kind is None:
        msg, shown = f"the SLI kind is required: {choices}", v
    elif kind not in kinds:
        msg, shown = f"unknown SLI kind; use {choices}", kind  # validation adds "(got ...)"
    else:
        return v
    # A ValidationError raised in a validator nests under the field: its loc becomes (sli, kind).
    raise ValidationError.from_exception_data(
        "SLI",
        [
            InitErrorDetails(
                type=PydanticCustomError("value_error", msg), loc=("kind",), input=shown
            )
        ],
    )
