"""Plain records as JSON-ready dicts, without writing every field name twice.

``dataclasses.asdict`` would do for dataclasses, but it copies every nested value deeply (and
turns nested dataclasses into dicts), which the callers here neither want nor pay for: their
``to_json`` results are serialised at once.  These helpers make the shallow dict the callers
used to spell out field by field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

__all__ = ["attributes", "fields_of"]


def attributes(obj: object, *names: str) -> dict[str, Any]:
    """``{name: obj.name}`` for each of ``names``, in that order."""
    return {name: getattr(obj, name) for name in names}


def fields_of(obj: Any, *, skip: Collection[str] = (), **extra: Any) -> dict[str, Any]:
    """Each field of the dataclass instance ``obj`` (but those in ``skip``) by name, in
    declaration order, then ``extra`` (which replaces a field of the same name)."""
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name not in skip}
    out.update(extra)
    return out
