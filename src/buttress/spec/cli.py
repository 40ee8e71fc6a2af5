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
    """Check FILE; print every problem with its line, column and field."""
    s = load_spec(file)
    click.echo(f"{file}: ok ({len(s.policies)} pipeline(s))")


@spec.command()
@click.option("--indent", default=2, show_default=True, help="JSON indentation.")
def schema(indent: int) -> None:
    """Print the JSON Schema of reliability.yaml (for editors and CI)."""
    click.echo(json.dumps(json_schema(), indent=indent, sort_keys=False))
