"""Start-up time of the ``buttress`` command (issue 13: ``buttress --version`` within 2x of
``python -c "import click"``, bytecode cached).

Three contenders, each a fresh process started with :func:`subprocess.run` from this one:

* ``python -c pass``: the bare interpreter (site, the venv), the floor under everything;
* ``python -c "import click"``: the baseline of the target, since the command is a click app;
* ``buttress --version``: the installed console script (``<venv>/bin/buttress``).

**Method.**  Bytecode is warm: ``PYTHONDONTWRITEBYTECODE`` is removed from the children's
environment and every contender runs twice untimed first, so ``__pycache__`` is written before any
timed run.  The contenders then run in interleaved rounds (20; quick mode 5), the order rotating
every round, so a busy moment on a shared machine hits one run of each rather than every run of
one.  Figures are medians over the rounds, in milliseconds of wall time, with the spread (lowest
and highest) in the note; the buttress row's note also gives the median of the per-round *paired*
ratios to ``import click`` (the target) and the import cost above the bare interpreter.

After the timings, ``python -X importtime -c "import buttress.cli"`` runs once and the ten imports
with the largest cumulative time are printed (to stderr), for whoever has to make it faster.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GROUP = "startup"
TARGET = 2.0  # buttress --version / import click, at most
ABS_TARGET_MS = 300.0  # buttress --version, wall time, process start included (issue 20)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the target is with bytecode cached
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def contenders() -> list[tuple[str, list[str]]]:
    """``(row name, argv)`` of each contender; the venv's interpreter and its console script."""
    python = sys.executable
    script = Path(python).parent / "buttress"
    if not script.exists():
        raise FileNotFoundError(f"no buttress console script next to {python} (pip install -e .)")
    return [
        ("python -c pass", [python, "-c", "pass"]),
        ('python -c "import click"', [python, "-c", "import click"]),
        ("buttress --version", [str(script), "--version"]),
    ]


def _once(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def measure(rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per run of each contender, ``rounds`` interleaved runs each."""
    env = _env()
    cs = contenders()
    out = subprocess.run(cs[-1][1], env=env, capture_output=True, text=True, check=True)
    if "version" not in out.stdout:
        raise RuntimeError(f"buttress --version printed {out.stdout!r}")
    for _ in range(warmup):
        for _, argv in cs:
            _once(argv, env)
    times: dict[str, list[float]] = {name: [] for name, _ in cs}
    for r in range(rounds):
        order = cs[r % len(cs) :] + cs[: r % len(cs)]
        for name, argv in order:
            times[name].append(_once(argv, env))
    return times


def importtime(module: str = "buttress.cli", top: int = 10) -> list[tuple[int, int, str]]:
    """``(cumulative us, self us, module)`` of the ``top`` imports of ``module`` with the largest
    cumulative time (one warm run of ``python -X importtime``)."""
    argv = [sys.executable, "-X", "importtime", "-c", f"import {module}"]
    env = _env()
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm the bytecode
    err = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stderr
    entries = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        entries.append((int(cumulative), int(own), name.strip()))
    entries.sort(reverse=True)
    return entries[:top]


def _ms(xs: list[float]) -> str:
    return f"{min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f} ms"


def run(quick: bool = False) -> list[dict[str, Any]]:
    rounds = 5 if quick else 20
    times = measure(rounds)
    bare, click, cmd = (name for name, _ in contenders())
    med = {name: statistics.median(xs) for name, xs in times.items()}
    paired = statistics.median(b / c for b, c in zip(times[cmd], times[click], strict=True))
    over_click = (med[click] - med[bare]) * 1e3
    over_cmd = (med[cmd] - med[bare]) * 1e3
    verdict = "met" if paired <= TARGET else "NOT met"
    abs_verdict = "met" if med[cmd] * 1e3 < ABS_TARGET_MS else "NOT met"
    rows: list[dict[str, Any]] = []
    for name in (bare, click, cmd):
        note = f"median of {rounds} interleaved runs, range {_ms(times[name])}"
        if name == click:
            note += f"; {over_click:.1f} ms above the bare interpreter"
        if name == cmd:
            note += (
                f"; {over_cmd:.1f} ms above the bare interpreter; paired median "
                f"{paired:.2f}x import click (target <= {TARGET:g}x: {verdict}); issue 20's "
                f"target under {ABS_TARGET_MS:g} ms: {abs_verdict}"
            )
        rows.append(
            {
                "group": GROUP,
                "name": name,
                "value": med[name] * 1e3,
                "unit": "ms",
                "baseline": name == click,
                "lower_is_better": True,
                "note": note,
            }
        )
    try:
        top = importtime()
    except (OSError, subprocess.CalledProcessError) as exc:  # a diagnostic, not a figure
        print(f"importtime failed: {exc}", file=sys.stderr)
    else:
        print("python -X importtime -c 'import buttress.cli': top cumulative", file=sys.stderr)
        for cumulative, own, name in top:
            line = f"  {cumulative / 1e3:8.1f} ms  (self {own / 1e3:6.1f} ms)  {name}"
            print(line, file=sys.stderr)
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['name']:28} {row['value']:8.1f} ms  {row['note']}")
