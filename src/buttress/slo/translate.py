"""Validating an SLO translated from another format (OpenSLO, sloth), with errors that point where
the user wrote the value.

A leaf: the format readers (:mod:`.openslo`, :mod:`.sloth`) and the loader (:mod:`.load`) all import
it, and it imports none of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from buttress.errors import SpecError
from buttress.spec.source import Document, dotted
from buttress.spec.validation import combine_errors, validate

from .spec import SLOSpec

__all__ = ["Loc", "validate_slo_at"]

Loc = tuple[str | int, ...]
_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _parts(dotted: str) -> Loc:
    return tuple(int(i) if i else name for i, name in _PART.findall(dotted))


def validate_slo_at(
    doc: Document, data: dict[str, object], fields: Mapping[str, tuple[Loc, bool]], default: Loc
) -> SLOSpec:
    """Validate ``data`` (an SLO translated from another format) as an :class:`SLOSpec`, reporting
    each problem where the user wrote the value in ``doc``.

    ``fields`` maps an SLOSpec field path (``objective``, ``sli.total``; the longest match wins) to
    ``(loc in doc, same shape)``: when the shape is the same, the rest of the field path is appended
    to ``loc`` (sloth's ``slos[0].objective``); otherwise the error points at ``loc`` and, if the
    match was a prefix, the message names the Buttress field.  Other fields point at ``default``.
    """
    try:
        return validate(SLOSpec, Document(doc.file, data))
    except SpecError as e:
        problems: list[SpecError] = getattr(e, "problems", None) or [e]
        mapped = [_place(doc, p, fields, default) for p in problems]
        raise combine_errors(mapped) from None


def _place(
    doc: Document, p: SpecError, fields: Mapping[str, tuple[Loc, bool]], default: Loc
) -> SpecError:
    """``p`` (an error on the translated SLO) re-addressed to where the user wrote the value."""
    parts = _parts(p.field or "")
    loc, same, rest = default, False, parts
    for n in range(len(parts), 0, -1):
        hit = fields.get(dotted(parts[:n]))
        if hit is not None:
            (loc, same), rest = hit, parts[n:]
            break
    if same:
        return doc.error((*loc, *rest), p.message)
    sub = dotted(parts) if rest else ""
    return doc.error(loc, f"{sub}: {p.message}" if sub else p.message)
