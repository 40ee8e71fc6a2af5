"""What the worked systems' tests share: the CLI in a subprocess, and a quick lab run with the
checks every one of them makes first (exit 0, or 3 when the driver was starved; nothing left
running)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shop.helpers import ROOT, new_marker, run_lab, wait_no_marked

__all__ = ["cli", "quick_lab"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``buttress ARGS`` from the repository's root, at most a minute."""
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


def quick_lab(
    example: Path, out: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], float]:
    """``buttress lab EXAMPLE --quick --json`` into ``out``: the process, its result and its wall
    time, once it exited 0 or 3 (no hypothesis failed) and left nothing running."""
    marker = new_marker()
    started = time.monotonic()
    done = run_lab(example, out, marker, "--quick", "--json", timeout=150)
    wall = time.monotonic() - started
    result = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    failed = [h for h in result.get("hypotheses", []) if h["passed"] is False]
    assert done.returncode in (0, 3), f"{failed or done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert [] == wait_no_marked(marker)  # nothing left running
    return done, result, wall
