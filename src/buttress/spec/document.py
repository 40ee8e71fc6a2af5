"""The whole ``reliability.yaml``: the root model, loading with line-aware errors, the JSON Schema.

The root model has two parts:

* :class:`ReliabilitySpecBase`, the frame this package owns: ``version``, ``service``, the
  ``policies:`` pipelines and the ``state:`` store (their models are in :mod:`.policies`);
* the sections other packages own and register with :mod:`.sections`: ``slos:``,
  ``architecture:``, ``health:``, ``experiments:``, ``supervision:``, ``modes:``,
  ``remediation:``.

:func:`spec_model` builds ``ReliabilitySpec``, a subclass of the base with one field per
registered section, when it is first needed, and :func:`load_spec` validates a file against it.
``buttress.spec.ReliabilitySpec`` names that class; type checkers see instead the static
declaration below (the built-in sections, typed), so ``spec.slos`` is checked like any other
field.  ``isinstance`` checks work with either name.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, model_validator

from .policies import PipelineSpec, StateSpec
from .sections import Section, sections
from .source import Document, load_yaml, load_yaml_text
from .validation import check_finite, check_finite_fields, validate

if TYPE_CHECKING:
    from buttress.assess.model import ArchitectureSpec
    from buttress.health.spec import HealthSpec
    from buttress.lab.system.spec import ExperimentsSpec
    from buttress.modes.spec import ModeSpec
    from buttress.remediation.spec import RuleSpec
    from buttress.slo.spec import SLOSpec
    from buttress.supervise.spec import SupervisionSpec

__all__ = [
    "ReliabilitySpec",
    "ReliabilitySpecBase",
    "json_schema",
    "load_spec",
    "load_spec_text",
    "spec_model",
]

_ROOT_DOC = "Root of ``reliability.yaml``.  Every section is optional."


class ReliabilitySpecBase(BaseModel):
    """The frame of ``reliability.yaml``: the keys the spec package owns.  The root model
    (:func:`spec_model`) adds the registered sections."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(1, ge=1, le=1, description="Spec format version (1).")
    service: str | None = Field(None, description="The service this file describes.")
    policies: dict[str, PipelineSpec] = Field(
        default_factory=dict, description="Named pipelines of resilience policies."
    )
    state: StateSpec | None = Field(
        None, description="Where policies keep state: memory or redis (see docs/shared-state.md)."
    )

    # The parsed file, kept so that errors found after validation (when building runtime objects)
    # can still point at a line and column.
    _document: Document | None = PrivateAttr(default=None)

    @property
    def document(self) -> Document | None:
        """The parsed YAML this spec came from (positions of every key), if loaded from
        text/file."""
        return self._document

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        # NaN and infinities are never a valid number in reliability.yaml (an SLO objective of
        # .nan, a rate of .inf): refuse them wherever they are, before any section reads them.
        check_finite(data)
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> ReliabilitySpecBase:
        # A number that only became NaN or infinite in validation ("nan", "1e999" as strings).
        check_finite_fields(self)
        # Checks across sections: a section model (or each item of a list section) may define
        # check_spec(root), a list section's item type check_items(items, root), raising
        # located(...) errors relative to the root (see .sections).
        for key in type(self).model_fields:
            if key in ReliabilitySpecBase.model_fields:
                continue
            value = getattr(self, key)
            items = value if isinstance(value, list) else [value]
            # A list section's item type may check the whole list at once (check_items), which
            # is linear where a per-item check that looks at the others would be quadratic.
            check_items = getattr(type(items[0]), "check_items", None) if items else None
            if callable(check_items):
                check_items(items, self)
            for item in items:
                check = getattr(item, "check_spec", None)
                if callable(check):
                    check(self)
        return self


if TYPE_CHECKING:

    class ReliabilitySpec(ReliabilitySpecBase):
        """What type checkers see of the root model: the frame and the built-in sections, as
        :func:`spec_model` builds them from the registered sections at run time."""

        slos: list[SLOSpec]
        architecture: ArchitectureSpec | None
        health: HealthSpec | None
        experiments: ExperimentsSpec | None
        supervision: SupervisionSpec | None
        modes: list[ModeSpec]
        remediation: list[RuleSpec]


def spec_model() -> type[ReliabilitySpec]:
    """The root model of ``reliability.yaml``: :class:`ReliabilitySpecBase` plus a field per
    registered section (the built-in ones are registered first, see :mod:`.sections`).

    Built once per set of sections, so every call returns the same class.
    """
    registered = sections()  # imports the built-in section modules: not under the lock
    with _build_lock:
        return _build(registered)


_build_lock = threading.Lock()


@functools.cache
def _build(registered: tuple[Section, ...]) -> type[ReliabilitySpec]:
    fields: dict[str, Any] = {}
    for section in registered:
        if section.key in ReliabilitySpecBase.model_fields:
            raise ValueError(f"section {section.key!r} is part of the spec's frame already")
        fields[section.key] = section.field()
    model = create_model(
        "ReliabilitySpec",
        __base__=ReliabilitySpecBase,
        __module__=__name__,
        __doc__=_ROOT_DOC,
        **fields,
    )
    return cast("type[ReliabilitySpec]", model)


def __getattr__(name: str) -> Any:
    # ``ReliabilitySpec`` exists once the sections have registered: see spec_model().
    if name == "ReliabilitySpec":
        return spec_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_root(doc: Document) -> None:
    doc.refuse_empty("a mapping with keys such as 'policies:', 'slos:'")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping (keys such as 'policies:', 'slos:')")


def _validate(doc: Document) -> ReliabilitySpec:
    _check_root(doc)
    spec = validate(spec_model(), doc)
    spec._document = doc
    return spec


def load_spec(path: str | Path) -> ReliabilitySpec:
    """Load and validate ``reliability.yaml``; raises :class:`~buttress.errors.SpecError`."""
    return _validate(load_yaml(path))


def load_spec_text(text: str, file: str = "<string>") -> ReliabilitySpec:
    """Like :func:`load_spec`, from a string; ``file`` names it in error messages."""
    return _validate(load_yaml_text(text, file))


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``reliability.yaml`` for editors (``buttress spec schema``)."""
    schema = spec_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Buttress reliability.yaml"
    return schema
