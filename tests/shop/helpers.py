"""Running `buttress lab PATH` as a real subprocess, and finding what it left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
MARKER = "BUTTRESS_TEST_LAB_MARKER"


def new_marker() -> str:
    return uuid.uuid4().hex


def lab_command(path: Path | str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "buttress.cli", "lab", str(path), "--out", str(out), *extra]


def lab_env(marker: str) -> dict[str, str]:
    """The environment of a lab under test: every process it starts inherits the marker."""
    return {**os.environ, MARKER: marker, "PYTHONUNBUFFERED": "1"}


def marked_pids(marker: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``MARKER=marker``."""
    needle = f"{MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
        except OSError:  # gone, or not ours
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if state != "Z":
            found.append(int(entry.name))
    return found


def wait_no_marked(marker: str, timeout: float = 5.0) -> list[int]:
    """Wait until no marked process is alive; returns the ones still alive at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = marked_pids(marker)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def copy_shop(dst: Path) -> Path:
    """A private copy of the example shop (to break it without touching the original)."""
    target = dst / "shop"
    shutil.copytree(SHOP, target, ignore=shutil.ignore_patterns("__pycache__", ".data"))
    return target


def run_lab(
    path: Path | str, out: Path, marker: str, *extra: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab_command(path, out, *extra),
        check=False,
        env=lab_env(marker),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
