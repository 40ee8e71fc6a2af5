"""SLO benchmarks: the evaluator against a straightforward pure-Python computation (on arrays in
memory, and end to end reading the SQLite store), and the SLI recorder against raw batched SQLite
inserts of the same rows."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from buttress.events import CallSucceeded
from buttress.slo.evaluator import evaluate, evaluate_reference, status_batch, status_reference
from buttress.slo.recorder import SLIRecorder
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore
from buttress.testing import FakeClock

PERIOD = 30 * 86400.0
MINUTES = 30 * 1440


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _evaluator_rows(quick: bool) -> list[dict]:
    n_slo = 200 if quick else 1000
    n_ref = 5 if quick else 20  # the pure-Python reference runs on a sample; its cost is per SLO
    slo = SLOSpec.model_validate(
        {"name": "x", "service": "s", "objective": 99.9, "sli": {"kind": "ratio", "pipeline": "p"}}
    )
    tiers = slo.tiers()
    windows = [5, 30, 60, 120, 360, 1440, 4320]
    rng = np.random.default_rng(1)
    total = rng.integers(0, 100, size=(n_slo, MINUTES), dtype=np.int64)
    good = total - rng.binomial(total, 0.001)
    b = np.full(n_slo, 0.001)
    kw = {"windows": windows, "tiers": tiers, "ref_window": 60, "period_seconds": PERIOD}
    fast = _best(lambda: status_batch(good, total, b, **kw), 3 if quick else 5)
    g_ref, t_ref = good[:n_ref].tolist(), total[:n_ref].tolist()
    slow = _best(lambda: status_reference(g_ref, t_ref, [0.001] * n_ref, **kw), 1 if quick else 2)
    slow_total = slow / n_ref * n_slo
    group = f"slo evaluator, in memory: status of {n_slo:,} SLOs over 30 days of per-minute data"
    return [
        {
            "group": group,
            "name": "pure Python (math module, per SLO)",
            "value": slow_total,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"measured on {n_ref} SLOs, scaled linearly to {n_slo:,}; arrays already "
            "in memory (no store read)",
        },
        {
            "group": group,
            "name": "status_batch (numpy, batched; arrays in memory)",
            "value": fast,
            "unit": "s",
            "baseline": False,
            "lower_is_better": True,
            "note": f"{slow_total / fast:.0f}x faster; store read excluded (see end to end)",
        },
    ]


def _end_to_end_rows(quick: bool) -> list[dict]:
    """evaluate() reading every SLO's 30 days from the SQLite store, against the pure-Python
    reference reading the same store (every minute into lists, then plain loops)."""
    n_slo = 200 if quick else 1000
    n_ref = 5 if quick else 20
    now = 28_000_000 + 777  # a minute that is not on a day boundary
    minutes = 31 * 1440
    slos = [
        SLOSpec.model_validate(
            {
                "name": f"slo-{i}",
                "service": "s",
                "objective": 99.9,
                "sli": {"kind": "ratio", "pipeline": f"p{i}"},
            }
        )
        for i in range(n_slo)
    ]
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as d:
        with SLIStore(Path(d) / "sli.db") as store:
            for slo in slos:
                total = rng.integers(0, 100, minutes, dtype=np.int64)
                store.add_series(slo.name, now - minutes, total - rng.binomial(total, 0.001), total)
        with SLIStore(Path(d) / "sli.db") as store:  # a fresh connection, as `slo status` opens
            fast = _best(lambda: evaluate(slos, store, now * 60), 3 if quick else 5)
            sample = slos[:n_ref]
            slow = _best(lambda: evaluate_reference(sample, store, now * 60), 1 if quick else 2)
    slow_total = slow / n_ref * n_slo
    group = (
        f"slo evaluator, end to end: evaluate() of {n_slo:,} SLOs reading 30 days of per-minute "
        "data from SQLite"
    )
    return [
        {
            "group": group,
            "name": "pure Python reading the same store (every minute, plain loops)",
            "value": slow_total,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"measured on {n_ref} SLOs, scaled linearly to {n_slo:,}",
        },
        {
            "group": group,
            "name": "evaluate() (per-day sums + day blocks, numpy)",
            "value": fast,
            "unit": "s",
            "baseline": False,
            "lower_is_better": True,
            "note": f"{slow_total / fast:.0f}x faster, store read included; target >= 50x; "
            f"{fast / n_slo * 1e3:.2f} ms per SLO",
        },
    ]


def _recorder_rows(quick: bool) -> list[dict]:
    n = 50_000 if quick else 300_000
    base = 1_700_000_000.0
    slis = [f"slo-{i}" for i in range(20)]
    events = [(slis[i % 20], base + i * 0.05) for i in range(n)]  # ~20 events per second
    rows = [(s, int(t // 60), 0 if i % 100 == 0 else 1, 1) for i, (s, t) in enumerate(events)]
    out = []
    with tempfile.TemporaryDirectory() as d:

        def raw() -> None:
            path = Path(d) / "raw.db"
            path.unlink(missing_ok=True)
            c = sqlite3.connect(path, isolation_level=None)
            c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA synchronous = NORMAL")
            c.execute("CREATE TABLE ev (sli TEXT, minute INTEGER, good INTEGER, total INTEGER)")
            c.execute("BEGIN")
            c.executemany("INSERT INTO ev VALUES (?, ?, ?, ?)", rows)
            c.execute("COMMIT")
            c.close()

        def direct() -> None:
            path = Path(d) / "rec.db"
            path.unlink(missing_ok=True)
            with SLIStore(path) as store:
                rec = SLIRecorder(store, clock=FakeClock(wall_start=base), flush_every=3600)
                record = rec.record
                for (s, t), r in zip(events, rows, strict=True):
                    record(s, r[2], 1, t)
                rec.close()

        slos = [
            SLOSpec.model_validate(
                {
                    "name": s,
                    "service": "x",
                    "objective": 99,
                    "sli": {"kind": "ratio", "pipeline": s},
                }
            )
            for s in slis
        ]
        evs = [CallSucceeded(s, s, 0.0, 0.01) for s, _ in events]

        def listener() -> None:
            path = Path(d) / "lis.db"
            path.unlink(missing_ok=True)
            clock = FakeClock(wall_start=base)
            with SLIStore(path) as store:
                rec = SLIRecorder(store, slos, clock=clock, flush_every=3600)
                on_event = rec.on_event
                for e in evs:
                    on_event(e)
                rec.close()

        repeat = 2 if quick else 3
        t_raw = _best(raw, repeat)
        t_direct = _best(direct, repeat)
        t_listener = _best(listener, repeat)
    group = "slo recorder: events ingested into SQLite"
    for name, t, baseline in (
        ("raw batched SQLite inserts (one row per event)", t_raw, True),
        ("SLIRecorder.record (direct API)", t_direct, False),
        ("SLIRecorder listener (CallSucceeded events)", t_listener, False),
    ):
        out.append(
            {
                "group": group,
                "name": name,
                "value": n / t,
                "unit": "events/s",
                "baseline": baseline,
                "lower_is_better": False,
                "note": "" if baseline else f"{t_raw / t:.2f}x the raw rate; target >= 0.5x",
            }
        )
    return out


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py."""
    return _evaluator_rows(quick) + _end_to_end_rows(quick) + _recorder_rows(quick)


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['group']:<75} {row['name']:<50} {row['value']:>14,.3f} {row['unit']} "
            f"{row.get('note', '')}"
        )
