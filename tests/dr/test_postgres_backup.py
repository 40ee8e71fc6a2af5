"""PostgreSQL backups on real clusters: base backup + WAL archive, verify by test restore,
point-in-time restore checked against the sentinel oracle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from buttress.dr.manifest import load_backup
from buttress.dr.postgres import pg_backup, pg_restore, pg_verify

from .pg import TOOLS, Cluster, Clusters, clusters, wait_until


@pytest.fixture(scope="module")
def pg() -> Iterator[tuple[Clusters, Cluster, Path]]:
    with clusters() as made:
        archive = made.base / "archive"
        archive.mkdir()
        TOOLS.hand_over(archive)
        primary = made.primary(archive_mode="on", archive_command=f"cp %p {archive}/%f")
        primary.start()
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE buttress_sentinel (seq bigint PRIMARY KEY, at timestamptz)")
            conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, note text)")
            conn.execute(
                "INSERT INTO orders (note) SELECT 'payload-' || g FROM generate_series(1, 500) g"
            )
        yield made, primary, archive


def _write(dsn: str, seqs: range) -> dict[int, float]:
    """Commit one sentinel per seq; seq -> the wall time its commit was acknowledged."""
    acked = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in seqs:
            conn.execute("INSERT INTO buttress_sentinel VALUES (%s, clock_timestamp())", (s,))
            acked[s] = time.time()
    return acked


@pytest.mark.serial
def test_backup_verifies_by_test_restore_and_a_damaged_file_fails(
    pg: tuple[Clusters, Cluster, Path],
) -> None:
    made, primary, archive = pg
    target = made.base / "backups1"
    target.mkdir()
    _write(primary.dsn, range(1, 11))
    info = pg_backup(primary.dsn, target, tools=TOOLS, wal_archive=archive)
    assert info.manifest.sentinel is not None and info.manifest.sentinel.seq == 10
    first = pg_verify(info.path, tools=TOOLS)
    assert first.ok, first.problems
    assert first.checks["pg_verifybackup"] == "ok" and first.checks["pg_amcheck"] == "ok"
    recorded = load_backup(info.path).manifest.tables
    assert recorded["public.orders"].rows == 500
    second = pg_verify(info.path, tools=TOOLS)
    assert second.ok and second.checks["tables"].startswith("2 tables, 510 rows")
    # A flipped byte in the orders table's file: the backup manifest's checksum catches it.
    with psycopg.connect(primary.dsn) as conn:
        rel = conn.execute("SELECT pg_relation_filepath('orders')").fetchone()[0]
    path = info.path / "base" / rel
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"payload-257")] ^= 0x01
    path.write_bytes(bytes(raw))
    damaged = pg_verify(info.path, tools=TOOLS)
    assert not damaged.ok
    assert any(p.startswith("pg_verifybackup:") for p in damaged.problems)
    assert load_backup(info.path).status == "failed"


@pytest.mark.serial
def test_point_in_time_restore_holds_exactly_the_sentinels_before_the_target(
    pg: tuple[Clusters, Cluster, Path],
) -> None:
    made, primary, archive = pg
    target_dir = made.base / "backups2"
    target_dir.mkdir()
    info = pg_backup(primary.dsn, target_dir, tools=TOOLS, wal_archive=archive)
    before = _write(primary.dsn, range(100, 130))
    time.sleep(0.05)
    target = time.time()
    time.sleep(0.05)
    _write(primary.dsn, range(130, 160))
    with psycopg.connect(primary.dsn, autocommit=True) as conn:
        wal = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]
        conn.execute("SELECT pg_switch_wal()")
        # the segment holding the commits after the target must reach the archive
        wait_until((archive / wal).exists, timeout=30)
    restored = Cluster(made.base, "restored")
    pg_restore(info.path, restored.data, tools=TOOLS, target_time=target)
    made.made.append(restored)
    restored.start()

    def promoted() -> bool:
        with psycopg.connect(restored.dsn) as c:
            return not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]

    wait_until(promoted, timeout=30)
    with psycopg.connect(restored.dsn) as conn:
        got = {
            int(s) for (s,) in conn.execute("SELECT seq FROM buttress_sentinel WHERE seq >= 100")
        }
    assert got == set(before)  # every write acknowledged before the target, none after
    restored.stop()


@pytest.mark.serial
def test_kill_drill_restores_from_base_backup_and_wal_archive(
    pg: tuple[Clusters, Cluster, Path],
) -> None:
    """The server is killed and its data directory removed; the restore replays the archive, so
    the data lost is the archive's lag (about a second), not the backup interval."""
    from buttress.dr.drill import DrillConfig, run_drill
    from buttress.dr.drill_postgres import PostgresDrillTarget

    made, primary, _ = pg
    ws = made.base / "drill"
    ws.mkdir()
    target = PostgresDrillTarget(primary.dsn, ws, tools=TOOLS)
    config = DrillConfig(disruption="kill", before=3.0, backup_interval=5.0, after=0.3)
    result = run_drill(target, config)
    assert result.backups == 1  # one base backup: everything after it came from the archive
    assert result.lost_after_disaster == []
    assert result.checker["unexpected_count"] == 0
    assert result.rto is not None and result.rto < 30
    assert max(result.restored.sentinels) > 0  # replayed past the base backup's start
    assert result.rpo < 2.5
    print(f"kill drill: RTO {result.rto:.2f} s, RPO {result.rpo:.2f} s")


@pytest.mark.serial
def test_cli_backs_up_verifies_and_lists_a_postgres_server(
    pg: tuple[Clusters, Cluster, Path],
) -> None:
    import json

    from click.testing import CliRunner

    from buttress.cli import main

    made, primary, archive = pg
    target = made.base / "backups-cli"
    target.mkdir()
    runner = CliRunner()
    r = runner.invoke(
        main,
        ["dr", "backup", primary.dsn, "--to", str(target), "--wal-archive", str(archive),
         "--name", "shop", "--verify"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "verify shop-" in r.output and ": ok" in r.output
    (row,) = json.loads(runner.invoke(main, ["dr", "list", str(target), "--json"]).output)
    assert (row["engine"], row["status"], row["database"]) == ("postgresql", "verified", "shop")
    r = runner.invoke(main, ["dr", "restore", str(target), str(made.base / "primary")])
    assert r.exit_code == 2
    assert "a data directory already exists there; pass --force" in r.output
