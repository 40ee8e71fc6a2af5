"""numpy, imported on first use with a clear message when the ``slo`` extra is missing."""

from __future__ import annotations

from types import ModuleType

from buttress.errors import MissingExtra


def numpy() -> ModuleType:
    try:
        import numpy as np
    except ImportError:
        raise MissingExtra("the SLO evaluator", "slo", "numpy") from None
    return np
