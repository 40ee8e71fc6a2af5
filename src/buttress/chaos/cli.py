"""``buttress chaos`` (run, validate, check) and ``buttress proxy serve``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import click

from buttress.errors import ButtressError

__all__ = ["chaos", "proxy"]


@click.group()
def chaos() -> None:
    """Chaos experiments (Chaos Toolkit format) and the nothing-lost checker."""


@chaos.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--journal",
    "journal_path",
    default="journal.json",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Where to write the journal (Chaos Toolkit's format).",
)
@click.option("--dry-run", is_flag=True, help="Walk the plan and write the journal; call nothing.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the outcome.")
def run(file: str, journal_path: str, dry_run: bool, quiet: bool) -> None:
    """Run the experiment in FILE; rollbacks always run, also on Ctrl-C.

    Exit status: 0 when the steady state held, 1 when the run failed, deviated or was aborted,
    130 when interrupted.
    """
    from buttress.chaos.experiment import Runner, load_experiment

    loaded = load_experiment(file)

    def log(msg: str) -> None:
        if not quiet:
            click.echo(msg)

    def term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, term)
    runner = Runner(loaded, dry=dry_run, log=log)
    try:
        runner.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        runner.journal.write(journal_path)  # always, whatever happened
    journal = runner.journal
    verdict = journal.status + (" (deviated)" if journal.deviated else "")
    reason = f": {journal.abort_reason}" if journal.abort_reason else ""
    click.echo(f"{verdict}{reason}; {len(journal.rollbacks)} rollback(s); journal: {journal_path}")
    if journal.status == "interrupted":
        sys.exit(130)
    if journal.status != "completed" or journal.deviated:
        sys.exit(1)


@chaos.command()
@click.argument("file", type=click.Path(dir_okay=False))
def validate(file: str) -> None:
    """Check FILE without running it (every problem with its line, column and field)."""
    from buttress.chaos.experiment import load_experiment

    exp = load_experiment(file).experiment
    n = len(exp.method) + len(exp.rollbacks) + len(exp.continuous_probes)
    if exp.steady_state_hypothesis is not None:
        n += len(exp.steady_state_hypothesis.probes)
    click.echo(f"{file}: ok ({exp.title!r}, {n} activities)")


@chaos.command()
@click.argument("history", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def check(history: str, as_json: bool) -> None:
    """Check a JSON-lines HISTORY of adds and a final read: was anything acknowledged lost?

    Exit status 1 when the history is invalid (lost, unexpected or revived values).
    """
    from buttress.chaos.checker import History, check_set

    result = check_set(History.load(history))
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=repr))
    elif result.valid is None:
        click.echo(f"{history}: no final read, nothing to decide")
    else:
        click.echo(
            f"{history}: {'valid' if result.valid else 'INVALID'}: "
            f"{summary['acknowledged_count']} acknowledged, {summary['lost_count']} lost, "
            f"{summary['unexpected_count']} unexpected, {summary['revived_count']} revived, "
            f"{summary['recovered_count']} unknown that landed"
        )
        if result.lost:
            click.echo(f"lost: {summary['lost']}")
    if result.valid is False:
        sys.exit(1)


@click.group()
def proxy() -> None:
    """The TCP/HTTP fault proxy with a toxiproxy-compatible control API."""


@proxy.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Control API address.")
@click.option("--port", default=8474, show_default=True, type=int, help="Control API port.")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True),
    help="JSON list of proxies to create at start (as POST /populate).",
)
@click.option(
    "--splice/--no-splice",
    default=False,
    show_default=True,
    help="Move untouched bytes with os.splice (Linux) instead of the copy loop, which measured "
    "faster (docs/chaos.md).",
)
@click.option("--seed", type=int, default=None, help="Seed for toxicity draws and jitter.")
@click.option(
    "--congestion",
    default="auto",
    show_default=True,
    help="TCP congestion control on the proxy's sockets: 'auto' (Reno towards loopback peers, "
    "the system default otherwise), 'system', or an algorithm name.",
)
def serve(
    *, host: str, port: int, config: str | None, splice: bool, seed: int | None, congestion: str
) -> None:
    """Run the proxy until Ctrl-C or SIGTERM."""
    from buttress.chaos.proxy import ApiError, serve_forever

    def ready(h: str, p: int) -> None:
        click.echo(f"buttress proxy: control API on http://{h}:{p}", err=True)

    try:
        asyncio.run(
            serve_forever(
                host,
                port,
                config=config,
                splice=splice,
                seed=seed,
                congestion=congestion,
                on_ready=ready,
            )
        )
    except ApiError as e:
        raise ButtressError(e.message) from None
    except OSError as e:
        raise ButtressError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
