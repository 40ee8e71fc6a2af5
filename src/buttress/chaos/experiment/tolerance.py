"""Tolerances: does a probe's output meet what the experiment expects?"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .model import Activity

__all__ = ["tolerance_met"]


def _target(output: Any, target: str | None) -> Any:
    if target is None:
        if isinstance(output, dict) and "status" in output:
            return output["status"]
        return output
    value = output
    for part in target.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def tolerance_met(
    tolerance: Any, output: Any, run_probe: Callable[[Activity, Any], Any] | None = None
) -> bool:
    """Does ``output`` meet ``tolerance`` (see the module docstring)?"""
    if isinstance(tolerance, bool):
        return bool(output == tolerance)
    if isinstance(tolerance, int | float):
        return bool(_target(output, None) == tolerance)
    if isinstance(tolerance, str):
        if isinstance(output, dict) and "body" in output:
            return bool(output["body"] == tolerance)
        return bool(output == tolerance)
    if isinstance(tolerance, list):
        return _target(output, None) in tolerance
    if isinstance(tolerance, dict):
        kind = tolerance.get("type")
        value = _target(output, tolerance.get("target"))
        if kind == "range":
            lo, hi = tolerance["range"]
            return (
                isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
            )
        if kind == "regex":
            return re.search(tolerance["pattern"], "" if value is None else str(value)) is not None
        if kind == "probe" and run_probe is not None:
            return bool(run_probe(Activity.model_validate(tolerance), output))
        if kind == "burn-rate":
            limit = tolerance["max"]
            return isinstance(value, int | float) and not isinstance(value, bool) and value <= limit
    return False
