"""Retention (a pure plan, checked by properties), pruning, metrics and the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from buttress.cli import main
from buttress.dr import metrics
from buttress.dr import sqlite as drsqlite
from buttress.dr.catalog import Retention, list_backups, plan_prune, prune
from buttress.dr.manifest import BackupInfo, Manifest, VerifyOutcome

DAY = 86400.0


def _info(i: int, at: float, status: str) -> BackupInfo:
    m = Manifest(f"db-{i:04d}", "db", "sqlite", "/x", at, at + 1, 1, {}, None)
    verified = None
    if status != "unverified":
        verified = VerifyOutcome(status == "verified", at + 2, 0.1, (), {})
    return BackupInfo(Path(m.id), m, verified)


backups_st = st.lists(
    st.tuples(
        st.floats(0, 30 * DAY, allow_nan=False),
        st.sampled_from(["verified", "failed", "unverified"]),
    ),
    max_size=30,
).map(lambda xs: [_info(i, at, s) for i, (at, s) in enumerate(xs)])


@settings(max_examples=200, deadline=None)
@given(backups_st, st.integers(0, 5), st.integers(0, 5), st.floats(0, 10 * DAY, allow_nan=False))
def test_plan_keeps_what_the_rules_say_and_never_the_last_good_backup(
    backups: list[BackupInfo], last: int, daily: int, within: float
) -> None:
    now = 31 * DAY
    d = plan_prune(backups, Retention(keep_last=last, keep_daily=daily, keep_within=within), now)
    ids = {b.manifest.id for b in backups}
    assert set(d.keep) | set(d.delete) == ids and not set(d.keep) & set(d.delete)
    newest = sorted(backups, key=lambda b: b.manifest.started_at, reverse=True)
    assert {b.manifest.id for b in newest[:last]} <= set(d.keep)
    good = [b for b in newest if b.status == "verified"]
    if good:
        assert good[0].manifest.id in d.keep
    for b in backups:
        if now - b.manifest.finished_at <= within:
            assert b.manifest.id in d.keep
    days = {int(b.manifest.started_at // DAY) for b in backups}
    assert len(d.keep) <= min(len(ids), last + min(daily, len(days)) + len(d.keep))


def test_prune_deletes_old_backups_but_keeps_the_newest_verified(
    app_db: Path, target: Path
) -> None:
    made = [drsqlite.backup(app_db, target) for _ in range(4)]
    drsqlite.verify(made[0].path)
    decisions = prune(target, Retention(keep_last=1, keep_daily=0))
    assert set(decisions["app"].keep) == {made[0].manifest.id, made[3].manifest.id}
    assert [b.manifest.id for b in list_backups(target)] == [
        made[0].manifest.id,
        made[3].manifest.id,
    ]


def test_gauges_report_age_of_the_last_good_backup_and_the_last_verify(
    app_db: Path, target: Path
) -> None:
    registry = CollectorRegistry()
    remove = metrics.install(target, registry)
    try:
        first = drsqlite.backup(app_db, target)
        assert (
            registry.get_sample_value(
                "buttress_dr_last_good_backup_age_seconds", {"database": "app"}
            )
            == math.inf
        )
        drsqlite.verify(first.path)
        age = registry.get_sample_value(
            "buttress_dr_last_good_backup_age_seconds", {"database": "app"}
        )
        assert age is not None and 0 <= age < 60
        assert (
            registry.get_sample_value("buttress_dr_last_verify_success", {"database": "app"}) == 1
        )
        second = drsqlite.backup(app_db, target)
        (second.path / drsqlite.DATA_FILE).write_bytes(b"garbage")
        drsqlite.verify(second.path)
        assert (
            registry.get_sample_value("buttress_dr_last_verify_success", {"database": "app"}) == 0
        )
        assert (
            registry.get_sample_value(
                "buttress_dr_backups", {"database": "app", "status": "failed"}
            )
            == 1
        )
    finally:
        remove()


def test_events_reach_the_house_telemetry(app_db: Path, target: Path) -> None:
    from buttress.telemetry import prometheus

    registry = CollectorRegistry()
    remove = prometheus.install(registry=registry)
    try:
        info = drsqlite.backup(app_db, target)
        drsqlite.verify(info.path)
        for event in ("buttress_dr_backup_completed", "buttress_dr_verify_passed"):
            labels = {"pipeline": "dr", "policy": "app", "event": event}
            assert registry.get_sample_value("buttress_events_total", labels) == 1
            assert registry.get_sample_value("buttress_duration_seconds_count", labels) == 1
    finally:
        remove()


def test_cli_backup_list_verify_restore(app_db: Path, target: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["dr", "backup", str(app_db), "--to", str(target)])
    assert r.exit_code == 0 and "[unverified]" in r.output
    r = runner.invoke(main, ["dr", "list", str(target), "--json"])
    (row,) = json.loads(r.output)
    assert (row["status"], row["rows"], row["sentinel"]) == ("unverified", 503, 1)
    r = runner.invoke(main, ["dr", "verify", str(target)])
    assert r.exit_code == 0 and "ok" in r.output
    r = runner.invoke(main, ["dr", "restore", str(target), str(tmp_path / "copy.db")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "copy.db").stat().st_size > 0


def test_cli_bad_input_is_one_line_exit_2_and_overwrites_nothing(
    app_db: Path, target: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    runner.invoke(main, ["dr", "backup", str(app_db), "--to", str(target)])
    before = app_db.read_bytes()
    cases = {
        ("dr", "backup", str(app_db), "--to", str(tmp_path / "nowhere")): (
            f"error: invalid target='{tmp_path / 'nowhere'}': does not exist; "
            "create the backup directory first"
        ),
        ("dr", "restore", str(target), str(app_db)): (
            f"error: invalid database='{app_db}': a database already exists there; "
            "pass --force to replace it"
        ),
        ("dr", "verify", str(target), "--max-age", "soon"): "error: invalid --max-age='soon'",
        ("dr", "backup", "host=127.0.0.1 port", "--to", str(target)): (
            "error: invalid database='host=127.0.0.1 port': cannot connect (missing \"=\" after"
        ),
    }
    for args, message in cases.items():
        r = runner.invoke(main, list(args))
        assert r.exit_code == 2, r.output
        assert r.output.count("\n") == 1 and r.output.startswith(message), r.output
    assert app_db.read_bytes() == before
    assert len(list(target.iterdir())) == 1  # the one good backup, nothing half-written
