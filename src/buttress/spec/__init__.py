"""``reliability.yaml``: loading, validation with file/line/column errors, JSON Schema, and building
runtime objects (pipelines) from it."""

from __future__ import annotations

from .build import build_pipeline, build_pipelines
from .document import ReliabilitySpec, json_schema, load_spec, load_spec_text
from .source import Document, load_yaml, load_yaml_text, validate

__all__ = [
    "Document",
    "ReliabilitySpec",
    "build_pipeline",
    "build_pipelines",
    "json_schema",
    "load_spec",
    "load_spec_text",
    "load_yaml",
    "load_yaml_text",
    "validate",
]
