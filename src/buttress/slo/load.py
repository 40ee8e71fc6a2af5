"""Reading SLOs from any of the three formats, with line-aware errors.

``reliability.yaml`` (its ``slos:`` section), OpenSLO v1 (one or more YAML documents) and sloth
``prometheus/v1``.  The format is recognised from the content: ``apiVersion: openslo/v1`` or
``version: prometheus/v1``; anything else is read as ``reliability.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from buttress.errors import SpecError
from buttress.spec.document import spec_model
from buttress.spec.source import Document, load_yaml_documents, load_yaml_documents_text, validate

from .spec import SLOSpec
from .translate import validate_slo_at

if TYPE_CHECKING:
    from buttress.spec.document import ReliabilitySpec

__all__ = [
    "detect_format",
    "load_documents",
    "load_documents_text",
    "load_slos",
    "resolve_slos",
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


def resolve_slos(spec: ReliabilitySpec, doc: Document | None = None) -> list[SLOSpec]:
    """The SLOs of ``spec`` with ``service`` filled from the top level; names must be unique."""
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


def load_slos(path: str | Path) -> list[SLOSpec]:
    """Every SLO in ``path`` (reliability.yaml, OpenSLO v1 or sloth prometheus/v1), validated."""
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
    spec = validate(spec_model(), doc)
    return resolve_slos(spec, doc)
