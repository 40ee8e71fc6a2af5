"""Validation of spec data against pydantic models, with located errors.

:func:`validate` runs a model over the data of a :class:`~buttress.spec.source.Document` and turns
every validation error into a :class:`~buttress.errors.SpecError` naming the file, line, column and
dotted field path, suggesting the closest valid key when a key is unknown.  :func:`located` is the
error a model's own checks raise to point at a key below it; :func:`check_finite` and
:func:`check_finite_fields` refuse NaN and infinities wherever they sit.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from buttress.errors import SpecError
from buttress.spec.source import Document, Loc, dotted

__all__ = [
    "check_finite",
    "check_finite_fields",
    "combine_errors",
    "located",
    "non_finite",
    "non_finite_field",
    "not_finite",
    "spec_error",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


def _model_fields(tp: Any) -> list[str]:
    """Field names (and aliases) a model type accepts, for suggestions."""
    names: list[str] = []
    for m in _models_in(tp):
        for fname, finfo in m.model_fields.items():
            names.append(finfo.alias or fname)
    return names


def _models_in(tp: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        out: list[type[BaseModel]] = []
        for a in typing.get_args(tp):
            out.extend(_models_in(a))
        return out
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _type_at(model: Any, loc: Loc) -> Any:
    """Walk ``loc`` through the model's annotations; the type found there, or ``None``."""
    tp: Any = model
    for part in loc:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            origin = typing.get_origin(tp)
        if origin in (Union, types.UnionType):
            candidates = [a for a in typing.get_args(tp) if a is not type(None)]
            # Prefer a model that has this field.
            nxt = None
            for c in candidates:
                for m in _models_in(c):
                    if isinstance(part, str) and part in _model_fields(m):
                        nxt = m
                        break
                if nxt is not None:
                    break
            if nxt is None:
                for c in candidates:
                    o = typing.get_origin(c)
                    if o in (dict, list, tuple, Mapping) or (
                        isinstance(c, type) and issubclass(c, BaseModel)
                    ):
                        nxt = c
                        break
            if nxt is None:
                return None
            tp = nxt
            origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if not isinstance(part, str):
                return None
            found = None
            for fname, finfo in tp.model_fields.items():
                if part in (fname, finfo.alias):
                    found = finfo.annotation
            if found is None:
                return None
            tp = found
        elif origin in (dict, Mapping):
            tp = typing.get_args(tp)[1]
        elif origin in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            return None
    return tp


def _clean_loc(loc: tuple[Any, ...], data: Any) -> Loc:
    """Drop the union/tag entries pydantic inserts into ``loc`` that are not keys of the data."""
    out: list[str | int] = []
    cur = data
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if (isinstance(cur, Mapping) and part in cur) or (
            isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur)
        ):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, Mapping) and not isinstance(part, int):
            # An unknown key (extra_forbidden) or a missing one: keep it, it names the field.
            # A non-key with more parts after it is a discriminated union's tag: skip it.
            if isinstance(part, str) and (
                part.startswith(("function-", "tagged-union[", "union[", "json-or-python["))
                or "[" in part
                or i < last
            ):
                continue
            out.append(part)
            cur = None
        else:
            continue
    return tuple(out)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def combine_errors(problems: list[SpecError]) -> SpecError:
    """One :class:`SpecError` for ``problems`` (at least one), in the given order: the first, its
    message followed by ``(and N more)`` and each other problem rendered on its own indented line.
    The list is attached as ``.problems``."""
    first = problems[0]
    if len(problems) > 1:
        rest = "\n".join("  " + p.render() for p in problems[1:])
        first = SpecError(
            f"{first.message}\n(and {len(problems) - 1} more)\n{rest}",
            file=first.file,
            line=first.line,
            column=first.column,
            field=first.field,
        )
    first.problems = problems  # type: ignore[attr-defined]
    return first


def spec_error(doc: Document, loc: Iterable[str | int], message: str) -> SpecError:
    return doc.error(loc, message)


def located(loc: Iterable[str | int], message: str) -> PydanticCustomError:
    """The error a model validator raises for the value at ``loc`` (relative to the model being
    validated): :func:`validate` reports ``message`` at that key's line, column and field, in the
    usual ``file:line:column: field: message`` form.  For checks across fields (a plan naming a
    service of the same section) and across sections (the root model's checks)."""
    return PydanticCustomError("buttress_at", "{message}", {"message": message, "loc": tuple(loc)})


