"""The process supervisor: starts services and the fault proxy, waits for them, stops them all.

Every process is started

* on 127.0.0.1, on a port the supervisor picked free a moment before (:func:`free_port`);
* in a session of its own, so a Ctrl-C in the terminal reaches the lab only, and the lab decides
  the order of the shutdown (faults removed first, then the processes);
* with ``PR_SET_PDEATHSIG = SIGKILL`` on Linux, so even a lab killed with SIGKILL leaves no process
  behind (the kernel kills the children when the parent dies);
* with stdout and stderr going to a log file, whose last lines explain a failed start.

:meth:`Supervisor.stop_all` sends SIGTERM to every live process (in the reverse order of their
start), waits up to ``grace`` seconds (default 3), then sends SIGKILL to what is left and reaps it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from buttress.lab.errors import LabError
from buttress.ports import free_port

__all__ = ["Process", "ServiceFailed", "Supervisor", "free_port", "log_tail"]

_PR_SET_PDEATHSIG = 1


class ServiceFailed(LabError):
    """A process of the lab did not start (it exited, or never became ready)."""

    def __init__(self, name: str, reason: str, log: Path | None = None) -> None:
        self.name = name
        self.reason = reason
        self.log = log
        tail = log_tail(log) if log is not None else ""
        where = f"\n--- last lines of {log} ---\n{tail}" if tail else ""
        super().__init__(f"service {name!r} failed to start: {reason}{where}")


def log_tail(path: Path, lines: int = 12) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


# Signals held back while forking: a Ctrl-C that lands inside the interpreter's at-fork handlers
# (logging registers one) is reported as "Exception ignored" and lost, so the lab would carry on.
# Held back, it is delivered as soon as the fork is done, at a point where it can stop the lab.
_HELD = frozenset({signal.SIGINT, signal.SIGTERM})


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)  # the child must hear SIGINT/SIGTERM
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


@dataclass
class Process:
    """One supervised process: its command, port, log and the live :class:`subprocess.Popen`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    ready_url: str
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    history: list[tuple[str, float]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class Supervisor:
    """Starts and stops the lab's processes.  It never restarts one by itself (``supervised`` is
    false): the fault plan's :meth:`restore` at the end of a fault's window does.

    :param python: the interpreter that runs services (default: this one).
    :param env: environment every process inherits (default: this process's).
    """

    supervised = False

    def __init__(self, *, python: str = sys.executable, env: Mapping[str, str] | None = None):
        self.python = python
        self.base_env = dict(os.environ if env is None else env)
        self.processes: dict[str, Process] = {}

    # -- starting ----------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log: Path,
        ready_url: str,
        env: Mapping[str, str] | None = None,
    ) -> Process:
        """Declare a process (not started yet)."""
        if name in self.processes:
            raise LabError(f"two processes named {name!r}")
        proc = Process(name, list(argv), dict(env or {}), port, log, ready_url)
        self.processes[name] = proc
        return proc

    def spawn(self, name: str) -> Process:
        """Start the process ``name`` (do not wait for it).  Call from the main thread: the
        parent-death signal is tied to the thread that forks."""
        proc = self.processes[name]
        if proc.alive:
            raise LabError(f"process {name!r} is already running")
        proc.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**self.base_env, **proc.env}
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        try:
            with proc.log.open("ab") as out:
                proc.popen = subprocess.Popen(
                    proc.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509
                )
        finally:
            # Restoring the mask delivers a held signal here, after the fork: Ctrl-C still stops.
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        proc.starts += 1
        proc.history.append(("start", time.time()))
        return proc

    def _ready_once(self, proc: Process, client: httpx.Client) -> bool:
        if proc.popen is not None and proc.popen.poll() is not None:
            raise ServiceFailed(
                proc.name, f"it exited with status {proc.popen.returncode}", proc.log
            )
        try:
            return client.get(proc.ready_url).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeouts: Mapping[str, float]) -> None:
        """Wait until every process named in ``timeouts`` answers 200 on its ready URL.

        Raises :class:`ServiceFailed` naming the first process that exited, or that was not ready
        within its own timeout (seconds), with the end of its log."""
        start = time.monotonic()
        waiting = list(timeouts)
        with httpx.Client(timeout=1.0) as client:
            while True:
                waiting = [n for n in waiting if not self._ready_once(self.processes[n], client)]
                if not waiting:
                    return
                elapsed = time.monotonic() - start
                for n in waiting:
                    if elapsed > timeouts[n]:
                        raise ServiceFailed(
                            n,
                            f"not ready after {timeouts[n]:g}s ({self.processes[n].ready_url} "
                            "did not answer 200)",
                            self.processes[n].log,
                        )
                time.sleep(0.05)

    async def wait_ready_async(self, name: str, timeout: float) -> None:
        """:meth:`wait_ready` for one process, without blocking the event loop."""
        import asyncio

        proc = self.processes[name]
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if proc.popen is not None and proc.popen.poll() is not None:
                    raise ServiceFailed(
                        name, f"it exited with status {proc.popen.returncode}", proc.log
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(proc.ready_url)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise ServiceFailed(name, f"not ready after {timeout:g}s", proc.log)
                await asyncio.sleep(0.05)

    def pid(self, name: str) -> int | None:
        """The pid of ``name``'s current (or last) process."""
        return self.processes[name].pid

    async def restore(self, name: str, timeout: float) -> None:
        """Start ``name`` again unless it runs, and wait until it is ready (the end of a process
        fault's window: the operator's restart)."""
        if not self.processes[name].alive:
            self.spawn(name)
        await self.wait_ready_async(name, timeout)

    # -- stopping ----------------------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL one process (a fault) and reap it."""
        proc = self.processes[name]
        if proc.popen is not None and proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait()
        proc.history.append(("killed", time.time()))

    def stop_all(self, grace: float = 3.0) -> list[str]:
        """SIGTERM every live process, newest first; SIGKILL whatever is still alive after
        ``grace`` seconds.  Returns the names that needed SIGKILL."""
        live = [p for p in reversed(self.processes.values()) if p.alive]
        for p in live:
            assert p.popen is not None
            with contextlib.suppress(ProcessLookupError):
                p.popen.terminate()
        deadline = time.monotonic() + grace
        killed: list[str] = []
        for p in live:
            assert p.popen is not None
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.popen.kill()
                p.popen.wait()
                killed.append(p.name)
            p.history.append(("stopped", time.time()))
        return killed

    def pids(self) -> dict[str, int]:
        """Live processes by name."""
        return {n: p.pid for n, p in self.processes.items() if p.alive and p.pid is not None}
