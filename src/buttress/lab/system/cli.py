"""The ``buttress lab PATH`` entry: run the lab, print the table (or JSON), set the exit status.

Exit status: 0 when every hypothesis held, 1 when one failed, 3 when the verdict is inconclusive
(none failed, but the load driver was starved, so a run could not be judged: the lag figures are
printed), 2 for bad input or a service that did not start (a
:class:`~buttress.errors.ButtressError`, printed as one message by ``cli.py``),
130 when interrupted (Ctrl-C or SIGTERM), after every fault was removed and every process stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from buttress.errors import MissingExtra

__all__ = ["parse_runs", "run_system"]


def parse_runs(text: str) -> tuple[str, ...]:
    """``--runs`` as run modes, in the lab's own order (:data:`~.spec.MODES`), each named as the
    report names it (:data:`~.spec.MODE_NAMES`, case-insensitive) or by its mode; an unknown name
    is a bad parameter."""
    from .spec import MODE_NAMES, MODES

    aliases = {m: m for m in MODES} | {name.lower(): m for m, name in MODE_NAMES.items()}
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in aliases]
    if unknown or not names:
        choices = ", ".join(name.lower() for name in MODE_NAMES.values())
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {choices}", param_hint="--runs"
        )
    wanted = {aliases[n] for n in names}
    return tuple(m for m in MODES if m in wanted)


def run_system(
    path: str,
    *,
    quick: bool,
    out: str,
    seed: int,
    as_json: bool,
    runs: str | None = None,
    drill: bool = False,
    prometheus: bool = False,
) -> None:
    """Run the lab for ``path`` and exit with its status (``runs``: comma-separated run names,
    ``buttress`` for ``on``; ``None``: the file's ``experiments.runs``; ``prometheus``: a real
    Prometheus and Alertmanager beside each run)."""
    try:
        from .report import render_table
        from .run import LabOptions, run_lab
    except ImportError as e:  # httpx, uvicorn, starlette, numpy: the http, slo and chaos extras
        raise MissingExtra("buttress lab PATH", "all", e.name or str(e)) from None

    options = LabOptions(
        quick=quick,
        out=Path(out),
        seed=seed,
        modes=None if runs is None else parse_runs(runs),
        prometheus=prometheus,
    )
    echo = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    try:
        result = run_lab(path, options, stream=sys.stderr, echo=echo, drill=drill)
    except KeyboardInterrupt:
        click.echo("interrupted: faults removed, every process stopped", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(result, indent=1))
    else:
        click.echo(render_table(result), nl=False)
    verdict = result.get("verdict", "passed" if result["passed"] else "failed")
    if verdict == "inconclusive":
        sys.exit(3)
    if verdict != "passed":
        sys.exit(1)
