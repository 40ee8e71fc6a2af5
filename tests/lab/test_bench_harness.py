"""benchmarks/run.py: discovery, ratios, results.json, and a broken module not stopping the others.

Timing figures are never asserted; these tests run the harness on small synthetic modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "run.py"

GOOD = """
def run(quick=False):
    base = 100.0 if quick else 200.0
    return [
        {"group": "g", "name": "reference", "value": base, "unit": "ns/call",
         "baseline": True, "lower_is_better": True},
        {"group": "g", "name": "other", "value": 3 * base, "unit": "ns/call",
         "baseline": False, "lower_is_better": True, "note": "three times"},
        {"group": "a_good-h", "name": "lonely", "value": 5, "unit": "calls/s",
         "baseline": False, "lower_is_better": False},
    ]
"""
BROKEN = """
def run(quick=False):
    raise RuntimeError("the bench fell over")
"""
BAD_ROWS = """
def run(quick=False):
    return [
        {"group": "b", "name": "fine", "value": 1.0, "unit": "s", "baseline": True,
         "lower_is_better": True},
        {"group": "b", "name": "no unit", "value": 1.0, "baseline": False, "lower_is_better": True},
        {"group": "b", "name": "nan", "value": float("nan"), "unit": "s", "baseline": False,
         "lower_is_better": True},
        {"group": "b", "name": "bool value", "value": True, "unit": "s", "baseline": False,
         "lower_is_better": True},
    ]
"""
NO_RUN = "X = 1\n"
CRASH = """
import os


def run(quick=False):
    os._exit(3)
"""
HANG = """
import time


def run(quick=False):
    time.sleep(60)
"""


def harness(directory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = directory / "results.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--dir", str(directory), "--output", str(out), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    doc = json.loads(out.read_text()) if out.exists() else {}
    return done, doc


@pytest.fixture
def benches(tmp_path: Path) -> Path:
    for name, body in [
        ("bench_a_good", GOOD),
        ("bench_b_broken", BROKEN),
        ("bench_c_rows", BAD_ROWS),
        ("bench_d_norun", NO_RUN),
        ("bench_e_crash", CRASH),
    ]:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    (tmp_path / "helper.py").write_text("raise SystemExit('not a bench module: never imported')\n")
    return tmp_path


def test_a_broken_module_is_reported_and_the_others_still_run(benches: Path) -> None:
    done, doc = harness(benches)
    assert 1 == done.returncode
    rows = {(r["group"], r["name"]): r for r in doc["results"]}
    assert {("g", "reference"), ("g", "other"), ("a_good-h", "lonely"), ("b", "fine")} == set(rows)
    assert 3.0 == rows[("g", "other")]["ratio"]
    assert 1.0 == rows[("g", "reference")]["ratio"]
    assert rows[("a_good-h", "lonely")]["ratio"] is None
    assert "bench_a_good.py" == rows[("g", "other")]["module"]
    errors = {(f["module"], f["error"].split(":")[0]) for f in doc["failures"]}
    assert {
        ("bench_b_broken.py", "RuntimeError"),
        ("bench_c_rows.py", "row 'no unit' lacks 'unit'"),
        ("bench_c_rows.py", "row 'nan'"),
        ("bench_c_rows.py", "row 'bool value'"),
        ("bench_d_norun.py", "TypeError"),
        ("bench_e_crash.py", "the benchmark process exited with status 3 and no results"),
    } == errors
    assert ["group 'a_good-h' has no baseline row: no ratios"] == doc["warnings"]
    assert [
        ("bench_a_good.py", True, 3),
        ("bench_b_broken.py", False, 0),
        ("bench_c_rows.py", False, 1),
        ("bench_d_norun.py", False, 0),
        ("bench_e_crash.py", False, 0),
    ] == [(m["module"], m["ok"], m["figures"]) for m in doc["modules"]]
    assert "the bench fell over" in done.stderr
    # The table shows each group with its ratios.
    assert "== g  (ratio = value / reference; lower is better)" in done.stdout
    other = next(line for line in done.stdout.splitlines() if line.startswith("other"))
    assert ["other", "600", "ns/call", "3.00x", "three", "times"] == other.split()


def test_results_record_the_machine_and_the_mode(benches: Path) -> None:
    _, doc = harness(benches, "--quick", "--only", "a_good")
    assert doc["quick"] is True
    assert ["a_good"] == doc["only"]
    assert [] == doc["failures"]
    assert 100.0 == next(r["value"] for r in doc["results"] if r["name"] == "reference")
    m = doc["machine"]
    assert {"python", "cpu_count", "date", "platform", "cpus_usable", "load_average"} <= set(m)
    assert m["python"] == ".".join(map(str, sys.version_info[:3]))


def test_only_a_group_keeps_just_that_group(benches: Path) -> None:
    done, doc = harness(benches, "--only", "a_good-h")
    assert 0 == done.returncode, done.stdout
    assert [("a_good-h", "lonely")] == [(r["group"], r["name"]) for r in doc["results"]]
    (benches / "results.json").unlink()
    done, doc = harness(benches, "--only", "nothing")
    assert 2 == done.returncode
    assert "matches no benchmark module" in done.stderr
    assert {} == doc


def test_list_names_the_modules(benches: Path) -> None:
    done, _ = harness(benches, "--list")
    assert ["a_good", "b_broken", "c_rows", "d_norun", "e_crash"] == done.stdout.split()


def test_a_hanging_module_is_stopped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "bench_hang.py").write_text(HANG)
    (tmp_path / "bench_ok.py").write_text(GOOD)
    done, doc = harness(tmp_path, "--timeout", "1.5")
    assert 1 == done.returncode
    assert [{"module": "bench_hang.py", "error": "timed out after 1.5 s"}] == doc["failures"]
    assert 3 == len(doc["results"])


def test_the_retry_benchmark_measures_working_wrappers() -> None:
    """Every contender really wraps the function (timing itself is never asserted)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_retry
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    sync, missing = bench_retry.sync_wrappers()
    assert [] == missing
    assert 5 == len(sync)
    assert all(7 == fn(7) for fn in sync.values())
    import asyncio

    async def call_all() -> list[int]:
        return [await fn(7) for fn in bench_retry.async_wrappers().values()]

    assert [7] * 5 == asyncio.run(call_all())


def test_the_pipeline_benchmark_times_working_pipelines() -> None:
    """Every pipeline the benchmark times really calls through (timing is never asserted); the
    five-policy one has the five policies in the documented order."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_pipeline
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from buttress import Pipeline

    rows = bench_pipeline.contenders()
    assert 2 + len(bench_pipeline.NAMES) - 1 == len(rows)
    assert [True] + [False] * (len(rows) - 1) == [b for _, _, b in rows]
    full = Pipeline(rows[0][1])
    kinds = [p.kind for p in full.policies]
    assert ["timeout", "retry", "circuit_breaker", "rate_limiter", "bulkhead"] == kinds
    import asyncio

    for _, policies, _ in rows:
        assert 7 == Pipeline(policies)(bench_pipeline.work)(7)
        assert 7 == asyncio.run(Pipeline(policies)(bench_pipeline.awork)(7))
