"""``buttress lab``: run a scenario on simulated time and compare strategies side by side.

In-process scenarios are chosen with ``--scenario`` (default ``retry-storm``), which leaves the
positional argument free for running a real system later.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click

import buttress.lab.sim.scenarios  # noqa: F401  (importing it registers the built-in scenarios)

from .sim.registry import get_scenario, scenarios
from .sim.report import render_table, to_json

__all__ = ["ProgressLine", "lab"]


class ProgressLine:
    """Progress on a stream (stderr), shown only once a run has taken longer than ``delay`` seconds.

    On a terminal it redraws one line; elsewhere it writes one line per stage.  :meth:`close` clears
    the terminal line.  Wall time is read with :func:`time.monotonic`: this is presentation, not a
    policy decision.
    """

    def __init__(self, stream: TextIO, *, delay: float = 1.0, label: str = "lab") -> None:
        self.stream = stream
        self.delay = delay
        self.label = label
        self.start = time.monotonic()
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.shown = False
        self._last_stage = ""

    def __call__(self, stage: str, fraction: float) -> None:
        if time.monotonic() - self.start < self.delay:
            return
        pct = f"{min(1.0, max(0.0, fraction)):.0%}"
        if self.tty:
            self.stream.write(f"\r{self.label}: {stage} {pct}   ")
            self.stream.flush()
            self.shown = True
        elif stage != self._last_stage:
            self.stream.write(f"{self.label}: {stage} {pct}\n")
            self.stream.flush()
            self.shown = True
        self._last_stage = stage

    def close(self) -> None:
        if self.shown and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


@click.command("lab")
@click.argument("path", required=False, type=click.Path())
@click.option("--quick", is_flag=True, help="With PATH: the short plan (CI).")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="lab-report",
    show_default=True,
    help="With PATH: where the report, result.json, stores and logs go.",
)
@click.option(
    "--scenario",
    "scenario_name",
    default="retry-storm",
    show_default=True,
    metavar="NAME",
    help="The in-process scenario to run (see --list).",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Seed of every random draw; the same seed gives the same figures.",
)
@click.option(
    "--runs",
    default=None,
    metavar="LIST",
    help="With PATH: which runs, comma-separated: off (no protection), typical (tenacity, "
    "pybreaker and client timeouts, in the example's own code), buttress (the policies); "
    "default: the file's experiments.runs (off,typical,buttress unless it says otherwise).",
)
@click.option(
    "--drill",
    is_flag=True,
    help="With PATH: the disaster-recovery drill of experiments.drill (one run with the "
    "policies: the database lost and restored from its backups; RTO/RPO against the objectives).",
)
@click.option(
    "--prometheus",
    is_flag=True,
    help="With PATH: a real Prometheus and Alertmanager beside each run (Debian's prometheus and "
    "prometheus-alertmanager): every service scraped, the SLOs' rules (time compressed 60x) "
    "evaluated, alerts routed to Buttress's incident receiver and compared with the embedded "
    "evaluator (docs/lab.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
def lab(
    *,
    path: str | None,
    quick: bool,
    out: str,
    scenario_name: str,
    seed: int,
    runs: str | None,
    drill: bool,
    prometheus: bool,
    as_json: bool,
    list_only: bool,
) -> None:
    """Run a scenario on simulated time and compare strategies side by side; or, with PATH,
    run the real system PATH/reliability.yaml describes under load and faults (docs/shop-lab.md).

    The default scenario, retry-storm, sends the traffic of 1,000 clients to one dependency that
    fails for 10 s, once per strategy: no retry, naive retries, backoff with jitter, a retry
    budget, and Buttress's default (budget + circuit breaker).  slow-dependency makes a dependency
    ten times slower for 10 s and compares no protection with bulkhead + adaptive limit + priority
    shedding, class by class.  Progress goes to stderr for runs longer than a second.

    \b
    Exit status with PATH: 0 every hypothesis held; 1 one failed; 2 bad input, a missing extra or
    a service that did not start; 3 inconclusive (none failed, but the load driver itself was
    starved: its lag figures say by how much); 130 interrupted, after every fault was removed and
    every process stopped.
    """
    if path is not None:
        from .system.cli import run_system

        run_system(
            path,
            quick=quick,
            out=out,
            seed=seed,
            as_json=as_json,
            runs=runs,
            drill=drill,
            prometheus=prometheus,
        )
        return
    if list_only:
        for s in scenarios():
            click.echo(f"{s.name}  {s.summary}")
        return
    scenario = get_scenario(scenario_name)
    progress = ProgressLine(sys.stderr, label=f"lab {scenario.name}")
    try:
        report = scenario.run(seed, progress)
    finally:
        progress.close()
    click.echo(to_json(report) if as_json else render_table(report))
