"""SLO benchmarks: the evaluator against the fair pure-Python computation (``sum()`` over list
slices, every window summed once; on all the SLOs, not a sample scaled up), in memory and reading
the SQLite store; ``buttress slo status`` end to end as a fresh process; and the SLI recorder
against raw batched SQLite inserts of the same rows.  Contenders run in turns, medians reported
with their interquartile range."""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from _timing import median_spread
from buttress.events import CallSucceeded
from buttress.slo.evaluator import evaluate, evaluate_reference, status_batch, status_reference
from buttress.slo.recorder import SLIRecorder
from buttress.slo.spec import SLOSpec
from buttress.slo.store import SLIStore
from buttress.testing import FakeClock

PERIOD = 30 * 86400.0
MINUTES = 30 * 1440


def _paired(contenders: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each contender, ``rounds`` runs each, taken in turns (order rotated
    every round), garbage collector on."""
    names = list(contenders)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            contenders[name]()
            out[name].append(time.perf_counter() - t0)
    return out


def _evaluator_rows(quick: bool) -> list[dict]:
    """status_batch against the fair reference (``sum()`` over list slices, each window once),
    both on all the SLOs (no sample scaled up), arrays already in memory."""
    n_slo = 200 if quick else 1000
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
    g_ref, t_ref = good.tolist(), total.tolist()
    b_ref = [0.001] * n_slo
    times = _paired(
        {
            "ref": lambda: status_reference(g_ref, t_ref, b_ref, **kw),
            "fast": lambda: status_batch(good, total, b, **kw),
        },
        3 if quick else 7,
    )
    (slow, slow_iqr), (fast, fast_iqr) = median_spread(times["ref"]), median_spread(times["fast"])
    paired = statistics.median(r / f for r, f in zip(times["ref"], times["fast"], strict=True))
    group = f"slo evaluator, in memory: status of {n_slo:,} SLOs over 30 days of per-minute data"
    runs = len(times["ref"])
    return [
        {
            "group": group,
            "name": "pure Python (sum() over list slices, each window once per SLO)",
            "value": slow,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"all {n_slo:,} SLOs; median of {runs} interleaved runs, IQR {slow_iqr:.0%}; "
            "Python lists already in memory",
        },
        {
            "group": group,
            "name": "status_batch (numpy, batched; arrays in memory)",
            "value": fast,
            "unit": "s",
            "baseline": False,
            "lower_is_better": True,
            "note": f"paired median {paired:.1f}x faster (target >= 10x: "
            f"{'met' if paired >= 10 else 'NOT met'}); IQR {fast_iqr:.0%}; store read excluded",
        },
    ]


def _cli_rows(quick: bool) -> list[dict]:
    """``buttress slo status`` end to end: a fresh process reading a reliability.yaml of 1,000
    SLOs and a store holding 31 days of per-minute data for each, against the bare interpreter
    (the floor of any Python command).  Wall time, process start included, bytecode warm."""
    n_slo = 200 if quick else 1000
    now = 28_000_000 + 777
    minutes = 31 * 1440
    rng = np.random.default_rng(3)
    python = sys.executable
    script = str(Path(python).parent / "buttress")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "reliability.yaml"
        spec.write_text(
            "service: s\nslos:\n"
            + "".join(
                f"  - name: slo-{i}\n    objective: 99.9\n"
                f"    sli: {{kind: ratio, pipeline: p{i}}}\n"
                for i in range(n_slo)
            )
        )
        with SLIStore(Path(d) / "sli.db") as store:
            for i in range(n_slo):
                total = rng.integers(0, 100, minutes, dtype=np.int64)
                good = total - rng.binomial(total, 0.001)
                store.add_series(f"slo-{i}", now - minutes, good, total)
        at = datetime.fromtimestamp(now * 60, tz=UTC).isoformat()
        argv = [script, "slo", "status", str(spec), "--db", str(Path(d) / "sli.db")]
        argv += ["--at", at, "--report-only"]
        contenders = {
            "python -c pass": [python, "-c", "pass"],
            f"buttress slo status ({n_slo:,} SLOs)": argv,
        }

        def once(cmd: list[str]) -> Callable[[], object]:
            def go() -> None:
                done = subprocess.run(cmd, env=env, capture_output=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{cmd[:3]} exited {done.returncode}: {done.stderr!r}")

            return go

        runs = {name: once(cmd) for name, cmd in contenders.items()}
        for go in runs.values():  # warm the bytecode and the page cache
            go()
        times = _paired(runs, 3 if quick else 9)
    group = "slo status end to end: a fresh process, 30 days of per-minute data per SLO"
    rows = []
    for name, xs in times.items():
        med, iqr = median_spread(xs)
        note = f"median of {len(xs)} interleaved runs, IQR {iqr:.0%}"
        if name != "python -c pass":
            note += f"; target under 0.5 s (1,000 SLOs): {'met' if med < 0.5 else 'NOT met'}"
        rows.append(
            {
                "group": group,
                "name": name,
                "value": med,
                "unit": "s",
                "baseline": name == "python -c pass",
                "lower_is_better": True,
                "note": note,
            }
        )
    return rows


def _end_to_end_rows(quick: bool) -> list[dict]:
    """evaluate() reading every SLO's 30 days from the SQLite store, against the pure-Python
    reference reading the same store (every minute into lists, then plain loops)."""
    n_slo = 200 if quick else 1000
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
            times = _paired(
                {
                    "ref": lambda: evaluate_reference(slos, store, now * 60),
                    "fast": lambda: evaluate(slos, store, now * 60),
                },
                3 if quick else 5,
            )
    (slow_total, slow_iqr), (fast, fast_iqr) = (median_spread(times[k]) for k in ("ref", "fast"))
    paired = statistics.median(r / f for r, f in zip(times["ref"], times["fast"], strict=True))
    group = (
        f"slo evaluator, end to end: evaluate() of {n_slo:,} SLOs reading 30 days of per-minute "
        "data from SQLite"
    )
    return [
        {
            "group": group,
            "name": "pure Python reading the same store (every minute into lists, sum() of slices)",
            "value": slow_total,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"all {n_slo:,} SLOs; median of {len(times['ref'])} interleaved runs, "
            f"IQR {slow_iqr:.0%}",
        },
        {
            "group": group,
            "name": "evaluate() (per-day sums + day blocks, numpy)",
            "value": fast,
            "unit": "s",
            "baseline": False,
            "lower_is_better": True,
            "note": f"paired median {paired:.1f}x faster, store read included; IQR "
            f"{fast_iqr:.0%}; {fast / n_slo * 1e3:.2f} ms per SLO",
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

        times = _paired({"raw": raw, "direct": direct, "listener": listener}, 3 if quick else 5)
        t_raw, t_direct, t_listener = (statistics.median(times[k]) for k in times)
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
                "note": "median of interleaved runs"
                + ("" if baseline else f"; {t_raw / t:.2f}x the raw rate; target >= 0.5x"),
            }
        )
    return out


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py."""
    return (
        _evaluator_rows(quick) + _end_to_end_rows(quick) + _cli_rows(quick) + _recorder_rows(quick)
    )


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['group']:<75} {row['name']:<50} {row['value']:>14,.3f} {row['unit']} "
            f"{row.get('note', '')}"
        )
