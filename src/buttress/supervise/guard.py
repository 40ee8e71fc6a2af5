"""The guard: a small process that kills the supervisor's process groups when the supervisor dies.

The parent-death signal (``PR_SET_PDEATHSIG``) kills the processes the supervisor started, but not
what *they* started: a shell's children, a server's workers.  Those share their parent's process
group, so one ``killpg`` reaches them, but a supervisor killed with SIGKILL runs no code.  The guard
does it instead: it reads ``+PGID`` and ``-PGID`` lines on its standard input, whose writing end
only the supervisor holds, and when that input ends (the supervisor exited, however it died), it
sends SIGKILL to every group still registered.

It runs in a session of its own, so the Ctrl-C that reaches the supervisor's terminal does not kill
it first.  It runs as a script (``python -I -S guard.py``) and imports only the standard
library.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading

__all__ = ["Guard", "guard", "main"]


def main() -> None:
    """Read registrations until the input ends, then kill the groups still registered."""
    groups: set[int] = set()
    for line in sys.stdin:
        sign, number = line[:1], line[1:].strip()
        if not number.isdigit():
            continue
        if sign == "+":
            groups.add(int(number))
        elif sign == "-":
            groups.discard(int(number))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


class Guard:
    """The supervisor's side: a guard process and the pipe to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # This file run as a script, isolated (-I) and without site (-S): standard library only.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        self.pid = self._proc.pid

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is None:
            return
        with self._lock, contextlib.suppress(OSError, ValueError):
            stdin.write(line.encode("ascii"))
            stdin.flush()

    def add(self, group: int) -> None:
        """Kill ``group`` if the supervisor dies."""
        self._send(f"+{group}\n")

    def remove(self, group: int) -> None:
        """``group`` is gone (its processes reaped): forget it."""
        self._send(f"-{group}\n")

    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        """End the guard (it kills the groups still registered, as if the supervisor died)."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=2.0)


_guards: dict[int, Guard] = {}
_guards_lock = threading.Lock()


@atexit.register
def _close_guards() -> None:
    # A normal exit ends the guard here rather than leaving it to the interpreter's teardown.
    found = _guards.pop(os.getpid(), None)
    if found is not None:
        found.close()


def guard() -> Guard:
    """This process's guard, started on first use (again after a fork, or if it died)."""
    with _guards_lock:
        found = _guards.get(os.getpid())
        if found is None or not found.alive():
            found = _guards[os.getpid()] = Guard()
        return found


if __name__ == "__main__":
    main()
