"""The fault plan: apply each fault at its time, remove it at its end, and always clean up.

Faults and how they are applied (``target`` resolved to fault-proxy routes or instances):

==========  ====================================================  =================================
kind        apply                                                 remove
==========  ====================================================  =================================
latency     a ``latency`` toxic (downstream) on each route        remove the toxic
outage      disable each route (connections refused)              enable it
kill        SIGKILL the instance                                  start it again, wait until ready
burst       (the load driver raises the request kind's rate)      (the driver lowers it)
data_loss   SIGKILL the instance, delete its database file        restore the newest backup, start
                                                                  it again, wait until ready
crash_loop  the control file asks for ``crashes`` exits at start  clear it; start it again, wait
hang        SIGSTOP the instance (alive, answering nothing)       SIGKILL it; start it again, wait
leak        the control file asks for ``leak_rate`` MB/s          clear it; SIGKILL; start again
slow        the control file asks for ``slowdown`` times as long  clear it (the process stays up)
==========  ====================================================  =================================

Under supervision (the Buttress run with ``healing:``), removing a process fault only clears its
control file and waits until the instance is ready: restarting it is the supervisor's job, and a
hang or leak it did not notice stays.  Without supervision the restart at the end of the window is
the operator's.  Either way each process fault records when its instance served again from a new
process (``recovered_at``; ``time_to_recover`` from its application).

Every applied fault is remembered until removed; :meth:`FaultPlan.cleanup` (synchronous, for
``finally`` blocks and Ctrl-C) removes what is left, resets the proxy and then *verifies* that no
toxic is left and every route is enabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from buttress.chaos.client import AsyncClient, Client, ProxyAPIError

from .healing import ControlFiles, hang, resume
from .spec import CONTROL_FAULTS, INSTANCE_FAULTS, PROCESS_FAULTS, FaultSpec

__all__ = ["AppliedFault", "DataLoss", "FaultPlan", "scaled"]


@dataclass
class DataLoss:
    """For ``data_loss`` faults: each target instance's database file, where the backups go, and
    what the restore brought back (``restored``: the backup's id and when it was taken)."""

    files: dict[str, Path]
    backups: Path
    restored: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lose(self, instance: str) -> None:
        """Delete the database file and its WAL and shared-memory files."""
        db = self.files[instance]
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            p.unlink(missing_ok=True)

    def restore(self, instance: str) -> None:
        """Put the newest backup of the instance's database in place (the file is gone)."""
        from buttress.dr.sqlite import pick_backup, restore

        db = self.files[instance]
        chosen = pick_backup(self.backups, db.stem)
        restore(chosen.path, db, force=True)
        m = chosen.manifest
        self.restored[instance] = {"backup": m.id, "taken_at": m.started_at}


def scaled(fault: FaultSpec, scale: float) -> tuple[float, float]:
    """``(start, end)`` of ``fault`` in run seconds, every time multiplied by ``scale``."""
    return fault.at * scale, (fault.at + fault.duration) * scale


@dataclass
class AppliedFault:
    """A fault of the plan as it really happened (run seconds; ``None``: not yet)."""

    fault: FaultSpec
    planned: tuple[float, float]
    routes: list[str]
    applied_at: float | None = None
    removed_at: float | None = None
    error: str | None = None
    toxics: list[tuple[str, str]] = field(default_factory=list)
    recovered_at: float | None = None
    pids: dict[str, int | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "name": self.fault.name,
            "kind": self.fault.kind,
            "target": self.fault.target,
            "planned": list(self.planned),
            "applied_at": self.applied_at,
            "removed_at": self.removed_at,
            "error": self.error,
        }
        if self.fault.kind in PROCESS_FAULTS:
            ttr = None
            if self.recovered_at is not None and self.applied_at is not None:
                ttr = round(self.recovered_at - self.applied_at, 2)
            out |= {"recovered_at": self.recovered_at, "time_to_recover": ttr}
        return out


class FaultPlan:
    """Runs ``plan`` (times multiplied by ``scale``) against the proxy at ``proxy_url``.

    :param routes: target name -> the proxy routes it covers (an instance: its own; a service: all
        of its instances').
    :param supervisor: for the process faults: the lab's plain
        :class:`~buttress.lab.system.supervisor.Supervisor` or the supervised services
        (:class:`~buttress.lab.system.healing.SupervisedServices`).
    :param start_timeout: seconds a killed instance gets to be ready again after its restart.
    :param control: the instances' control files (crash loop, leak).
    :param ready_urls: each instance's readiness URL (to time its recovery).
    """

    def __init__(
        self,
        plan: Sequence[FaultSpec],
        *,
        scale: float,
        proxy_url: str,
        routes: Mapping[str, list[str]],
        supervisor: Any,
        start_timeout: float = 20.0,
        log: Callable[[str], None] = lambda _m: None,
        data_loss: DataLoss | None = None,
        control: ControlFiles | None = None,
        ready_urls: Mapping[str, str] | None = None,
    ) -> None:
        self.proxy_url = proxy_url
        self.supervisor = supervisor
        self.supervised = bool(getattr(supervisor, "supervised", False))
        self.control = control
        self.ready_urls = dict(ready_urls or {})
        self._trackers: list[asyncio.Task[None]] = []
        self.start_timeout = start_timeout
        self.log = log
        self.data_loss = data_loss
        self.faults = [
            AppliedFault(f, scaled(f, scale), list(routes.get(f.target, [f.target]))) for f in plan
        ]
        self.t0 = 0.0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def active(self) -> list[str]:
        """Names of the faults applied and not yet removed."""
        return [
            a.fault.name for a in self.faults if a.applied_at is not None and a.removed_at is None
        ]

    async def run(self, t0: float) -> None:
        """Apply and remove every fault on schedule (``t0``: the run's start, monotonic)."""
        self.t0 = t0
        steps: list[tuple[float, int, AppliedFault]] = []
        for a in self.faults:
            steps.append((a.planned[0], 1, a))
            steps.append((a.planned[1], 0, a))
        steps.sort(key=lambda s: (s[0], s[1]))
        try:
            await self._run_steps(steps)
            # The last removal waited until its instance was ready again; its tracker polls every
            # 0.1 s, so give it a moment to see that before the run ends (cancelled at once, the
            # last fault's recovery went unrecorded).
            if self._trackers:
                await asyncio.wait(self._trackers, timeout=1.0)
        finally:
            for task in self._trackers:
                task.cancel()
            for task in self._trackers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run_steps(self, steps: list[tuple[float, int, AppliedFault]]) -> None:
        async with AsyncClient(self.proxy_url, timeout=5.0) as client:
            for at, is_apply, a in steps:
                delay = at - self.now()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    if is_apply:
                        if a.fault.kind in PROCESS_FAULTS:
                            a.pids = {r: self.supervisor.pid(r) for r in a.routes}
                        await self._apply(client, a)
                        a.applied_at = self.now()
                        if a.fault.kind in PROCESS_FAULTS:
                            self._trackers.append(asyncio.create_task(self._track(a)))
                        self.log(
                            f"fault {a.fault.name}: applied ({a.fault.kind} on {a.fault.target})"
                        )
                    elif a.applied_at is not None:
                        await self._remove(client, a)
                        a.removed_at = self.now()
                        self.log(f"fault {a.fault.name}: removed")
                except (ProxyAPIError, OSError) as e:
                    a.error = str(e)
                    self.log(f"fault {a.fault.name}: {e}")

    async def _apply(self, client: AsyncClient, a: AppliedFault) -> None:
        f = a.fault
        if f.kind == "latency":
            for route in a.routes:
                h = await client.get(route)
                t = await h.add_toxic(
                    "latency",
                    name=f"lab-{f.name}",
                    latency=round(f.latency * 1000),
                    jitter=round(f.jitter * 1000),
                )
                a.toxics.append((route, str(t["name"])))
        elif f.kind == "outage":
            for route in a.routes:
                await (await client.get(route)).disable()
        elif f.kind == "kill":
            for route in a.routes:
                self.supervisor.kill(route)
        elif f.kind == "data_loss":
            assert self.data_loss is not None, "data_loss faults need their DataLoss"
            for route in a.routes:
                self.supervisor.kill(route)
                self.data_loss.lose(route)
        elif f.kind == "hang":
            for route in a.routes:
                hang(self.supervisor.pid(route))
        elif f.kind in CONTROL_FAULTS:
            if self.control is None:
                raise OSError(f"{f.kind} faults need the instances' control files")
            value = {"crash_loop": f.crashes or 3, "leak": f.leak_rate, "slow": f.slowdown}[f.kind]
            ask: dict[str, Any] = {str(f.kind): value}
            for route in a.routes:
                self.control.write(route, ask)

    async def _remove(self, client: AsyncClient, a: AppliedFault) -> None:
        f = a.fault
        if f.kind in CONTROL_FAULTS and self.control is not None:
            for route in a.routes:
                self.control.clear(route)
        if f.kind == "latency":
            while a.toxics:
                route, name = a.toxics.pop()
                await (await client.get(route)).remove_toxic(name)
        elif f.kind == "outage":
            for route in a.routes:
                await (await client.get(route)).enable()
        elif f.kind in PROCESS_FAULTS or f.kind == "data_loss":
            for route in a.routes:
                if f.kind == "data_loss":
                    assert self.data_loss is not None
                    await asyncio.to_thread(self.data_loss.restore, route)
                if not self.supervised and f.kind in ("hang", "leak"):
                    self.supervisor.kill(route)  # the operator's restart
            for route in a.routes:
                await self.supervisor.restore(route, self.start_timeout)

    async def _track(self, a: AppliedFault) -> None:
        """Set ``a.recovered_at`` when every target answers its readiness path from a process
        other than the one the fault hit."""
        waiting = [r for r in a.routes if r in self.ready_urls]
        async with httpx.AsyncClient(timeout=0.5) as client:
            while waiting:
                await asyncio.sleep(0.1)
                for route in list(waiting):
                    pid = self.supervisor.pid(route)
                    if pid is None or pid == a.pids.get(route):
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(self.ready_urls[route])).status_code == 200:
                            waiting.remove(route)
        a.recovered_at = self.now()

    def cleanup(self) -> dict[str, Any]:
        """Remove every fault still applied, reset the proxy and verify it is clean.

        Returns ``{"removed": n, "clean": bool, "detail": str}``; never raises for an unreachable
        proxy (a proxy that is gone has no fault left either)."""
        pending = [a for a in self.faults if a.applied_at is not None and a.removed_at is None]
        for a in pending:  # nothing more to crash, nothing left stopped or slowed
            if a.fault.kind in INSTANCE_FAULTS:
                for route in a.routes:
                    if self.control is not None:
                        self.control.clear(route)
                    resume(a.pids.get(route))
        detail = ""
        clean = True
        try:
            with Client(self.proxy_url, timeout=3.0) as client:
                for a in pending:
                    with contextlib.suppress(ProxyAPIError):
                        if a.fault.kind == "latency":
                            for route, name in a.toxics:
                                client.get(route).remove_toxic(name)
                        elif a.fault.kind == "outage":
                            for route in a.routes:
                                client.get(route).enable()
                    a.removed_at = self.now()
                client.reset()
                leftovers = [
                    f"{name}: {'disabled' if not h.enabled else ''} {len(h.toxics())} toxic(s)"
                    for name, h in client.proxies().items()
                    if not h.enabled or h.toxics()
                ]
                clean = not leftovers
                detail = "; ".join(leftovers) if leftovers else "no toxic left, every route enabled"
        except ProxyAPIError as e:
            detail = f"proxy unreachable ({e}); its faults went with it"
        return {"removed": len(pending), "clean": clean, "detail": detail}
