"""``buttress spec``: validate a reliability.yaml, print the JSON Schema."""

from __future__ import annotations

import json

import click

from .document import json_schema, load_spec

__all__ = ["spec"]


@click.group()
def spec() -> None:
    """Work with reliability.yaml."""


@spec.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check FILE; print every problem with its line, column and field.

    Beyond the schema, every section's cross-references are checked (a lab plan naming a service
    that does not exist, a health check in an unknown group or with a bad URL), and every declared
    pipeline is built, so values only a policy can judge (a criticality name, load shedding on an
    adaptive limit the pipeline lacks) are checked too.  Hostile input (alias bombs, deep nesting,
    control characters, bytes that are not UTF-8, NaN) is refused the same way.  Exit status: 0
    when the file is valid, 2 with the problems otherwise.
    """
    from .build import build_pipelines

    s = load_spec(file)
    build_pipelines(s)
    parts = [f"{len(s.policies)} pipeline(s)", f"{len(s.slos)} SLO(s)"]
    if s.architecture is not None:
        parts.append("an architecture")
    click.echo(f"{file}: ok ({', '.join(parts)})")


@spec.command()
@click.option("--indent", default=2, show_default=True, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON Schema of reliability.yaml (for editors and CI)."""
    click.echo(json.dumps(json_schema(), indent=indent, sort_keys=False))
