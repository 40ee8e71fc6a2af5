"""Run Buttress's benchmarks: ``make bench`` (``.venv/bin/python benchmarks/run.py``).

Every ``benchmarks/bench_*.py`` module exposes ``run(quick: bool = False) -> list[dict]``; each
dict is one measured figure::

    {"group": str, "name": str, "value": float, "unit": str, "baseline": bool,
     "lower_is_better": bool, "note": str (optional)}

The harness runs each module in turn, each in a fresh interpreter (one failing, crashing or
hanging module is reported and the others still run), prints one table per group with every row's
ratio to the group's baseline row, and writes ``benchmarks/results.json`` with the rows, the
failures, each module's duration and the machine they were measured on.

Options: ``--quick`` (each module's short mode), ``--only NAME`` (repeatable: a module by its name
without ``bench_``, or a group; a module whose name is a prefix of the group is run), ``--output
PATH``, ``--list``, ``--dir DIR``, ``--timeout SECONDS``.  Exit status 1 when a module failed, 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUIRED: dict[str, type | tuple[type, ...]] = {
    "group": str,
    "name": str,
    "value": (int, float),
    "unit": str,
    "baseline": bool,
    "lower_is_better": bool,
}


def discover(directory: Path = HERE) -> list[Path]:
    """The benchmark modules in ``directory``: ``bench_*.py``, sorted by name."""
    return sorted(p for p in directory.glob("bench_*.py") if p.is_file())


def area(path: Path) -> str:
    """``bench_retry.py`` -> ``retry``."""
    return path.stem.removeprefix("bench_")


def selected(path: Path, only: list[str]) -> bool:
    if not only:
        return True
    name = area(path)
    return any(o == name or o.startswith((name + "-", name + "_")) for o in only)


def load(path: Path) -> Any:
    """Import a benchmark module from its file (its directory is importable while it loads)."""
    spec = importlib.util.spec_from_file_location(f"_buttress_bench_{area(path)}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def check_row(row: Any) -> str | None:
    """Why ``row`` is not a valid result, or ``None`` when it is."""
    if not isinstance(row, dict):
        return f"a row must be a dict, not {type(row).__name__}"
    for key, kind in REQUIRED.items():
        if key not in row:
            return f"row {row.get('name', '?')!r} lacks {key!r}"
        value = row[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            return f"row {row.get('name', '?')!r}: {key}={value!r} has the wrong type"
    if not math.isfinite(row["value"]):
        return f"row {row['name']!r}: value={row['value']!r} is not a finite number"
    if not isinstance(row.get("note", ""), str):
        return f"row {row['name']!r}: note must be a string"
    return None


def run_module(path: Path, quick: bool) -> tuple[list[dict[str, Any]], list[str], float]:
    """Run one module: its valid rows, its problems (none when all went well), its duration."""
    t0 = time.perf_counter()
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        module = load(path)
        fn = getattr(module, "run", None)
        if not callable(fn):
            raise TypeError("the module has no run(quick: bool = False) function")
        produced = fn(quick=quick)
        if not isinstance(produced, list):
            raise TypeError(f"run() returned {type(produced).__name__}, not a list of dicts")
        for row in produced:
            why = check_row(row)
            if why is None:
                rows.append({**row, "value": float(row["value"]), "note": row.get("note", "")})
            else:
                problems.append(why)
    except (Exception, SystemExit) as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({tb[-1].filename}:{tb[-1].lineno})" if tb else ""
        problems.append(f"{type(exc).__name__}: {exc}{where}")
    return rows, problems, time.perf_counter() - t0


def run_isolated(
    path: Path, quick: bool, timeout: float
) -> tuple[list[dict[str, Any]], list[str], float]:
    """:func:`run_module` in a child interpreter.

    Each module gets a fresh process, so state one benchmark leaves behind (a global event listener,
    a warmed cache, a crashed interpreter) cannot change another's figures.  The module's own output
    goes to this process's stdout and stderr; its rows come back through a temporary file.
    """
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="buttress-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
        cmd += ["--child-output", str(out)] + (["--quick"] if quick else [])
        try:
            done = subprocess.run(cmd, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return [], [f"timed out after {timeout:g} s"], time.perf_counter() - t0
        if not out.exists():
            why = f"the benchmark process exited with status {done.returncode} and no results"
            return [], [why], time.perf_counter() - t0
        doc = json.loads(out.read_text())
    return doc["rows"], doc["problems"], time.perf_counter() - t0


def with_ratios(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Add ``ratio`` (value / the group's baseline value) to every row; warnings for odd groups."""
    warnings: list[str] = []
    baselines: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["baseline"]:
            if row["group"] in baselines:
                warnings.append(
                    f"group {row['group']!r} has more than one baseline; using "
                    f"{baselines[row['group']]['name']!r}"
                )
            else:
                baselines[row["group"]] = row
    out = []
    for row in rows:
        base = baselines.get(row["group"])
        ratio = None
        if base is not None and base["value"] != 0:
            ratio = row["value"] / base["value"]
        out.append({**row, "ratio": ratio})
    for group in dict.fromkeys(r["group"] for r in rows):
        if group not in baselines:
            warnings.append(f"group {group!r} has no baseline row: no ratios")
    return out, warnings


