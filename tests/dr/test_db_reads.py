"""The read pool on a real primary and asynchronous standby: lag-aware reads, read-your-writes."""

from __future__ import annotations

import psycopg
import pytest

from buttress.db import NoFreshStandby, ReadPool, WritePool
from buttress.db.events import ReadFellBack
from buttress.events import add_listener

from .pg import clusters, wait_until


def _count(conn: psycopg.Connection) -> tuple[int, bool]:
    n = conn.execute("SELECT count(*) FROM t").fetchone()
    standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    assert n is not None and standby is not None
    return int(n[0]), bool(standby[0])


@pytest.mark.serial
def test_reads_avoid_a_lagging_standby_and_read_your_writes_by_lsn() -> None:
    with clusters() as made:
        primary = made.primary()
        primary.start()
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
        standby = made.standby_of(primary)
        standby.start()
        ports = f"{primary.port},{standby.port}"
        dsn = f"host=127.0.0.1,127.0.0.1 port={ports} user=postgres dbname=postgres"
        seen: list[str] = []
        remove = add_listener(
            lambda e: seen.append(e.reason) if isinstance(e, ReadFellBack) else None
        )
        try:
            with (
                WritePool(dsn, min_size=1) as writes,
                ReadPool(dsn, max_lag=0.3, check_interval=0.0, fallback=writes) as reads,
            ):
                writes.transaction(lambda c: c.execute("INSERT INTO t VALUES (1)"))
                lsn = writes.current_lsn()
                assert reads.read(_count, after_lsn=lsn) in {(1, True), (1, False)}
                wait_until(lambda: reads.read(_count) == (1, True))  # served by the standby
                seen.clear()
                with psycopg.connect(standby.dsn, autocommit=True) as sb:
                    sb.execute("SELECT pg_wal_replay_pause()")
                    writes.transaction(lambda c: c.execute("INSERT INTO t VALUES (2)"))
                    lsn = writes.current_lsn()
                    # The standby has not replayed our write: read-your-writes goes to the primary.
                    assert reads.read(_count, after_lsn=lsn) == (2, False)
                    assert seen == ["no standby has replayed the write"]
                    # Once the replay lag passes max_lag, plain reads leave the standby too.
                    wait_until(lambda: reads.read(_count) == (2, False), timeout=5)
                    assert "every standby lags" in seen
                    alone = ReadPool(dsn, max_lag=0.3, check_interval=0.0)
                    with pytest.raises(NoFreshStandby):
                        alone.read(_count)
                    alone.close()
                    sb.execute("SELECT pg_wal_replay_resume()")
                wait_until(lambda: reads.read(_count) == (2, True), timeout=10)
                # Streaming cut: the standby has replayed all it received, so by replay positions
                # alone it looks current; with no WAL receiver its lag is unknown, and it is left.
                with psycopg.connect(standby.dsn, autocommit=True) as sb:
                    sb.execute("ALTER SYSTEM SET primary_conninfo = ''")
                    sb.execute("SELECT pg_reload_conf()")
                    receivers = "SELECT count(*) FROM pg_stat_wal_receiver"
                    wait_until(lambda: sb.execute(receivers).fetchone() == (0,), timeout=10)
                assert reads.read(_count) == (2, False)
        finally:
            remove()
