"""The sections of ``reliability.yaml`` that other packages own: they register here.

The spec package owns the frame of the file (``version``, ``service``, the ``policies:`` pipelines
and the ``state:`` store: :class:`~buttress.spec.document.ReliabilitySpecBase`) and the tools to
read YAML with line-aware errors (:mod:`.source`, :mod:`.types`).  Every other section belongs to
the package that gives it meaning, which registers its model at the bottom of the module that
defines it::

    # buttress/health/spec.py
    register_section("health", HealthSpec, description="Health checks, ... (see docs/health.md).")

:func:`~buttress.spec.document.spec_model` then builds the root model from the frame and the
registered sections.  So the dependencies point one way: the section packages import
:mod:`buttress.spec`; :mod:`buttress.spec` imports none of them.

**Cross-references.**  A section model checks its own cross-references in a pydantic
``model_validator`` and raises :func:`~buttress.spec.validation.located` errors, which name the key
below the section that is wrong (``experiments.plan[0].target``).  Checks against *other*
sections go in a method ``check_spec(self, root)`` of the section model (of each item, for a
``many`` section; a check over the whole list, such as unique names, in a classmethod
``check_items(items, root)`` of the item model): the root model calls it once every section is
valid, and it raises
``located(...)`` errors relative to the root.  Whatever a command refuses after loading the file
belongs in one of the two, so that ``buttress spec validate`` accepts exactly what the commands
accept.

**Discovery.**  Which sections a ``reliability.yaml`` may hold must not depend on what the program
happened to import before loading it, so :func:`sections` first imports the modules named in
:data:`BUILTIN_SECTION_MODULES`, by name.  That is discovery, as a plugin system finds its plugins
through entry points, not a dependency in disguise: this package names no object in those modules
and relies on nothing in them; importing one only gives it the chance to call
:func:`register_section`.  A section from outside ``buttress`` registers the same way, from a
module the program imports before it loads the file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import GenericAlias
from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BUILTIN_SECTION_MODULES",
    "Section",
    "load_builtin_sections",
    "register_section",
    "sections",
]

BUILTIN_SECTION_MODULES = (
    "buttress.slo.spec",
    "buttress.assess.model",
    "buttress.health.spec",
    "buttress.lab.system.spec",
    "buttress.supervise.spec",
    "buttress.modes.spec",
    "buttress.remediation.spec",
)
"""The modules that register the built-in sections (``slos:``, ``architecture:``, ``health:``,
``experiments:``, ``supervision:``, ``modes:``, ``remediation:``), in the order their sections
appear in the root model and its JSON Schema."""


@dataclass(frozen=True)
class Section:
    """One top-level key of ``reliability.yaml``: ``key: model`` (``None`` when absent), or
    ``key: [model, ...]`` (``[]`` when absent) if ``many``."""

    key: str
    model: type[BaseModel]
    description: str
    many: bool = False

    def field(self) -> tuple[Any, Any]:
        """The ``(annotation, FieldInfo)`` pair :func:`pydantic.create_model` takes."""
        if self.many:
            many = GenericAlias(list, self.model)  # list[model]
            return (many, Field(default_factory=list, description=self.description))
        return (self.model | None, Field(None, description=self.description))


_registered: dict[str, Section] = {}


def register_section(
    key: str, model: type[BaseModel], *, description: str, many: bool = False
) -> None:
    """Make ``key:`` a section of ``reliability.yaml``, validated by ``model``.

    Registering the same model under the same key again does nothing; another model under a key
    already taken raises :class:`ValueError`.
    """
    section = Section(key, model, description, many)
    known = _registered.get(key)
    if known is not None and _name(known.model) != _name(model):
        raise ValueError(
            f"section {key!r} is already registered by {_name(known.model)}, not {_name(model)}"
        )
    _registered[key] = section


def _name(model: type[BaseModel]) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def load_builtin_sections() -> None:
    """Import the modules of :data:`BUILTIN_SECTION_MODULES`, so that their sections are
    registered (see *Discovery* above)."""
    for module in BUILTIN_SECTION_MODULES:
        importlib.import_module(module)


def sections() -> tuple[Section, ...]:
    """Every registered section, the built-in ones first (in :data:`BUILTIN_SECTION_MODULES`
    order), then the others in the order they registered."""
    load_builtin_sections()
    rank = {module: i for i, module in enumerate(BUILTIN_SECTION_MODULES)}
    return tuple(
        sorted(
            _registered.values(),
            key=lambda s: rank.get(s.model.__module__, len(BUILTIN_SECTION_MODULES)),
        )
    )
