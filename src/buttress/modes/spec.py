"""The ``modes:`` section of ``reliability.yaml``: named degraded modes.

.. code-block:: yaml

    modes:
      - name: essential-only
        description: Checkout and payments stay up; the extras go.
        keeps: [checkout, payments]          # functions the mode guarantees
        off: [recommendations, reviews]      # features and routes switched off
        shed: [sheddable, low]               # criticalities the load shedder drops
        flags: {search-limit: 10, pricing-source: cached}   # other flag values in the mode

A feature may not be both kept and switched off; mode names are unique.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.errors import ConfigError
from buttress.policies.shed import parse_criticality
from buttress.spec.sections import register_section
from buttress.spec.validation import located

__all__ = ["ModeSpec", "check_modes"]

FlagValue = bool | int | float | str


class ModeSpec(BaseModel):
    """One degraded mode."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="The mode's name.")
    description: str = Field("", description="What the mode is for, for people.")
    keeps: list[str] = Field(default_factory=list, description="Functions guaranteed to stay up.")
    off: list[str] = Field(default_factory=list, description="Features and routes switched off.")
    shed: list[str] = Field(default_factory=list, description="Criticalities shed in this mode.")
    flags: dict[str, FlagValue] = Field(
        default_factory=dict, description="Flag values in this mode (OpenFeature keys)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModeSpec:
        for i, name in enumerate(self.shed):
            try:
                parse_criticality(name, "shed")
            except ConfigError as e:
                raise located(("shed", i), e.reason) from None
        for i, feature in enumerate(self.off):
            if feature in self.keeps:
                raise located(("off", i), f"{feature!r} is kept by this mode: it cannot be off")
            if feature in self.flags:
                raise located(("flags", feature), f"{feature!r} is already off in this mode")
        return self

    def check_spec(self, root: Any) -> None:
        """Mode names are unique across the section."""
        names = [m.name for m in root.modes]
        if names.count(self.name) > 1:
            index = len(names) - 1 - names[::-1].index(self.name)
            raise located(("modes", index, "name"), f"duplicate mode name {self.name!r}")


def check_modes(root: Any) -> set[str]:
    """The mode names of ``root`` (a ``ReliabilitySpec``)."""
    return {m.name for m in getattr(root, "modes", None) or []}


register_section(
    "modes",
    ModeSpec,
    description="Named degraded modes: what stays up, what is off, what is shed (see"
    " docs/degraded-modes.md).",
    many=True,
)
