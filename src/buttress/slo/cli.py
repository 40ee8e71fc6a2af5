"""``buttress slo``: validate, generate rules and promtool tests, status, backtest, convert,
record."""

from __future__ import annotations

import functools
import json
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from buttress.errors import ButtressError
from buttress.tables import render_table

from .load import load_slos
from .spec import SLOSpec

if TYPE_CHECKING:
    from .evaluator import SLOStatus

__all__ = ["slo"]

_file = click.argument("file", type=click.Path(dir_okay=False))
_db = functools.partial(
    click.option,
    "--db",
    envvar="BUTTRESS_SLO_DB",
    type=click.Path(dir_okay=False),
    help="SQLite store of per-minute SLI counts (env BUTTRESS_SLO_DB).",
)
"""The SLI store option; each command says whether it is required."""


@click.group()
def slo() -> None:
    """Service level objectives: rules, tests, status and backtests."""


@slo.command()
@_file
def validate(file: str) -> None:
    """Check FILE (reliability.yaml, OpenSLO v1 or sloth prometheus/v1)."""
    slos = load_slos(file)
    click.echo(f"{file}: ok ({len(slos)} SLO(s))")
    for s in slos:
        for w in s.warnings():
            click.echo(f"warning: {w}")


@slo.command()
@_file
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for <slo>.rules.yaml and <slo>.test.yaml.",
)
@click.option(
    "--tests/--no-tests",
    default=True,
    show_default=True,
    help="Also write promtool unit-test files.",
)
@click.option(
    "--naming",
    type=click.Choice(["buttress", "sloth"]),
    default="buttress",
    show_default=True,
    help="Series names and labels: Buttress's (slo, service) or sloth's (sloth_id, sloth_service, "
    "sloth_slo, sloth_window and sloth's metadata series), for the Grafana dashboards made for "
    "sloth.",
)
def generate(file: str, out_dir: str, tests: bool, naming: str) -> None:
    """Write Prometheus recording/alerting rules (and promtool tests) for every SLO in FILE."""
    from .generate import build_outputs, write_outputs
    from .rules import Naming

    slos = load_slos(file)
    gen = build_outputs(slos, with_tests=tests, naming=Naming(naming))
    for note in gen.notes:
        click.echo(f"note: {note}", err=True)
    for path in write_outputs(gen, out_dir):
        click.echo(str(path))


def _parse_at(at: str | None) -> datetime | None:
    if at is None:
        return None
    try:
        dt = datetime.fromisoformat(at)
    except ValueError:
        raise ButtressError(
            f"--at {at!r}: use ISO 8601 with an offset, e.g. 2024-03-01T12:00+00:00"
        ) from None
    if dt.tzinfo is None:
        raise ButtressError(f"--at {at!r}: add a time zone offset, e.g. +00:00")
    return dt


def _fmt_seconds(s: float | None) -> str:
    if s is None or math.isinf(s):
        return "never"
    if s >= 86400:
        return f"{s / 86400:.1f}d"
    if s >= 3600:
        return f"{s / 3600:.1f}h"
    return f"{s / 60:.0f}m"


def _pick(slos: list[SLOSpec], name: str | None) -> list[SLOSpec]:
    if name is None:
        return slos
    chosen = [s for s in slos if s.name == name]
    if not chosen:
        raise ButtressError(f"no SLO named {name!r} (SLOs: {', '.join(s.name for s in slos)})")
    return chosen


@slo.command()
@_file
@_db(required=True)
@click.option(
    "--at", default=None, help="Evaluate at this time (ISO 8601 with offset; default now)."
)
@click.option("--slo", "name", default=None, help="Only this SLO.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--report-only",
    is_flag=True,
    help="Exit 0 whatever the verdict (for dashboards and reports; bad input still exits 2).",
)
def status(
    *, file: str, db: str, at: str | None, name: str | None, as_json: bool, report_only: bool
) -> None:
    """Objective, SLI, budget, burn rates, firing alerts and time to exhaustion per SLO.

    \b
    Exit status (a verdict a pipeline can gate on, like promtool or a linter):
      0  no page alert fires (tickets may fire; they are reported, not failed on)
      1  at least one page alert fires (a tier with severity page)
      2  bad input: unreadable or invalid FILE, no such store or SLO, a bad --at
    With --report-only the status is 0 whenever a verdict was printed.
    Of a reliability.yaml only `service` and `slos:` are read and checked (the whole file:
    `buttress slo validate` or `buttress spec validate`).
    """
    from .evaluator import evaluate
    from .store import SLIStore

    slos = _pick(load_slos(file, whole=False), name)
    if not Path(db).exists():
        raise ButtressError(f"--db {db}: no such store (record some events first)")
    with SLIStore(db) as store:
        result = evaluate(slos, store, _parse_at(at))
    paging = sorted(
        f"{r.service}/{r.name}: {tier}"
        for spec, r in zip(slos, result, strict=True)
        for tier in r.firing
        if tier in _page_tiers(spec)
    )
    if as_json:
        click.echo(json.dumps([r.to_json() for r in result], indent=2))
    else:
        _status_table(slos, result)
    if paging:
        click.echo(f"page alert(s) firing: {', '.join(paging)}", err=True)
        if not report_only:
            raise click.exceptions.Exit(1)


def _page_tiers(spec: SLOSpec) -> set[str]:
    """The names of the active tiers of ``spec`` whose severity is ``page``."""
    return {t.name for t in spec.alerting.active_tiers if t.severity == "page"}


