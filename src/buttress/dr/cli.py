"""``buttress dr``: backup, verify, restore, list, prune, drill.

Exit status: 0 on success, 1 when a verification or a drill fails its checks or objectives,
2 for bad input (a missing or unwritable target, a restore over a live database without
``--force``, an unknown disruption type), printed as one line naming the parameter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from buttress.errors import ConfigError

from .catalog import Retention, list_backups, prune
from .manifest import SENTINEL_TABLE, BackupInfo, VerifyOutcome, load_backup

__all__ = ["dr"]

EXIT_FAILED = 1


def _duration(parameter: str, value: str | None) -> float | None:
    if value is None:
        return None
    from buttress.spec.types import parse_duration

    try:
        return parse_duration(value)
    except ValueError as e:
        raise ConfigError(parameter, value, str(e)) from None


def _row(b: BackupInfo) -> dict[str, object]:
    m = b.manifest
    return {
        "id": m.id,
        "database": m.database,
        "engine": m.engine,
        "finished_at": m.finished_at,
        "duration": round(m.duration, 3),
        "size": m.size,
        "rows": sum(t.rows for t in m.tables.values()),
        "sentinel": None if m.sentinel is None else m.sentinel.seq,
        "status": b.status,
        "problems": [] if b.verified is None else list(b.verified.problems),
    }


_pg_bin_option = click.option(
    "--pg-bin", default=None, help="PostgreSQL: the directory of its programs."
)
"""Every command that may run PostgreSQL's own programs (pg_basebackup, pg_verifybackup, ...)."""


@click.group()
def dr() -> None:
    """Backups verified by restoring them, restores, retention, and drills that measure RTO/RPO."""


@dr.command()
@click.argument("database", type=click.Path(dir_okay=False))
@click.option("--to", "target", required=True, help="The backup directory (must exist).")
@click.option("--name", default=None, help="The database's name in the catalog (default: stem).")
@click.option("--sentinel-table", default=SENTINEL_TABLE, show_default=True)
@click.option("--verify", "then_verify", is_flag=True, help="Verify the new backup at once.")
@click.option("--wal-archive", default=None, help="PostgreSQL: where the server archives WAL.")
@_pg_bin_option
@click.pass_context
def backup(
    ctx: click.Context,
    *,
    database: str,
    target: str,
    name: str | None,
    sentinel_table: str,
    then_verify: bool,
    wal_archive: str | None,
    pg_bin: str | None,
) -> None:
    """Back up DATABASE online (safe while it takes writes): a SQLite file, or a PostgreSQL
    server given as a DSN (``postgresql://...`` or ``host=... port=...``)."""
    from . import sqlite
    from .postgres import PgTools, is_postgres_dsn, pg_backup

    if is_postgres_dsn(database):
        info = pg_backup(
            database,
            target,
            tools=PgTools.find(pg_bin),
            name=name,
            wal_archive=wal_archive,
            sentinel_table=sentinel_table,
        )
    else:
        info = sqlite.backup(database, target, name=name, sentinel_table=sentinel_table)
    m = info.manifest
    click.echo(
        f"backup {m.id}: {m.size} bytes, {len(m.tables)} tables in {m.duration:.3f} s "
        f"(sentinel {m.sentinel.seq if m.sentinel else 'none'}) [unverified]"
    )
    if then_verify:
        outcome = _verify(info, None, pg_bin)
        click.echo(f"verify {m.id}: {'ok' if outcome.ok else 'FAILED'}")
        for p in outcome.problems:
            click.echo(f"  {p}")
        if not outcome.ok:
            ctx.exit(EXIT_FAILED)


def _verify(info: BackupInfo, max_age: float | None, pg_bin: str | None) -> VerifyOutcome:
    """Verify one backup with the engine that made it."""
    if info.manifest.engine == "postgresql":
        from .postgres import PgTools, pg_verify

        return pg_verify(info.path, tools=PgTools.find(pg_bin), max_age=max_age)
    from . import sqlite

    return sqlite.verify(info.path, max_age=max_age)


