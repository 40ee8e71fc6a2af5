"""Reading SLOs from any of the three formats, with line-aware errors.

``reliability.yaml`` (its ``slos:`` section), OpenSLO v1 (one or more YAML documents) and sloth
``prometheus/v1``.  The format is recognised from the content: ``apiVersion: openslo/v1`` or
``version: prometheus/v1``; anything else is read as ``reliability.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from buttress.errors import SpecError
from buttress.spec.source import Document, load_yaml_documents, load_yaml_documents_text
from buttress.spec.validation import check_finite, check_finite_fields, validate

from .spec import SLOSpec
from .translate import validate_slo_at

__all__ = [
    "detect_format",
    "load_documents",
    "load_documents_text",
    "load_slos",
    "resolve_slos",
    "SLOFile",
    "validate_slo_at",
]

load_documents_text = load_yaml_documents_text
"""Parse every YAML document in a text (``---`` separated), keeping positions like ``load_yaml``:
:func:`buttress.spec.source.load_yaml_documents_text`."""

load_documents = load_yaml_documents
"""Read a (possibly multi-document) YAML file: :func:`buttress.spec.source.load_yaml_documents`."""


def detect_format(docs: list[Document]) -> str:
    """``openslo``, ``sloth`` or ``reliability``."""
    for d in docs:
        data = d.data
        items = data if isinstance(data, list) else [data]
        for item in items:
            if isinstance(item, dict):
                api = str(item.get("apiVersion", ""))
                if api.startswith("openslo/"):
                    return "openslo"
                if str(item.get("version", "")) == "prometheus/v1":
                    return "sloth"
    return "reliability"


class SLOFile(BaseModel):
    """What ``buttress slo`` reads of a ``reliability.yaml``: ``version``, ``service`` and the
    ``slos:`` section, validated as the whole file's model validates them (the same field
    models, the same cross-checks, NaN and infinities refused); the other sections are left to
    the commands that use them, as ``buttress assess`` reads only ``architecture:``.

    Why not the whole model: building it imports every section's package (the policies, the
    lab, supervision...), about 0.3 s of a ``buttress slo status`` that should take well under a
    second; ``buttress spec validate`` checks the whole file.
    """

    model_config = ConfigDict(extra="ignore")

    version: int = Field(1, ge=1, le=1, description="Spec format version (1).")
    service: str | None = None
    slos: list[SLOSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _finite_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_finite(data.get("slos"), ("slos",))
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> SLOFile:
        check_finite_fields(self)
        SLOSpec.check_items(self.slos, self)
        return self


def resolve_slos(spec: Any, doc: Document | None = None) -> list[SLOSpec]:
    """The SLOs of ``spec`` (the whole file's model, or :class:`SLOFile`) with ``service`` filled
    from the top level; names must be unique."""
    out: list[SLOSpec] = []
    seen: dict[str, int] = {}
    for i, slo in enumerate(spec.slos):
        if slo.name in seen:
            msg = f"SLO name {slo.name!r} is used twice (also slos[{seen[slo.name]}])"
            if doc is not None:
                raise doc.error(("slos", i, "name"), msg)
            raise SpecError(msg, field=f"slos[{i}].name")
        seen[slo.name] = i
        if slo.service is None:
            if spec.service is None:
                msg = "no service: set 'service:' at the top level or on the SLO"
                if doc is not None:
                    raise doc.error(("slos", i), msg)
                raise SpecError(msg, field=f"slos[{i}]")
            slo = slo.with_service(spec.service)
        out.append(slo)
    return out


def load_slos(path: str | Path, *, whole: bool = True) -> list[SLOSpec]:
    """Every SLO in ``path`` (reliability.yaml, OpenSLO v1 or sloth prometheus/v1), validated.

    A ``reliability.yaml`` is validated whole (every section, as ``buttress spec validate``
    does), or with ``whole=False`` only what the SLOs need: :class:`SLOFile`."""
    docs = load_documents(path)
    fmt = detect_format(docs)
    if fmt == "openslo":
        from .openslo import slos_from_openslo

        return slos_from_openslo(docs)
    if fmt == "sloth":
        from .sloth import slos_from_sloth

        if len(docs) != 1:
            raise SpecError("a sloth file holds one YAML document", file=str(path))
        return slos_from_sloth(docs[0])
    if len(docs) > 1:
        raise SpecError(
            "reliability.yaml holds one YAML document (found several); OpenSLO files need "
            "apiVersion: openslo/v1",
            file=str(path),
        )
    doc = docs[0] if docs else Document(str(path), None)
    doc.refuse_empty("SLOs: 'slos:' of reliability.yaml, OpenSLO v1 or sloth prometheus/v1")
    if not isinstance(doc.data, dict):
        raise doc.error((), "the top level must be a mapping (keys such as 'service:', 'slos:')")
    if whole or "slos" not in doc.data:
        # (Without an slos: section, the whole model says why: a misspelt key gets a suggestion.)
        from buttress.spec.document import spec_model

        return resolve_slos(validate(spec_model(), doc), doc)
    return resolve_slos(validate(SLOFile, doc), doc)
