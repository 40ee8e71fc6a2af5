"""``buttress.dev/`` annotations, the fields OpenSLO has no place for, read with errors that point
at the annotation that was written."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from buttress.errors import SpecError
from buttress.spec.source import Document, dotted
from buttress.spec.types import parse_duration

from .models import ANN, Metadata

__all__ = ["Annotations", "Loc", "first_message"]

Loc = tuple[str | int, ...]


class Annotations:
    """``buttress.dev/`` annotations gathered from several objects, each remembering where it was
    written, so that a malformed value is reported at its own line (later sources override)."""

    def __init__(self) -> None:
        self.where: dict[str, tuple[str, Document, Loc]] = {}

    def add(self, meta: Metadata, doc: Document, meta_loc: Loc) -> Annotations:
        for key, value in meta.annotations.items():
            self.where[key] = (value, doc, (*meta_loc, "annotations", key))
        return self

    def merged(self, other: Annotations) -> Annotations:
        out = Annotations()
        out.where = {**self.where, **other.where}
        return out

    def __contains__(self, key: str) -> bool:
        return ANN + key in self.where

    def get(self, key: str) -> str | None:
        hit = self.where.get(ANN + key)
        return hit[0] if hit is not None else None

    def error(self, key: str, message: str) -> SpecError:
        _, doc, loc = self.where[ANN + key]
        return doc.error(loc, message)

    def json(self, key: str, expect: type[dict[str, Any]] | type[list[Any]]) -> Any:
        """The JSON value of annotation ``key`` (``None`` when absent): an object (``dict``) or
        an array (``list``)."""
        text = self.get(key)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise self.error(key, f"not valid JSON ({e.msg} at character {e.pos})") from None
        if not isinstance(value, expect):
            want = "a JSON object" if expect is dict else "a JSON array"
            raise self.error(key, f"must be {want}, got {type(value).__name__}")
        return value

    def string_map(self, key: str) -> dict[str, str] | None:
        value = self.json(key, dict)
        if value is None:
            return None
        for k, v in value.items():
            if not isinstance(v, str):
                raise self.error(key, f"value of {k!r} must be a string, got {v!r}")
        return dict(value)

    def count(self, key: str) -> int | None:
        text = self.get(key)
        if text is None:
            return None
        try:
            n = int(text.strip())
        except ValueError:
            raise self.error(key, f"must be a whole number of events >= 0, got {text!r}") from None
        if n < 0:
            raise self.error(key, f"must be >= 0, got {n}")
        return n

    def duration(self, key: str) -> float | None:
        text = self.get(key)
        if text is None:
            return None
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            raise self.error(key, str(e)) from None
        if seconds <= 0:
            raise self.error(key, f"must be a duration > 0, got {text!r}")
        return seconds

    def model(self, key: str, adapter: TypeAdapter[Any], data: Any) -> Any:
        """``data`` (read from annotation ``key``) validated by ``adapter``; errors name the inner
        field."""
        try:
            return adapter.validate_python(data)
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            where = dotted(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            raise self.error(key, f"{where}: {msg}" if where else msg) from None


def first_message(e: ValueError) -> str:
    """The message of a (pydantic) error, without pydantic's decoration."""
    if isinstance(e, ValidationError):
        return str(e.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
    return str(e).splitlines()[-1]
