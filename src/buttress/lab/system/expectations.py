"""Hypotheses on priority and degradation (``experiments.hypotheses``), for systems that shed
load and switch degraded modes (examples/surge):

.. code-block:: yaml

    hypotheses:
      shed_first: {shed: browse, protect: checkout, at_most: 0.01}
      degraded: {mode: recommendations-off, restored: true}

``shed_first``: in the Buttress run, requests of kind ``shed`` were shed (answered ``503`` with
``Retry-After``: a refusal, not a failure) in a larger share than requests of kind ``protect``, and
``protect``'s share is at most ``at_most``.

``degraded``: in the Buttress run, remediation switched ``mode`` on at least once and, with
``restored``, every time it was on it was switched off again before the run ended (needs
``experiments.healing:``, where remediation runs).

The figures and the checks are in :mod:`buttress.lab.system.priority`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from buttress.spec.types import FiniteFloat
from buttress.spec.validation import located

__all__ = ["DegradedExpectation", "ShedFirstExpectation", "check_expectations"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShedFirstExpectation(_Strict):
    """With the policies, ``shed`` is shed before ``protect`` (see the module docstring)."""

    shed: str = Field(description="The request kind shed first (browse).")
    protect: str = Field(description="The request kind protected (checkout).")
    at_most: FiniteFloat = Field(
        default=0.01, ge=0, le=1, description="The largest share of protect's requests shed."
    )


class DegradedExpectation(_Strict):
    """With the policies, remediation switched ``mode`` on, and (``restored``) off again."""

    mode: str = Field(description="A mode of the file's modes: section.")
    restored: bool = Field(
        default=True, description="Every time the mode was on, it was off again by the end."
    )


def check_expectations(
    shed_first: ShedFirstExpectation | None,
    degraded: DegradedExpectation | None,
    *,
    kinds: dict[str, Any],
    healing: Any,
    root: Any,
) -> None:
    """Cross-checks against the rest of the file: request kinds, the mode, ``healing:``."""
    where = ("experiments", "hypotheses")
    if shed_first is not None:
        for field in ("shed", "protect"):
            kind = getattr(shed_first, field)
            if kind not in kinds:
                known = ", ".join(sorted(kinds))
                raise located(
                    (*where, "shed_first", field), f"unknown request kind {kind!r} ({known})"
                )
        if shed_first.shed == shed_first.protect:
            raise located((*where, "shed_first", "protect"), "must differ from shed")
    if degraded is not None:
        modes = {m.name for m in getattr(root, "modes", None) or []}
        if degraded.mode not in modes:
            known = ", ".join(sorted(modes)) or "modes: declares none"
            raise located(
                (*where, "degraded", "mode"), f"unknown mode {degraded.mode!r} (known: {known})"
            )
        if healing is None:
            raise located(
                (*where, "degraded"), "needs experiments.healing: (where remediation runs)"
            )
