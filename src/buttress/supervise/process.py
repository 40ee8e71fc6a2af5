"""A supervised OS process: own process group, parent-death signal, notify socket, graceful stop.

Three guarantees:

* **No orphan.**  The child runs in a session and process group of its own (so a signal to the
  group reaches whatever it forked), and on Linux it asks the kernel, with
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` between fork and exec, to be killed when the supervisor
  dies, even by SIGKILL.  The supervisor's pid is checked after the call, so a supervisor that died
  during the fork is noticed too.  The parent-death signal reaches only the process the
  supervisor started; what that process forked is killed by the :mod:`guard
  <buttress.supervise.guard>`, which kills the whole group when the supervisor dies.  (A
  grandchild that leaves the group, with ``setsid``, escapes both.)
* **Graceful stop.**  SIGTERM to the group, ``grace`` seconds, then SIGKILL to the group.  Members
  of the group still alive after the main process exits are killed, so a restart never finds the
  old generation holding its port.
* **sd_notify.**  ``NOTIFY_SOCKET`` names a datagram socket of this child's own; ``READY=1``,
  ``WATCHDOG=1``, ``WATCHDOG=trigger`` and ``STATUS=`` are understood.  ``WATCHDOG_USEC`` is set
  when the child has a watchdog, as systemd sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from buttress.clock import SYSTEM_CLOCK, Clock
from buttress.errors import ConfigError
from buttress.options import documented

from .child import ChildFailed, Exit, race_ready
from .guard import guard
from .notify import NotifySocket
from .options import ChildOptions
from .ready import HealthReady, NotifyReady, Readiness, TcpReady, probe_http, probe_tcp, until_ready

__all__ = ["ProcessChild", "describe_returncode", "pid_alive", "sweep_notify_dirs"]

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] | None = getattr(libc, "prctl", None)
    return prctl


_prctl = _load_prctl()


def _die_with(parent: int) -> Callable[[], None]:
    """What runs in the child between fork and exec: ask for SIGKILL when the parent dies, then
    leave if it already has.

    ``preexec_fn`` is the only way the standard library offers to run code there; what it runs
    takes no lock another thread could hold at the fork (one libc call through a function pointer
    resolved before, ``getppid``, ``_exit``), which is what makes ``preexec_fn`` unsafe with
    threads."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(127)

    return preexec


def describe_returncode(code: int) -> str:
    """``exited 3`` or ``killed by SIGSEGV``."""
    if code >= 0:
        return f"exited {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux: its state in ``/proc``; the
    name in ``stat`` may hold a ``)``, so the state is read after the last one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


NOTIFY_PREFIX = "buttress-notify-"
"""Notify sockets live in ``<tmp>/buttress-notify-<supervisor pid>-<random>/sock``."""
_swept = False


def _notify_base() -> str:
    """The temporary directory, unless it is too long for a socket path (``sun_path`` holds 107
    bytes; the directory and socket names add about 40): then ``/tmp``."""
    base = tempfile.gettempdir()
    return base if len(os.fsencode(base)) <= 64 else "/tmp"


