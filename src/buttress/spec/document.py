"""The whole ``reliability.yaml``: one model per section, validated with line-aware errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .policies import PipelineSpec, StateSpec
from .source import Document, load_yaml, load_yaml_text, validate

__all__ = ["ReliabilitySpec", "load_spec", "load_spec_text"]


class ReliabilitySpec(BaseModel):
    """Root of ``reliability.yaml``.  Every section is optional."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(1, ge=1, le=1, description="Spec format version (1).")
    service: str | None = Field(None, description="The service this file describes.")
    policies: dict[str, PipelineSpec] = Field(
        default_factory=dict, description="Named pipelines of resilience policies."
    )
    state: StateSpec | None = Field(
        None, description="Where policies keep state: memory or redis (see docs/shared-state.md)."
    )
    slos: list[SLOSpec] = Field(
        default_factory=list, description="Service level objectives (see docs/slo.md)."
    )
    architecture: ArchitectureSpec | None = Field(
        None, description="Components, failure domains and journeys (see docs/assess.md)."
    )
    health: HealthSpec | None = Field(
        None, description="Health checks, probe groups and drain (see docs/health.md)."
    )
    experiments: ExperimentsSpec | None = Field(
        None, description="A real system, its load and a fault plan (see docs/shop-lab.md)."
    )

    # The parsed file, kept so that errors found after validation (when building runtime objects)
    # can still point at a line and column.
    _document: Document | None = PrivateAttr(default=None)

    @property
    def document(self) -> Document | None:
        """The parsed YAML this spec came from (positions of every key), if loaded from
        text/file."""
        return self._document


def _check_root(doc: Document) -> None:
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping (keys such as 'policies:', 'slos:')")


def load_spec(path: str | Path) -> ReliabilitySpec:
    """Load and validate ``reliability.yaml``; raises :class:`~buttress.errors.SpecError`."""
    doc = load_yaml(path)
    _check_root(doc)
    spec = validate(ReliabilitySpec, doc)
    spec._document = doc
    return spec


def load_spec_text(text: str, file: str = "<string>") -> ReliabilitySpec:
    """Like :func:`load_spec`, from a string; ``file`` names it in error messages."""
    doc = load_yaml_text(text, file)
    _check_root(doc)
    spec = validate(ReliabilitySpec, doc)
    spec._document = doc
    return spec


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``reliability.yaml`` for editors (``buttress spec schema``)."""
    schema = ReliabilitySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Buttress reliability.yaml"
    return schema


# Section models come last, on purpose: a section's package may import this module itself (to load
# reliability.yaml), and by now ReliabilitySpec exists for it; model_rebuild() then resolves the
# annotations above.  Add new sections' imports here.
from buttress.assess.model import ArchitectureSpec  # noqa: E402
from buttress.health.spec import HealthSpec  # noqa: E402
from buttress.lab.system.spec import ExperimentsSpec  # noqa: E402
from buttress.slo.spec import SLOSpec  # noqa: E402

ReliabilitySpec.model_rebuild()