@dr.command()
@click.argument("target", type=click.Path(file_okay=False))
@click.argument("backups", nargs=-1)
@click.option("--max-age", default=None, help="Fail when the newest sentinel is older (e.g. 1h).")
@_pg_bin_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify(
    ctx: click.Context,
    *,
    target: str,
    backups: tuple[str, ...],
    max_age: str | None,
    pg_bin: str | None,
    as_json: bool,
) -> None:
    """Restore backups from TARGET into scratch and check them (default: the newest backup of
    each database).  Exit status 1 when one fails."""
    limit = _duration("--max-age", max_age)
    if backups:
        chosen = [_backup_in(target, b) for b in backups]
    else:
        newest: dict[str, BackupInfo] = {}
        for b in list_backups(target):
            newest[b.manifest.database] = b
        chosen = list(newest.values())
    if not chosen:
        raise ConfigError("target", target, "holds no backups to verify")
    failed = False
    out = []
    for b in chosen:
        outcome = _verify(b, limit, pg_bin)
        failed |= not outcome.ok
        out.append({"id": b.manifest.id, **outcome.to_json()})
        if not as_json:
            click.echo(
                f"{b.manifest.id}: {'ok' if outcome.ok else 'FAILED'} ({outcome.duration:.2f} s)"
            )
            for k, v in outcome.checks.items():
                click.echo(f"  {k}: {v}")
            for p in outcome.problems:
                click.echo(f"  problem: {p}")
    if as_json:
        click.echo(json.dumps(out, indent=2))
    if failed:
        ctx.exit(EXIT_FAILED)


def _backup_in(target: str, backup_id: str) -> BackupInfo:
    path = Path(target) / backup_id
    if "/" in backup_id or not path.is_dir():
        raise ConfigError("backup", backup_id, f"no such backup in {target}")
    return load_backup(path)


@dr.command()
@click.argument("target", type=click.Path(file_okay=False))
@click.argument("database")
@click.option("--backup", "backup_id", default=None, help="The backup's id (default: newest).")
@click.option("--name", default=None, help="Which database's backups (default: DATABASE's stem).")
@click.option(
    "--at", "at", default=None, help="Point in time (Unix seconds): newest backup before."
)
@click.option("--force", is_flag=True, help="Replace an existing database file.")
@_pg_bin_option
def restore(
    *,
    target: str,
    database: str,
    backup_id: str | None,
    name: str | None,
    at: str | None,
    force: bool,
    pg_bin: str | None,
) -> None:
    """Restore a backup from TARGET as DATABASE: a SQLite file, or for a PostgreSQL backup a
    data directory (``--at`` replays the WAL archive up to that time)."""
    from . import sqlite

    when = None
    if at is not None:
        try:
            when = float(at)
        except ValueError:
            raise ConfigError("--at", at, "give Unix seconds") from None
    if backup_id is not None:
        chosen = _backup_in(target, backup_id)
    else:
        chosen = sqlite.pick_backup(target, name or _default_name(target, database), at=when)
    started = time.monotonic()
    if chosen.manifest.engine == "postgresql":
        from .postgres import PgTools, pg_restore

        m = pg_restore(
            chosen.path, database, tools=PgTools.find(pg_bin), target_time=when, force=force
        )
    else:
        m = sqlite.restore(chosen.path, database, force=force)
    click.echo(
        f"restored {m.id} [{chosen.status}] to {database} in {time.monotonic() - started:.3f} s"
    )
    if chosen.status != "verified":
        click.echo(f"warning: backup {m.id} is {chosen.status}", err=True)


def _default_name(target: str, database: str) -> str:
    """DATABASE's stem, or the only database the catalog holds (restoring to a new path)."""
    names = {b.manifest.database for b in list_backups(target)}
    stem = Path(database).stem
    return next(iter(names)) if stem not in names and len(names) == 1 else stem


