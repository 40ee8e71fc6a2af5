"""``buttress assess FILE``: availability, single points of failure, risks and RTO/RPO verdicts.

Reads the ``architecture:`` section of FILE and prints terminal tables; ``--json`` and
``--markdown`` print those formats instead, ``--html OUT`` also writes a self-contained page, and
``--simulate`` adds a Monte Carlo cross-check beside every exact figure.

The exit status is a verdict a pipeline can gate on (see :mod:`buttress.assess.verdicts`): 0 when
every journey meets its target and no RTO/RPO is breached, 1 when one misses (each failed verdict
named on stderr; ``--report-only`` exits 0), 2 for bad input or a missing extra.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from buttress.errors import ConfigError, MissingExtra

from .verdicts import EXIT_CODES_HELP, EXIT_FAILED, failed_verdicts

if TYPE_CHECKING:
    from .model import ArchitectureSpec

__all__ = ["assess"]


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option(
    "--from",
    "from_path",
    type=click.Path(),
    help="Build a first model from a Docker Compose file or a folder of Kubernetes manifests "
    "instead of FILE (guesses are listed as assumptions).",
)
@click.option(
    "--emit-model",
    type=click.Path(dir_okay=False),
    help="With --from: write the imported model as a reliability.yaml to refine.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the assessment as JSON.")
@click.option("--markdown", is_flag=True, help="Print the assessment as Markdown.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), help="Write an HTML report.")
@click.option("--simulate", is_flag=True, help="Cross-check with a Monte Carlo simulation.")
@click.option("--seed", default=0, show_default=True, help="Seed of the simulation.")
@click.option(
    "--precision",
    default=0.1,
    show_default=True,
    help="Stop simulating when the 95% interval is within this share of the estimate.",
)
@click.option(
    "--max-seconds", default=30.0, show_default=True, help="Time limit of the simulation."
)
@click.option(
    "--order",
    "max_order",
    default=2,
    show_default=True,
    help="Largest minimal cut sets to list (1: single points of failure only).",
)
@click.option(
    "--mission",
    default=None,
    help="Mission time from an all-up start (e.g. 720h, 30d): A(T), mean availability over "
    "[0, T] and, with --simulate, the chance of no outage.",
)
@click.option(
    "--rare",
    is_flag=True,
    help="With --simulate: importance sampling (failure-biased short histories) for rare outages.",
)
@click.option(
    "--samples",
    default=200,
    show_default=True,
    help="Draws of the units' uncertain ranges for the availability interval (0: skip).",
)
@click.option(
    "--report-only",
    is_flag=True,
    help="Exit 0 even when a verdict fails (the failures are still listed on stderr).",
)
@click.pass_context
def assess(
    ctx: click.Context,
    *,
    file: str | None,
    from_path: str | None,
    emit_model: str | None,
    as_json: bool,
    markdown: bool,
    html_out: str | None,
    simulate: bool,
    seed: int,
    precision: float,
    max_seconds: float,
    max_order: int,
    mission: str | None,
    samples: int,
    rare: bool,
    report_only: bool,
) -> None:
    """Assess the architecture in FILE: availability per journey, single points of failure,
    dependency budget, risk register, recommendations and RTO/RPO verdicts."""
    # The analysis imports numpy where it needs it (deep inside); on a bare install, name the
    # extra before any work, in one line, rather than end in a traceback half-way.
    if importlib.util.find_spec("numpy") is None:
        raise MissingExtra("`buttress assess`", "assess", "numpy")
    from .model import load_architecture
    from .report import assess as run
    from .report import render_markdown, render_text
    from .system import System

    if as_json and markdown:
        raise ConfigError("--json/--markdown", "both", "choose one output format")
    if not 1 <= max_order <= 4:
        raise ConfigError("--order", max_order, "must be between 1 and 4")
    if not 0 < precision < 1:
        raise ConfigError("--precision", precision, "must be in (0, 1)")
    if samples < 0:
        raise ConfigError("--samples", samples, "must be >= 0")
    if max_seconds <= 0:
        raise ConfigError("--max-seconds", max_seconds, "must be > 0")
    mission_hours = None
    if mission is not None:
        from buttress.spec.types import parse_duration

        try:
            mission_hours = parse_duration(mission) / 3600.0
        except ValueError as e:
            raise ConfigError("--mission", mission, str(e)) from None
        if mission_hours <= 0:
            raise ConfigError("--mission", mission, "must be a duration > 0")
    if (file is None) == (from_path is None):
        raise ConfigError("FILE/--from", file or from_path, "give either FILE or --from PATH")
    if emit_model and from_path is None:
        raise ConfigError("--emit-model", emit_model, "needs --from")
    assumptions: list[str] = []
    if from_path is not None:
        from .importers import import_architecture, model_yaml

        imported = import_architecture(from_path)
        arch = _validated(imported.architecture, from_path)
        assumptions = imported.assumptions
        if emit_model:
            Path(emit_model).write_text(model_yaml(imported), encoding="utf-8")
        source = f"{from_path} (imported from {imported.kind})"
    else:
        assert file is not None
        arch, _ = load_architecture(file)
        source = file
    report = run(
        System.from_spec(arch),
        simulate_model=simulate,
        seed=seed,
        max_order=max_order,
        rel_precision=precision,
        max_seconds=max_seconds,
        source=source,
        mission=mission_hours,
        samples=samples,
        importance=rare,
    )
    if assumptions:
        report["assumptions"] = assumptions
    if html_out:
        try:
            from .html import render_html
        except ModuleNotFoundError as e:
            if e.name is None or e.name.startswith("buttress"):
                raise
            raise MissingExtra("`buttress assess --html`", "assess", e.name) from None

        Path(html_out).write_text(render_html(report), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report, indent=2))
    elif markdown:
        click.echo(render_markdown(report), nl=False)
    else:
        click.echo(render_text(report), nl=False)
        if html_out:
            click.echo(f"\nwrote {html_out}")
    failed = failed_verdicts(report)
    for line in failed:
        click.echo(f"FAILED: {line}", err=True)
    if failed and not report_only:
        ctx.exit(EXIT_FAILED)


def _validated(architecture: dict[str, object], source: str) -> ArchitectureSpec:
    """An imported model, checked like a file (a problem names the import's source)."""
    from pydantic import ValidationError

    from buttress.errors import SpecError

    from .model import ArchitectureSpec

    try:
        return ArchitectureSpec.model_validate(architecture)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise SpecError(
            f"the imported model is not valid: {where}: {first['msg']}", file=source
        ) from None
