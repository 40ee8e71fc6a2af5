"""The lab's process faults, as the shop's processes play them (``BUTTRESS_LAB_CONTROL``).

`buttress lab` writes one JSON control file per instance and names it in ``BUTTRESS_LAB_CONTROL``
(see docs/shop-lab.md, *Self-healing*).  Standard library only: :func:`crash_at_start` runs from
``shop/__init__.py``, before anything heavy is imported, so a crash loop costs what a real one
costs (the interpreter's start), not the whole import.

``{"crash_loop": n}``  the next ``n`` starts exit with status 3 at once; the running process notices
                       the file within 50 ms and is the first of them.  Each exit writes ``n - 1``
                       back, so a supervisor's restarts keep failing until ``n`` reaches 0 (a
                       transient cause: a lock file, a dependency still warming up).
``{"leak": r}``        the process keeps ``r`` megabytes more every second (real, touched memory)
                       and, as a real leak's garbage-collection and swap pressure would, answers
                       every request ``SHOP_LEAK_MS_PER_MB`` milliseconds later per megabyte kept;
                       its ``/health/live`` fails once its resident memory has grown by more than
                       ``SHOP_LEAK_LIMIT_MB`` since it started.
``{"slow": f}``        the process's heavy work takes ``f`` times as long (a lost index, a cold
                       cache): the datastore's catalogue query, through :func:`slowdown`.  The
                       process stays alive and healthy; only its capacity shrinks.

A hang needs no cooperation: the lab stops the process (SIGSTOP).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from buttress.lab import service as lab_env

CONTROL = os.environ.get(lab_env.CONTROL)
LEAK_MS_PER_MB = float(os.environ.get("SHOP_LEAK_MS_PER_MB", "25"))
LEAK_LIMIT_MB = float(os.environ.get("SHOP_LEAK_LIMIT_MB", "48"))
CRASH_STATUS = 3
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_control(path: str | None = CONTROL) -> dict[str, Any]:
    """The control file's content ({} when there is none or it is unreadable)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_control(path: str, data: dict[str, Any]) -> None:
    partial = f"{path}.{os.getpid()}.partial"
    Path(partial).write_text(json.dumps(data))
    os.replace(partial, path)


def crash_if_looping(path: str | None = CONTROL) -> None:
    """Exit with status 3 when the control file asks for a crash (and count it)."""
    data = read_control(path)
    left = int(data.get("crash_loop") or 0)
    if path and left > 0:
        _write_control(path, {**data, "crash_loop": left - 1})
        sys.stderr.write(
            f"crash-loop fault: exiting with status {CRASH_STATUS} ({left - 1} left)\n"
        )
        sys.stderr.flush()
        os._exit(CRASH_STATUS)


def rss_mb() -> float:
    """This process's resident memory, in megabytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * _PAGE / 1e6


_watcher: list[Leak] = []  # the process's watcher, once started (with_lab_faults starts it)


class Leak:
    """What the control file asks of the running process: crash, leak or slow down (a watcher
    thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.kept: list[bytearray] = []
        self.kept_mb = 0.0
        self.baseline = rss_mb()
        self._mtime = 0.0
        self._rate = 0.0
        self.slowdown = 1.0

    def start(self) -> None:
        _watcher[:] = [self]  # what slowdown() reads
        threading.Thread(target=self._watch, name="lab-faults", daemon=True).start()

    def _watch(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            try:
                mtime = os.stat(self.path).st_mtime
            except OSError:
                mtime = 0.0
            if mtime != self._mtime:
                self._mtime = mtime
                crash_if_looping(self.path)
                asked = read_control(self.path)
                self._rate = float(asked.get("leak") or 0.0)
                self.slowdown = max(1.0, float(asked.get("slow") or 1.0))
            if self._rate > 0:
                self._keep(self._rate * (now - last))
            last = now

    def _keep(self, mb: float) -> None:
        chunk = bytearray(int(mb * 1e6))
        for i in range(0, len(chunk), 4096):  # touch every page: resident, not just reserved
            chunk[i] = 1
        self.kept.append(chunk)
        self.kept_mb += mb

    def delay(self) -> float:
        """Seconds each request is held back (the leak's pressure)."""
        return self.kept_mb * LEAK_MS_PER_MB / 1000

    def grown_mb(self) -> float:
        return rss_mb() - self.baseline


def slowdown() -> float:
    """How many times longer heavy work takes now (1.0 without a ``slow`` fault)."""
    return _watcher[0].slowdown if _watcher else 1.0


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def with_lab_faults(app: ASGIApp, registry: Any) -> ASGIApp:
    """``app`` with the lab's faults played (unchanged without ``BUTTRESS_LAB_CONTROL``): a
    watcher thread for the control file, a ``memory`` liveness check in ``registry``, and each
    non-health request held back while the process leaks."""
    if not CONTROL:
        return app
    from buttress.health import Check, Result, Status

    leak = Leak(CONTROL)

    def memory() -> Result:
        grown = leak.grown_mb()
        status = Status.FAIL if grown > LEAK_LIMIT_MB else Status.PASS
        return Result(status, observed_value=round(grown, 1), observed_unit="MB")

    registry.add(Check("memory", memory, groups=("liveness",), ttl=0.0, in_thread=False))
    leak.start()

    async def held_back(scope: Scope, receive: Any, send: Any) -> None:
        wait = leak.delay()
        if wait > 0 and scope["type"] == "http" and not scope["path"].startswith("/health"):
            await asyncio.sleep(wait)
        await app(scope, receive, send)

    return held_back