def sweep_notify_dirs(tmp: str | None = None) -> list[str]:
    """Remove the notify directories of supervisors that are gone (killed with SIGKILL, they could
    not remove their own); return the paths removed.  Called by the first child a process starts."""
    base = Path(tmp or _notify_base())
    removed = []
    for d in base.glob(f"{NOTIFY_PREFIX}*-*"):
        pid = d.name[len(NOTIFY_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


@documented(ChildOptions)
class ProcessChild:
    """``command`` run as a supervised process.

    :param name: the child's name in its supervisor.
    :param command: the program and its arguments (no shell).
    :param ready: when the child is ready (:class:`NotifyReady`, :class:`TcpReady`,
        :class:`HealthReady`); ``None``: once launched.
    :param depends_on: names of siblings that must be ready before this child starts.
    :param env: variables added to the supervisor's environment.
    :param cwd: the working directory.
    :param liveness: a check (:class:`TcpReady`, :class:`HealthReady`) run every
        ``liveness_period`` seconds once the child is ready; failing for longer than
        ``liveness_timeout``, the child is killed and counts as failed (a hang).
    :param guarded: register the child's process group with the :mod:`guard
        <buttress.supervise.guard>`, which kills the whole group if the supervisor dies.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        ready: Readiness | None = None,
        liveness: TcpReady | HealthReady | None = None,
        depends_on: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        guarded: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        **options: Any,
    ) -> None:
        if not command or not all(isinstance(part, str) for part in command):
            raise ConfigError("command", command, "must be a non-empty list of strings")
        self.name = name
        self.command = tuple(command)
        self.readiness = ready
        if liveness is not None and not isinstance(liveness, TcpReady | HealthReady):
            raise ConfigError("liveness", liveness, "must be a TcpReady or a HealthReady")
        self.liveness = liveness
        self._liveness_task: asyncio.Task[None] | None = None
        self.depends_on = tuple(depends_on)
        self.env = dict(env or {})
        self.cwd = cwd
        self.guarded = guarded
        self.options = ChildOptions(**options)
        self._clock = clock
        self._proc: asyncio.subprocess.Process | None = None
        self._notify: NotifySocket | None = None
        self._notify_dir: str | None = None
        self._ready = asyncio.Event()
        self._last_ping: float | None = None
        self._status = ""
        self._kill_reason: str | None = None
        self._stopping = False
        self._forced = False
        self._exit: Exit | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        self._ready = asyncio.Event()
        self._kill_reason, self._exit, self._status = None, None, ""
        self._stopping = self._forced = False
        global _swept
        if not _swept:
            _swept = True
            sweep_notify_dirs()
        self._notify_dir = tempfile.mkdtemp(
            prefix=f"{NOTIFY_PREFIX}{os.getpid()}-", dir=_notify_base()
        )
        self._notify = NotifySocket(os.path.join(self._notify_dir, "sock"), self._on_notify)
        self._notify.attach()
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": self._notify.path}
        if self.options.watchdog > 0:
            env["WATCHDOG_USEC"] = str(round(self.options.watchdog * 1_000_000))
        else:
            env.pop("WATCHDOG_USEC", None)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),
            )
        except OSError:
            self._close_notify()
            raise
        if self.guarded:
            guard().add(self._proc.pid)
        self._last_ping = self._clock.monotonic()

    def _on_notify(self, message: dict[str, str]) -> None:
        if message.get("READY") == "1":
            self._ready.set()
        if "STATUS" in message:
            self._status = message["STATUS"]
        watchdog = message.get("WATCHDOG")
        if watchdog == "1":
            self._last_ping = self._clock.monotonic()
        elif watchdog == "trigger":  # the child asks to be treated as hung (systemd semantics)
            self.kill("watchdog: the child sent WATCHDOG=trigger")

    async def ready(self) -> None:
        await self._until_ready()
        if self.liveness is not None:
            self._liveness_task = asyncio.create_task(self._check_liveness(self.liveness))

    async def _check_liveness(self, check: TcpReady | HealthReady) -> None:
        """Kill the child once ``check`` has failed for longer than ``liveness_timeout``."""
        period, allowed = self.options.liveness_period, self.options.liveness_timeout
        last_pass = self._clock.monotonic()
        while True:
            await asyncio.sleep(period)
            if isinstance(check, TcpReady):
                passed = await probe_tcp(check.host, check.port, timeout=min(period, 1.0))
            else:
                passed = await probe_http(check.url, timeout=min(period, 1.0))
            now = self._clock.monotonic()
            if passed:
                last_pass = now
            elif now - last_pass > allowed:
                self.kill(f"liveness: check failing for {now - last_pass:.2f}s")
                return

    async def _until_ready(self) -> None:
        proc = self._started()
        if self.readiness is None:
            return
        probe: Awaitable[object]
        if isinstance(self.readiness, NotifyReady):
            probe = self._ready.wait()
        else:
            assert isinstance(self.readiness, TcpReady | HealthReady)
            probe = until_ready(self.readiness)
        exited: asyncio.Future[object] = asyncio.ensure_future(proc.wait())
        try:
            outcome = await race_ready(probe, exited, self.options.ready_timeout)
        finally:
            exited.cancel()
        if outcome == "ready":
            return
        if outcome == "exited":
            why = self._finish(proc.returncode)
            raise ChildFailed(Exit(True, f"{why.reason} before it was ready", why.code))
        self.kill(f"not ready within {self.options.ready_timeout:g}s")
        raise ChildFailed(await self.wait())

    async def wait(self) -> Exit:
        proc = self._started()
        code = await proc.wait()
        return self._finish(code)

    async def stop(self) -> Exit:
        proc = self._proc
        if proc is None:
            return Exit(False, "never started")
        if proc.returncode is not None:
            return self._finish(proc.returncode)
        self._stopping = True
        self._signal_group(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(asyncio.shield(proc.wait()), self.options.grace)
        except TimeoutError:
            self._forced = True
            self._signal_group(signal.SIGKILL)
            code = await proc.wait()
        return self._finish(code)

    def kill(self, reason: str) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        if self._kill_reason is None:
            self._kill_reason = reason
        self._signal_group(signal.SIGKILL)

    def last_ping(self) -> float | None:
        return self._last_ping if self.options.watchdog > 0 else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": "process",
            "pid": self.pid if self._exit is None else None,
            "command": list(self.command),
            "status": self._status,
        }

    def _started(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError(f"child {self.name!r} was not started")
        return self._proc

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is the child's pid (start_new_session); the group outlives its leader only
        # while other members are alive, so the signal never reaches strangers.
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _finish(self, code: int | None) -> Exit:
        """The exit of the current run (computed once), after killing what is left of its group
        and closing its notify socket."""
        if self._exit is not None:
            return self._exit
        assert code is not None
        self._signal_group(signal.SIGKILL)
        if self._liveness_task is not None:
            self._liveness_task.cancel()
            self._liveness_task = None
        if self.guarded and self._proc is not None:
            guard().remove(self._proc.pid)
        self._close_notify()
        if self._kill_reason is not None:
            self._exit = Exit(True, self._kill_reason, code)
        elif self._stopping:
            forced = f", SIGKILL after the {self.options.grace:g}s grace" if self._forced else ""
            self._exit = Exit(False, f"stopped ({describe_returncode(code)}{forced})", code)
        else:
            self._exit = Exit(code != 0, describe_returncode(code), code)
        return self._exit

    def _close_notify(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        if self._notify_dir is not None:
            shutil.rmtree(self._notify_dir, ignore_errors=True)
            self._notify_dir = None

    def __repr__(self) -> str:
        return f"ProcessChild({self.name!r}, {list(self.command)!r})"