def _fmt_value(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def render(rows: list[dict[str, Any]]) -> str:
    """One table per group, in the order groups first appear."""
    parts: list[str] = []
    for group in dict.fromkeys(r["group"] for r in rows):
        members = [r for r in rows if r["group"] == group]
        base = next((r for r in members if r["baseline"]), None)
        lower = members[0]["lower_is_better"]
        title = f"== {group}"
        if base is not None:
            title += (
                f"  (ratio = value / {base['name']}; {'lower' if lower else 'higher'} is better)"
            )
        table = [("name", "value", "unit", "ratio", "note")]
        for r in members:
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            mark = " *" if r["baseline"] else ""
            table.append((r["name"] + mark, _fmt_value(r["value"]), r["unit"], ratio, r["note"]))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        parts.append(title)
        for i, row in enumerate(table):
            cells = [
                row[0].ljust(widths[0]),
                row[1].rjust(widths[1]),
                row[2].ljust(widths[2]),
                row[3].rjust(widths[3]),
                row[4],
            ]
            parts.append("  ".join(cells).rstrip())
            if i == 0:
                parts.append("  ".join("-" * w for w in widths))
        parts.append("")
    return "\n".join(parts)


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    try:
        usable: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        usable = os.cpu_count()
    try:
        load_avg: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load_avg = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average": load_avg,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description="Run the bench_*.py modules and report ratios."
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs (each module's quick mode)"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GROUP",
        help="a module name (retry for bench_retry.py) or a group; repeatable",
    )
    parser.add_argument(
        "--output", type=Path, default=HERE / "results.json", help="where to write the JSON results"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and exit")
    parser.add_argument(
        "--dir", type=Path, default=HERE, help="where the bench_*.py modules are (default: here)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds a module may run before it is stopped and reported (default 900)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:  # inside run_isolated's child process
        rows, problems, _ = run_module(args.child, args.quick)
        args.child_output.write_text(json.dumps({"rows": rows, "problems": problems}, default=str))
        return 0

    modules = discover(args.dir)
    if args.list:
        for path in modules:
            print(area(path))
        return 0
    chosen = [p for p in modules if selected(p, args.only)]
    if not chosen:
        known = ", ".join(area(p) for p in modules) or "none"
        parser.error(f"--only {' '.join(args.only)} matches no benchmark module (known: {known})")

    started = time.perf_counter()
    all_rows: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    timings: list[dict[str, Any]] = []
    for path in chosen:
        print(f"running {path.name}{' (quick)' if args.quick else ''} ...", file=sys.stderr)
        rows, problems, seconds = run_isolated(path, args.quick, args.timeout)
        for row in rows:
            row["module"] = path.name
        if args.only:
            wanted = set(args.only)
            if area(path) not in wanted:
                rows = [r for r in rows if r["group"] in wanted]
        all_rows.extend(rows)
        for problem in problems:
            failures.append({"module": path.name, "error": problem})
            print(f"  FAILED {path.name}: {problem}", file=sys.stderr)
        print(f"  {len(rows)} figure(s) in {seconds:.1f} s", file=sys.stderr)
        timings.append(
            {
                "module": path.name,
                "seconds": round(seconds, 2),
                "figures": len(rows),
                "ok": not problems,
            }
        )

    rows_out, warnings = with_ratios(all_rows)
    print()
    print(render(rows_out))
    for w in warnings:
        print(f"warning: {w}")
    if failures:
        print(f"{len(failures)} problem(s):")
        for f in failures:
            print(f"  {f['module']}: {f['error']}")

    doc = {
        "machine": machine(),
        "quick": args.quick,
        "only": args.only,
        "seconds": round(time.perf_counter() - started, 2),
        "modules": timings,
        "results": rows_out,
        "failures": failures,
        "warnings": warnings,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