def _status_table(slos: list[SLOSpec], result: list[SLOStatus]) -> None:
    head = ["SLO", "objective", "SLI", "budget left", "burn rate (long/short)", "firing"]
    head.append("exhausted in")
    rows = []
    for spec, r in zip(slos, result, strict=True):
        rows.append(
            [
                f"{r.service}/{r.name}",
                f"{r.objective:g}%",
                "-" if r.sli is None else f"{r.sli * 100:.3f}%",
                f"{r.budget_remaining * 100:.1f}%",
                _burns(spec, r.burn_rates),
                ",".join(r.firing) or "-",
                _fmt_seconds(r.time_to_exhaustion),
            ]
        )
    click.echo(render_table(head, rows))


def _burns(spec: SLOSpec, rates: dict[str, float | None]) -> str:
    """Every alert window's burn rate, one ``long/short a/b`` pair per tier (``1h/5m 0.40/0.21``);
    ``5m`` alone for an SLO without tiers."""
    from .spec import format_duration

    def key(seconds: float) -> str:
        return format_duration(max(1, round(seconds / 60)) * 60)

    pairs = []
    for t in spec.alerting.active_tiers:
        lw, sw = key(t.long_window), key(t.short_window)
        pairs.append(f"{lw}/{sw} {_rate(rates.get(lw))}/{_rate(rates.get(sw))}")
    return ", ".join(pairs) or f"5m {_rate(rates.get('5m'))}"


def _rate(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


@slo.command()
@_file
@click.option("--slo", "name", required=True, help="The SLO whose alert policy to replay.")
@_db(default=None)
@click.option(
    "--csv",
    "csv_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="History as CSV: minute,good,total.",
)
@click.option(
    "--merge-gap", default=10, show_default=True, help="Quiet minutes that split incidents."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def backtest(
    *, file: str, name: str, db: str | None, csv_path: str | None, merge_gap: int, as_json: bool
) -> None:
    """Replay an SLO's alert tiers over history: precision, recall, detection and reset time."""
    from .backtest import backtest as run
    from .backtest import read_csv

    (slo_spec,) = _pick(load_slos(file), name)
    if (db is None) == (csv_path is None):
        raise ButtressError("give exactly one of --db or --csv")
    if csv_path is not None:
        start, good, total = read_csv(csv_path)
    else:
        from .store import SLIStore

        assert db is not None
        if not Path(db).exists():
            raise ButtressError(f"--db {db}: no such store")
        with SLIStore(db) as store:
            bounds = store.bounds(slo_spec.name)
            if bounds is None:
                raise ButtressError(f"no history for {slo_spec.name!r} in {db}")
            start = bounds[0]
            good, total = store.series(slo_spec.name, bounds[0], bounds[1] + 1)
    report = run(slo_spec, good, total, start, merge_gap=merge_gap)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    click.echo(
        f"{report.slo}: {report.minutes} minutes, {report.total:.0f} {report.unit}, "
        f"{report.bad:.{0 if report.bad == int(report.bad) else 2}f} bad, "
        f"{len(report.incidents)} incident(s)"
    )
    head = ["tier", "threshold", "episodes", "precision", "recall", "detected", "significant"]
    head += ["detect", "reset"]
    rows = [
        [
            t.tier,
            f"{t.threshold:.2f}x",
            t.episodes,
            _pct(t.precision),
            _pct(t.recall),
            f"{t.detected}/{t.significant_incidents}",
            f">= {t.budget_fraction:.1%} budget",
            _fmt_seconds(t.detection_time_mean),
            _fmt_seconds(t.reset_time_mean),
        ]
        for t in report.tiers
    ]
    click.echo(render_table(head, rows, indent="  "))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


@slo.command()
@_file
@click.option(
    "--to",
    "fmt",
    required=True,
    type=click.Choice(["openslo", "sloth", "reliability"]),
    help="Output format.",
)
@click.option(
    "-o",
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Output file (default: stdout).",
)
def convert(file: str, fmt: str, out: str | None) -> None:
    """Convert FILE (any supported format) to OpenSLO v1, sloth prometheus/v1 or
    reliability.yaml."""
    from .rules import to_yaml

    slos = load_slos(file)
    for s in slos:
        for w in s.warnings():
            click.echo(f"warning: {w}", err=True)
    text: str
    if fmt == "openslo":
        from .openslo import slos_to_openslo

        text = "---\n".join(to_yaml(d) for d in slos_to_openslo(slos))
    elif fmt == "sloth":
        from .sloth import slos_to_sloth

        text = to_yaml(slos_to_sloth(slos))
    else:
        text = to_yaml({"version": 1, "slos": [_reliability_entry(s) for s in slos]})
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(out)


def _reliability_entry(s: SLOSpec) -> dict[str, Any]:
    data = s.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data["name"] = s.name
    data["service"] = s.service
    data["objective"] = s.objective
    if "window" not in data:
        data["window"] = {"rolling": s.window.rolling}
    return data


@slo.command()
@_db(required=True)
@click.option("--slo", "name", required=True, help="SLO (SLI) name.")
@click.option("--good", type=int, required=True)
@click.option("--total", type=int, required=True)
@click.option("--at", default=None, help="When (ISO 8601 with offset; default now).")
def record(db: str, name: str, good: int, total: int, at: str | None) -> None:
    """Add GOOD of TOTAL events for an SLO to the store (the direct recording API)."""
    from .recorder import SLIRecorder
    from .store import SLIStore

    with SLIStore(db) as store, SLIRecorder(store) as rec:
        rec.record(name, good, total, _parse_at(at))
    click.echo(f"recorded {good}/{total} for {name}")
