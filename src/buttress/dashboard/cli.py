"""``buttress dashboard``: serve the local web UI for a store (and a spec, and journals)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from buttress.errors import ConfigError

__all__ = ["dashboard"]

_optional_input = functools.partial(click.option, type=click.Path(dir_okay=True), default=None)
"""The optional inputs besides the store: each a file or directory, ``None`` when left out."""


@click.command()
@click.option(
    "--store",
    "store",
    default=".buttress/slo.db",
    show_default=True,
    envvar="BUTTRESS_SLO_DB",
    type=click.Path(dir_okay=True),
    help="The SQLite store the service (or lab) records into (env BUTTRESS_SLO_DB).",
)
@_optional_input(
    "--spec", help="reliability.yaml (or OpenSLO/sloth) with the SLOs and the architecture."
)
@_optional_input("--journals", help="A directory of Chaos Toolkit experiment journals.")
@_optional_input(
    "--lab",
    help="A lab report directory (buttress lab PATH --out DIR) or its result.json: the runs "
    "side by side.",
)
@_optional_input(
    "--incidents",
    help="The incident store (buttress incident serve --store): open incidents, their impact "
    "and the time-to-x figures.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port (0: any free).")
@click.option(
    "--stale-after",
    default=5.0,
    show_default=True,
    type=float,
    help="Seconds without a heartbeat before a process's states are shown as stale.",
)
def dashboard(
    *,
    store: str,
    spec: str | None,
    journals: str | None,
    lab: str | None,
    incidents: str | None,
    host: str,
    port: int,
    stale_after: float,
) -> None:
    """Serve the dashboard: SLOs and error budgets, live policy states, endpoint health,
    experiment runs, the lab, incidents and the assessment, updated live from the store."""
    from .app import create_app, make_server
    from .state import DashboardConfig

    if not 0 <= port <= 65535:
        raise ConfigError("--port", port, "must be between 0 and 65535")
    if not stale_after > 0:
        raise ConfigError("--stale-after", stale_after, "must be > 0 seconds")
    if spec is not None and Path(spec).is_dir():
        raise ConfigError("--spec", spec, "is a directory; give the reliability.yaml file")
    config = DashboardConfig(
        store=Path(store),
        spec=Path(spec) if spec else None,
        journals=Path(journals) if journals else None,
        lab=Path(lab) if lab else None,
        incidents=Path(incidents) if incidents else None,
        stale_after=stale_after,
    )
    if port == 0:  # choose the free port here, so the address printed is the real one
        import socket

        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    app = create_app(config)
    server = make_server(app, host=host, port=port)
    click.echo(f"buttress dashboard on http://{host}:{port}/ (store {store}); Ctrl-C stops it")
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; stopping is not an error
        pass
    click.echo("buttress dashboard stopped")
