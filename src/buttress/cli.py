"""The ``buttress`` command.

Each subpackage contributes its own command group from its ``cli.py``; groups are imported only
when used, so ``buttress --version`` stays instant and a missing extra only affects its own command.
Errors Buttress anticipates (bad spec, bad parameter, missing extra) are printed as one clear
message with exit status 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from .errors import ButtressError
from .version import __version__

__all__ = ["main"]

# name -> "module:attribute" of a click command; imported on first use.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "spec": ("buttress.spec.cli:spec", "validate reliability.yaml, print its JSON Schema"),
    "lab": ("buttress.lab.cli:lab", "run a scenario and compare strategies side by side"),
    "assess": ("buttress.assess.cli:assess", "availability, SPOFs, risks, RTO/RPO of a design"),
    "slo": ("buttress.slo.cli:slo", "SLOs: Prometheus rules, promtool tests, status, backtest"),
    "chaos": ("buttress.chaos.cli:chaos", "run and validate chaos experiments, check histories"),
    "proxy": ("buttress.chaos.cli:proxy", "serve the TCP/HTTP fault proxy (toxiproxy API)"),
    "dashboard": ("buttress.dashboard.cli:dashboard", "serve the live web UI for a store"),
    "health": ("buttress.health.cli:health", "probe a health endpoint (exit 0 on pass/warn)"),
    "modes": ("buttress.modes.cli:modes", "degraded modes: list, switch on and off, status"),
    "supervise": ("buttress.supervise.cli:supervise", "run supervision trees, show status, export"),
    "incident": ("buttress.incident.cli:incident", "receive alerts; ack, mitigate, resolve"),
    "report": ("buttress.incident.cli:report", "SLOs, incidents, MTTx over a period vs the last"),
    "outbox": ("buttress.outbox.cli:outbox", "transactional outbox: status, dead letters, requeue"),
    "dr": ("buttress.dr.cli:dr", "backups verified by restore, restores, drills measuring RTO/RPO"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        target, _ = LAZY_COMMANDS[cmd_name]
        module, _, attr = target.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise click.ClickException(
                f"`buttress {cmd_name}` is unavailable: {e}. "
                "Install the extras with `pip install 'buttress[all]'`."
            ) from None
        found = getattr(mod, attr)
        assert isinstance(found, click.Command)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, LAZY_COMMANDS[name][1]) for name in sorted(LAZY_COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ButtressError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="buttress")
def main() -> None:
    """Buttress: reliability engineering for Python services."""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