def non_finite(data: Any, loc: Loc = ()) -> tuple[Loc, float] | None:
    """The first NaN or infinity in plain ``data`` (YAML's ``.nan``, ``.inf``, ``1e999``) and
    where it is, else ``None``.  Iterative, so any depth is fine."""
    stack: list[tuple[Loc, Any]] = [(loc, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where, value
        if isinstance(value, dict):
            stack.extend(((*where, str(k)), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*where, i), v) for i, v in reversed(list(enumerate(value))))
    return None


def not_finite(found: tuple[Loc, float]) -> PydanticCustomError:
    """The error for a NaN or infinity found by :func:`non_finite` or :func:`non_finite_field`,
    written as YAML writes it (``.nan``, ``.inf``, ``-.inf``)."""
    where, value = found
    shown = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return located(where, f"must be a finite number, got {shown}")


def check_finite(data: Any, loc: Loc = ()) -> None:
    """Raise :func:`not_finite` for the first NaN or infinity in plain ``data`` (at ``loc``)."""
    found = non_finite(data, loc)
    if found is not None:
        raise not_finite(found)


def check_finite_fields(model: BaseModel) -> None:
    """Raise :func:`not_finite` for the first NaN or infinity among ``model``'s fields (a number
    that only became one in validation: ``"nan"``, ``"1e999"`` as strings)."""
    found = non_finite_field(model)
    if found is not None:
        raise not_finite(found)


def non_finite_field(model: BaseModel) -> tuple[Loc, float] | None:
    """The first NaN or infinite float among the fields the file set, in ``model`` and the models,
    lists and dicts below it, with its location in the file (keys by alias)."""
    stack: list[tuple[Loc, Any]] = [((), model)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where, value
        if isinstance(value, BaseModel):
            fields = type(value).model_fields
            for name in value.model_fields_set:
                info = fields.get(name)
                if info is not None:
                    stack.append(((*where, info.alias or name), getattr(value, name, None)))
        elif isinstance(value, dict):
            stack.extend(((*where, str(k)), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend(((*where, i), v) for i, v in enumerate(value))
    return None


def validate(model: type[M], doc: Document, loc: Loc = (), *, context: Any = None) -> M:
    """Validate the node at ``loc`` of ``doc`` as ``model``; raise one :class:`SpecError` listing
    all problems, each with its line, column and field."""
    data: Any = doc.data
    for part in loc:
        data = data[part]
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        problems: list[SpecError] = []
        # A misspelt required key shows up twice: as an unknown key and as a missing field.  Keep
        # the first (it says what to fix) and drop the second.
        suggested: set[Loc] = set()
        errors = e.errors(include_url=False)
        for err in errors:
            rel = _clean_loc(tuple(err["loc"]), data)
            full = (*loc, *rel)
            msg = err["msg"]
            etype = err["type"]
            if etype == "extra_forbidden" and rel:
                key = rel[-1]
                parent = _type_at(model, rel[:-1])
                valid = _model_fields(parent) if parent is not None else []
                msg = f"unknown key {key!r}"
                close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
                if close:
                    msg += f"; did you mean {close[0]!r}?"
                    suggested.add((*rel[:-1], close[0]))
                elif valid:
                    msg += f" (valid keys: {', '.join(sorted(valid))})"
            elif etype == "missing":
                msg = "required field is missing"
            elif etype == "buttress_at":  # located(): a key below the model that refused it
                full = (*full, *err["ctx"]["loc"])
                msg = str(err["ctx"]["message"])
            elif etype == "buttress_option":  # an options type refused it: point at the key
                param = str(err["ctx"]["parameter"]).split("[", 1)[0].split(".", 1)[0]
                if (*full, param) in doc.keys:
                    full = (*full, param)
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            elif msg.startswith("Assertion failed, "):
                msg = msg[len("Assertion failed, ") :]
            elif _is_scalar(err.get("input")) and "got" not in msg:
                msg += f" (got {err['input']!r})"
            problems.append(doc.error(full, msg))
        if suggested:
            problems = [
                p
                for p in problems
                if not (
                    p.message == "required field is missing"
                    and any(p.field == dotted((*loc, *s)) for s in suggested)
                )
            ]
        # Deduplicate (unions report the same problem once per member).
        seen: set[str] = set()
        unique = []
        for p in problems:
            if p.render() not in seen:
                seen.add(p.render())
                unique.append(p)
        unique.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise combine_errors(unique) from None