@dr.command(name="list")
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def list_(target: str, as_json: bool) -> None:
    """List the backups in TARGET with their verification status."""
    rows = [_row(b) for b in list_backups(target)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no backups")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(r["finished_at"])))  # type: ignore[arg-type]
        click.echo(
            f"{r['id']}  {when}Z  {r['size']:>12} B  {r['rows']:>9} rows  "
            f"sentinel {r['sentinel']}  {r['status']}"
        )


@dr.command(name="prune")
@click.argument("target", type=click.Path(file_okay=False))
@click.option("--keep-last", default=7, show_default=True)
@click.option("--keep-daily", default=7, show_default=True)
@click.option("--keep-within", default="0s", show_default=True, help="e.g. 2d")
@click.option("--database", default=None, help="Prune only this database's backups.")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
def prune_(
    *,
    target: str,
    keep_last: int,
    keep_daily: int,
    keep_within: str,
    database: str | None,
    dry_run: bool,
) -> None:
    """Delete the backups a retention policy does not keep (never the newest verified one)."""
    policy = Retention(
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_within=_duration("--keep-within", keep_within) or 0.0,
    )
    decisions = prune(target, policy, database=database, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for db, d in decisions.items():
        click.echo(f"{db}: keep {len(d.keep)}, {verb} {len(d.delete)}")
        for bid in d.delete:
            click.echo(f"  {verb} {bid}")


@dr.command()
@click.argument("database", type=click.Path(dir_okay=False))
@click.option("--disruption", required=True, help="SQLite: delete or corrupt; PostgreSQL: kill.")
@click.option("--spec", default=None, help="reliability.yaml with the journeys' RTO/RPO targets.")
@click.option("--journey", default=None, help="Whose objectives (default: the only journey).")
@click.option("--rto", default=None, help="RTO objective, overriding the spec (e.g. 5s).")
@click.option("--rpo", default=None, help="RPO objective, overriding the spec (e.g. 1s).")
@click.option("--before", default="2s", show_default=True, help="Writes before the disaster.")
@click.option("--backup-interval", default="1s", show_default=True)
@click.option("--point-in-time", default=None, help="Restore to this long before the disaster.")
@click.option("--no-guard", is_flag=True, help="Write without the file guard (to see the loss).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_out", default=None, help="Also write an HTML report here.")
@click.option("--report-only", is_flag=True, help="Exit 0 even when the drill fails.")
@_pg_bin_option
@click.pass_context
def drill(
    ctx: click.Context,
    *,
    database: str,
    disruption: str,
    spec: str | None,
    journey: str | None,
    rto: str | None,
    rpo: str | None,
    before: str,
    backup_interval: str,
    point_in_time: str | None,
    no_guard: bool,
    as_json: bool,
    html_out: str | None,
    report_only: bool,
    pg_bin: str | None,
) -> None:
    """Drill a disaster on a scratch copy of DATABASE (a SQLite file, or a PostgreSQL server
    given as a DSN): a sentinel writer commits every 100 ms, the copy is broken and restored from
    its backups, and the RTO and RPO achieved are judged against the objectives.  DATABASE itself
    is only read.  Exit status 1 when the drill fails."""
    import tempfile

    from .drill import DrillConfig, DrillTarget, run_drill
    from .drill_postgres import PostgresDrillTarget
    from .drill_sqlite import SqliteDrillTarget
    from .postgres import PgTools, is_postgres_dsn
    from .report import (
        DISRUPTION_CLASS,
        Objectives,
        build_report,
        load_objectives,
        render_html,
        render_text,
    )

    postgres = is_postgres_dsn(database)
    kinds = PostgresDrillTarget.disruptions if postgres else SqliteDrillTarget.disruptions
    if disruption not in kinds:
        choices = ", ".join(kinds)
        raise ConfigError("--disruption", disruption, f"unknown disruption type; choose {choices}")
    config = DrillConfig(
        disruption=disruption,
        before=_duration("--before", before) or 0.0,
        backup_interval=_duration("--backup-interval", backup_interval) or 0.0,
        point_in_time=_duration("--point-in-time", point_in_time),
    )
    objectives = Objectives() if spec is None else load_objectives(spec, journey, disruption)
    overrides = {"rto": _duration("--rto", rto), "rpo": _duration("--rpo", rpo)}
    objectives = Objectives(
        rto=overrides["rto"] if overrides["rto"] is not None else objectives.rto,
        rpo=overrides["rpo"] if overrides["rpo"] is not None else objectives.rpo,
        estimated_rto=objectives.estimated_rto,
        estimated_rpo=objectives.estimated_rpo,
        source=objectives.source
        if not any(v is not None for v in overrides.values())
        else f"{objectives.source} (overridden on the command line)",
    )
    log = (lambda _: None) if as_json else (lambda msg: click.echo(msg, err=True))
    with tempfile.TemporaryDirectory(prefix="buttress-drill-") as ws:
        target: DrillTarget
        if postgres:
            target = PostgresDrillTarget(database, ws, tools=PgTools.find(pg_bin))
        else:
            target = SqliteDrillTarget(database, ws, guard=not no_guard)
        result = run_drill(target, config, log=log)
    report = build_report(
        result, objectives, database=str(database), judged_as=DISRUPTION_CLASS[disruption]
    )
    if html_out:
        Path(html_out).write_text(render_html(report), encoding="utf-8")
    click.echo(json.dumps(report, indent=2) if as_json else render_text(report), nl=not as_json)
    if not report["passed"] and not report_only:
        ctx.exit(EXIT_FAILED)
