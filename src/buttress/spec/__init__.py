"""``reliability.yaml``: loading, validation with file/line/column errors, JSON Schema, and building
runtime objects (pipelines) from it.

Layers: this package sits above the policy core (:mod:`buttress.policies`,
:mod:`buttress.pipeline`) and the state stores (:mod:`buttress.state`), which it builds, and below
the packages that own the other sections of the file (:mod:`buttress.slo`, :mod:`buttress.assess`,
:mod:`buttress.health`, :mod:`buttress.lab.system`): they import it and register their section
models with :mod:`.sections`; it never imports them.  ``ReliabilitySpec``, the root model, is built
from the registered sections on first use (:func:`~.document.spec_model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .sections import register_section
from .source import Document, load_yaml, load_yaml_text
from .validation import validate

if TYPE_CHECKING:
    from .build import build_pipeline, build_pipelines
    from .document import (
        ReliabilitySpec,
        ReliabilitySpecBase,
        json_schema,
        load_spec,
        load_spec_text,
        spec_model,
    )

# Loaded when first asked for: the root model's frame imports the policy models (the policy core,
# a quarter of a second), which a command reading one section (``buttress slo status``) or a
# section module registering itself does not need.
_DOCUMENT = ("ReliabilitySpecBase", "json_schema", "load_spec", "load_spec_text", "spec_model")

__all__ = [
    "Document",
    "ReliabilitySpec",
    "ReliabilitySpecBase",
    "build_pipeline",
    "build_pipelines",
    "json_schema",
    "load_spec",
    "load_spec_text",
    "load_yaml",
    "load_yaml_text",
    "register_section",
    "spec_model",
    "validate",
]


def __getattr__(name: str) -> Any:
    # The root model is built when first asked for, once the sections have registered.
    if name == "ReliabilitySpec":
        from .document import spec_model

        return spec_model()
    if name in _DOCUMENT:
        from . import document

        return getattr(document, name)
    # Building pipelines loads the policy core; reading a file (``buttress slo status``) does not.
    if name in ("build_pipeline", "build_pipelines"):
        from . import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
