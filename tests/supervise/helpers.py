"""Building supervised copies of tests/supervise/child.py and reading what they recorded."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buttress.events import Event, add_listener
from buttress.ports import free_port
from buttress.supervise import ProcessChild

CHILD = str(Path(__file__).with_name("child.py"))


def child(name: str, record: Path, *args: str, **options: Any) -> ProcessChild:
    """A ProcessChild running child.py as ``name``, recording into ``record``."""
    options.setdefault("backoff_initial", 0.0)
    options.setdefault("grace", 2.0)
    command = [sys.executable, CHILD, "--name", name, "--record", str(record), *args]
    return ProcessChild(name, command, **options)


def records(
    path: Path, kind: str | None = None, name: str | None = None
) -> list[tuple[str, str, int, float]]:
    """``(kind, name, pid, monotonic)`` lines, filtered."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        k, n, pid, t = line.split()
        if (kind is None or k == kind) and (name is None or n == name):
            out.append((k, n, int(pid), float(t)))
    return out


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling every 10 ms) until ``predicate()`` holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (not gone, not a zombie)?  PID 1 reaps orphans slowly here."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Captured:
    """Events captured while it is open."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._remove = add_listener(self.events.append)

    def kinds(self, child: str | None = None) -> list[str]:
        return [e.kind for e in self.events if child is None or e.policy == child]

    def close(self) -> None:
        self._remove()


__all__ = ["CHILD", "Captured", "alive", "child", "free_port", "records", "until", "os"]
