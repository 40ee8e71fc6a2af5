"""``buttress modes``: list the declared modes, switch one on or off, show which is on.

``set`` and ``clear`` write the shared mode file (``--state``, default ``.buttress/mode.json``)
that every :class:`~buttress.modes.ModeSwitch` built with that ``state_file`` reads within its
``poll`` interval.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from buttress.errors import ConfigError

from .switch import read_state, write_state

__all__ = ["modes"]

DEFAULT_STATE = ".buttress/mode.json"


def _declared(file: str) -> dict[str, object]:
    from buttress.spec import load_spec

    spec = load_spec(file)
    return {m.name: m for m in spec.modes}


@click.group()
def modes() -> None:
    """Degraded modes: list, set, clear, status."""


@modes.command("list")
@click.argument("file", type=click.Path(dir_okay=False))
def list_modes(file: str) -> None:
    """The modes FILE declares: what each keeps, switches off and sheds."""
    for name, mode in _declared(file).items():
        keeps = ", ".join(getattr(mode, "keeps", [])) or "-"
        off = ", ".join(getattr(mode, "off", [])) or "-"
        shed = ", ".join(getattr(mode, "shed", [])) or "-"
        click.echo(f"{name}: keeps {keeps}; off {off}; sheds {shed}")
        description = getattr(mode, "description", "")
        if description:
            click.echo(f"  {description}")


@modes.command("set")
@click.argument("name")
@click.option("--file", "-f", "file", default="reliability.yaml", show_default=True)
@click.option("--state", default=DEFAULT_STATE, show_default=True, help="The shared mode file.")
@click.option("--cause", default="cli", show_default=True, help="Why, for the record.")
def set_mode(name: str, file: str, state: str, cause: str) -> None:
    """Switch mode NAME on."""
    declared = _declared(file)
    if name not in declared:
        known = ", ".join(sorted(declared)) or f"{file} declares none"
        raise ConfigError("mode", name, f"is not a declared mode (known: {known})")
    write_state(state, name, cause, time.time())
    click.echo(f"mode {name} on")


@modes.command("clear")
@click.option("--state", default=DEFAULT_STATE, show_default=True, help="The shared mode file.")
@click.option("--cause", default="cli", show_default=True, help="Why, for the record.")
def clear_mode(state: str, cause: str) -> None:
    """Back to normal operation."""
    write_state(state, None, cause, time.time())
    click.echo("normal operation")


@modes.command("status")
@click.option("--state", default=DEFAULT_STATE, show_default=True, help="The shared mode file.")
def status(state: str) -> None:
    """Which mode is on, since when and why."""
    data = read_state(state) if Path(state).exists() else None
    if data is None or data.get("mode") is None:
        click.echo("normal operation")
        return
    age = time.time() - float(data.get("since", time.time()))
    click.echo(f"mode {data['mode']} on for {age:.0f}s (cause: {data.get('cause', '?')})")
