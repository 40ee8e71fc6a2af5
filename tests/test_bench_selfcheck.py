"""Self-checks of the benchmark harness's timing (benchmarks/_timing.py and run.py): a peer
planted to be slower is reported slower, and the spread is reported.  No benchmark figure is
asserted; only that the harness can tell a slow contender from a fast one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import _timing  # noqa: E402


def _work(n: int) -> int:
    return sum(range(n))


def test_a_planted_slow_peer_is_reported_slower_in_every_interleaved_median():
    samples = _timing.interleaved(
        {"fast": lambda i: _work(50), "planted slow": lambda i: _work(5_000)},
        rounds=5,
        run_seconds=0.001,
    )
    fast, _ = _timing.median_spread(samples["fast"])
    slow, _ = _timing.median_spread(samples["planted slow"])
    assert [5, 5] == [len(samples["fast"]), len(samples["planted slow"])]
    assert slow > 5 * fast  # 100x the work: a harness that cannot see 5x is broken


def test_median_and_spread_are_the_middle_and_the_interquartile_range():
    assert (10.0, 0.0) == _timing.median_spread([10.0] * 5)
    mid, spread = _timing.median_spread([1.0, 9.0, 10.0, 11.0, 100.0])
    assert 10.0 == mid
    assert 0.1 < spread < 1.0  # one outlier each side moves the IQR a little, not to 99x


PLANTED = """
import sys
sys.path.insert(0, {bench!r})
import _timing


def run(quick=False):
    s = _timing.interleaved(
        {{"peer": lambda i: sum(range(50)), "planted": lambda i: sum(range(5000))}},
        rounds=3,
        run_seconds=0.001,
    )
    rows = []
    for name, xs in s.items():
        med, _ = _timing.median_spread(xs)
        rows.append({{"group": "self", "name": name, "value": med * 1e9, "unit": "ns/call",
                     "baseline": name == "peer", "lower_is_better": True,
                     "note": _timing.spread_note(xs)}})
    return rows
"""


def test_run_py_reports_the_planted_peer_slower_with_its_spread(tmp_path):
    (tmp_path / "bench_self.py").write_text(
        textwrap.dedent(PLANTED.format(bench=str(ROOT / "benchmarks")))
    )
    out = tmp_path / "r.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--dir", str(tmp_path)]
    done = subprocess.run(
        [*argv, "--output", str(out)], capture_output=True, text=True, check=False
    )
    assert 0 == done.returncode, done.stderr
    rows = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["planted"]["ratio"] > 5
    assert rows["planted"]["note"].startswith("median of 3 interleaved runs, IQR ")
