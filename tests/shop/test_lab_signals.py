"""Ctrl-C (SIGINT) and SIGTERM at any point: every fault removed, every process stopped."""

from __future__ import annotations

import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import ROOT, SHOP, lab_command, lab_env, marked_pids, new_marker, wait_no_marked


def _start(tmp_path: Path, marker: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        lab_command(SHOP, tmp_path / "out", "--quick"),
        env=lab_env(marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """stderr lines until one contains ``needle`` (fails at ``timeout`` seconds)."""
    assert proc.stderr is not None
    seen = []
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return "".join(seen)
    proc.kill()
    raise AssertionError(f"{needle!r} not seen; stderr so far:\n{''.join(seen)}")


@pytest.mark.usefixtures("lab_lock")
def test_sigint_while_a_fault_is_applied_removes_it_and_stops_everything(tmp_path: Path) -> None:
    marker = new_marker()
    proc = _start(tmp_path, marker)
    try:
        _read_until(proc, "fault payments-latency: applied", 60)
        assert len(marked_pids(marker)) >= 6  # proxy + 5 services (+ the lab itself)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert 130 == proc.returncode
    assert "cleanup: 1 fault(s) removed; no toxic left, every route enabled" in err
    assert "interrupted: faults removed, every process stopped" in err
    assert "Traceback" not in err
    assert [] == wait_no_marked(marker)


@pytest.mark.usefixtures("lab_lock")
def test_sigint_while_services_start_leaves_nothing_behind(tmp_path: Path) -> None:
    marker = new_marker()
    proc = _start(tmp_path, marker)
    try:
        # The lab prints the assessment, then starts processes: interrupt as soon as any exist.
        deadline = time.monotonic() + 30
        while len(marked_pids(marker)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert 130 == proc.returncode
    assert "Traceback" not in err
    assert [] == wait_no_marked(marker)


@pytest.mark.usefixtures("lab_lock")
def test_sigterm_mid_run_cleans_up_too(tmp_path: Path) -> None:
    marker = new_marker()
    proc = _start(tmp_path, marker)
    try:
        _read_until(proc, "fault inventory-outage: applied", 60)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert 130 == proc.returncode
    assert "cleanup: 1 fault(s) removed; no toxic left, every route enabled" in err
    assert [] == wait_no_marked(marker)
