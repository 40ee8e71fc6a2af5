"""An experiment's shape (Chaos Toolkit's format) as pydantic models, and the loaded result."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from buttress.spec.source import Document
from buttress.spec.types import Duration

__all__ = ["REFERENCE", "Activity", "Experiment", "Loaded", "Ref"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PythonProvider(_M):
    type: Literal["python"]
    module: str
    func: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)


class HttpProvider(_M):
    type: Literal["http"]
    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    arguments: Any = None
    timeout: float | list[float] = 30.0
    expected_status: int | None = None
    verify_tls: bool = True
    secrets: list[str] = Field(default_factory=list)


class ProcessProvider(_M):
    type: Literal["process"]
    path: str
    arguments: str | list[str] = Field(default_factory=list)
    timeout: float | None = None
    secrets: list[str] = Field(default_factory=list)


class ButtressProvider(_M):
    type: Literal["buttress"]
    func: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("func")
    @classmethod
    def _known(cls, v: str) -> str:
        from buttress.chaos.ctk import FUNCTIONS

        if v not in FUNCTIONS:
            raise ValueError(
                f"unknown buttress function {v!r}; expected one of: {', '.join(FUNCTIONS)}"
            )
        return v


def _provider_kind(v: Any) -> str | None:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    # Tag names with brackets are dropped from error locations by buttress.spec.source.
    return f"provider[{kind}]" if kind in ("python", "http", "process", "buttress") else None


Provider = Annotated[
    Annotated[PythonProvider, Tag("provider[python]")]
    | Annotated[HttpProvider, Tag("provider[http]")]
    | Annotated[ProcessProvider, Tag("provider[process]")]
    | Annotated[ButtressProvider, Tag("provider[buttress]")],
    Discriminator(
        _provider_kind,
        custom_error_type="provider_type",
        custom_error_message="provider type must be one of: python, http, process, buttress",
    ),
]


class Pauses(_M):
    before: Duration = 0.0
    after: Duration = 0.0


class Activity(_M):
    """An action or a probe."""

    type: Literal["action", "probe"]
    name: str = Field(min_length=1)
    provider: Provider
    tolerance: Any = None
    pauses: Pauses | None = None
    background: bool = False
    controls: Any = None
    interval: Duration | None = None


class Ref(_M):
    """``{ref: NAME}``: run the activity of that name declared earlier."""

    ref: str


def _activity_kind(v: Any) -> str:
    # Tag names with brackets are dropped from error locations by buttress.spec.source.
    return "step[ref]" if isinstance(v, dict) and "ref" in v else "step[activity]"


Step = Annotated[
    Annotated[Activity, Tag("step[activity]")] | Annotated[Ref, Tag("step[ref]")],
    Discriminator(_activity_kind),
]


class Hypothesis(_M):
    title: str
    probes: list[Step] = Field(default_factory=list)
    controls: Any = None


class Experiment(_M):
    """The experiment file, in Chaos Toolkit's format plus ``continuous-probes``."""

    version: str | None = None
    title: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    contributions: dict[str, Any] | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steady_state_hypothesis: Hypothesis | None = Field(None, alias="steady-state-hypothesis")
    method: list[Step] = Field(min_length=1)
    rollbacks: list[Step] = Field(default_factory=list)
    continuous_probes: list[Activity] = Field(default_factory=list, alias="continuous-probes")
    extensions: list[Any] = Field(default_factory=list)
    controls: Any = None
    runtime: Any = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v


class Loaded:
    """A validated experiment with its raw data (for the journal) and its document (for errors)."""

    def __init__(self, experiment: Experiment, raw: dict[str, Any], doc: Document) -> None:
        self.experiment = experiment
        self.raw = raw
        self.doc = doc


REFERENCE = re.compile(r"\$\{([A-Za-z_][\w.\-]*)\}")
"""``${name}`` or ``${outputs.NAME.key}``: a reference in a string argument."""
