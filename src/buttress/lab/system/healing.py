"""Self-healing in the lab: the Buttress run's services under :mod:`buttress.supervise`, the
lab's process faults (crash loop, hang, leak), and remediation switching a degraded mode.

* :class:`SupervisedServices` runs one :class:`~buttress.supervise.Supervisor` (options from
  ``experiments.healing``) with a :class:`~buttress.supervise.ProcessChild` per instance: ready when
  its readiness path answers, killed and restarted when its liveness path keeps failing (a hang, a
  leak) or when it exits (a crash).  The tree lives on an event loop in a thread of its own, so the
  lab's synchronous start and its load driver's loop stay as they are; the children's
  parent-death signal is tied to that thread, which lives until they are stopped.
* :class:`ControlFiles` are how the lab asks an instance to crash or leak (the example plays them:
  ``examples/shop/shop/labfaults.py``); a hang is a SIGSTOP and needs no cooperation.
* :class:`Healer` computes the lab's ``slo_burn`` signal from the users' requests (the burn rate of
  each SLO over the last ``burn.window`` seconds; the SLO evaluator's windows are minutes long and a
  run lasts one) and feeds the file's ``remediation:`` rules, whose ``mode:`` actions write the
  shared mode file the services read.  Every action is journaled, every mode change timed.

Without ``healing:`` (and in the off and typical runs) nothing restarts an instance: the lab's
plain restart at the end of a fault's window stands for the operator (see docs/shop-lab.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from buttress.events import Event, add_listener
from buttress.lab.errors import LabError
from buttress.supervise.process import pid_alive

from .driver import Sample, unless_starved
from .load import LoadedLab
from .spec import PROCESS_FAULTS, BurnSignalSpec, HealingSpec
from .supervisor import ServiceFailed

__all__ = [
    "ControlFiles",
    "Healer",
    "SupervisedServices",
    "burn_rates",
    "healing_rows",
    "healing_sentences",
    "healing_tables",
    "supervised_hypotheses",
]

_TREE = "lab"
_LOG_WRAPPER = 'exec "$@" >>"$BUTTRESS_LAB_LOG" 2>&1'  # exec: the child keeps the pid (and group)


class ControlFiles:
    """One JSON file per instance under ``directory``: what the lab asks of its process."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, instance: str) -> Path:
        return self.directory / f"{instance}.json"

    def write(self, instance: str, data: Mapping[str, Any]) -> None:
        target = self.path(instance)
        partial = target.with_suffix(".partial")
        partial.write_text(json.dumps(dict(data)))
        partial.replace(target)

    def clear(self, instance: str) -> None:
        self.write(instance, {})


@dataclass
class _Declared:
    service: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str
    port: int


class SupervisedServices:
    """The instances of a run as children of one supervisor (see the module docstring).

    Offers what the fault plan and the run need of the lab's plain
    :class:`~buttress.lab.system.supervisor.Supervisor`: ``add``, ``kill``, ``pid``, ``restore``,
    ``stop_all``, ``pids``; ``supervised`` tells the plan that restarts are not its job."""

    supervised = True

    def __init__(self, healing: HealingSpec) -> None:
        self.healing = healing
        self.declared: dict[str, _Declared] = {}
        self.events: list[dict[str, Any]] = []
        self.wall0 = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tree: Any = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._remove_listener = add_listener(self._on_event)

    def add(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        log: Path,
        ready_url: str,
        env: Mapping[str, str] | None = None,
        service: str | None = None,
    ) -> None:
        """Declare an instance of ``service`` (default: ``name``), started by :meth:`start`."""
        if name in self.declared:
            raise LabError(f"two processes named {name!r}")
        self.declared[name] = _Declared(
            service or name, list(argv), dict(env or {}), log, ready_url, port
        )

    # -- running -------------------------------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Start the tree in its thread and wait until every child is ready (in start order: the
        supervisor starts one child once the one before is ready).  Raises
        :class:`ServiceFailed` naming a child that never became ready."""
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._main(started))
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="lab-supervisor", daemon=True)
        self._thread.start()
        try:
            started.result(timeout)
        except concurrent.futures.TimeoutError:
            raise ServiceFailed(
                _TREE, f"the supervised services were not ready in {timeout:g}s"
            ) from None

    def _children(self) -> list[Any]:
        from buttress.supervise import ChildOptions, HealthReady, ProcessChild

        children = []
        for name, d in self.declared.items():
            child = ChildOptions(**self.healing.child_options(d.service)).as_kwargs()
            live = self.healing.liveness
            base = d.ready_url.split("/", 3)[:3]  # http://127.0.0.1:port
            liveness = HealthReady("/".join(base) + live) if live else None
            d.log.parent.mkdir(parents=True, exist_ok=True)
            children.append(
                ProcessChild(
                    name,
                    ["/bin/sh", "-c", _LOG_WRAPPER, "sh", *d.argv],
                    ready=HealthReady(d.ready_url),
                    liveness=liveness,
                    env={**d.env, "BUTTRESS_LAB_LOG": str(d.log)},
                    **child,
                )
            )
        return children

    async def _main(self, started: concurrent.futures.Future[None]) -> None:
        """Start the tree, report readiness (or the child that failed) to :meth:`start`, run
        until :meth:`stop_all`, which may come before the tree is ready (Ctrl-C), then stop."""
        from buttress.supervise import ChildFailed, Supervisor

        self._stop = asyncio.Event()
        self._tree = tree = Supervisor(
            _TREE, self._children(), **self.healing.to_options().as_kwargs()
        )
        await tree.start()
        ready = asyncio.ensure_future(tree.ready())
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            started.set_exception(ServiceFailed(_TREE, "stopped before every child was ready"))
        elif (error := ready.exception()) is not None:
            reason = error.exit.reason if isinstance(error, ChildFailed) else repr(error)
            # The child whose failures made the supervisor give up: the last one that failed.
            exits = [e for e in self.events if e["event"] == "child_exited" and e.get("failed")]
            failed = exits[-1]["child"] if exits else _TREE
            if exits:
                reason = f"{exits[-1].get('reason')} ({reason})"
            log = self.declared[failed].log if failed in self.declared else None
            started.set_exception(ServiceFailed(failed, reason, log))
            stopping.cancel()
        else:
            started.set_result(None)
            await stopping
        await tree.stop()

    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    def kill(self, name: str) -> None:
        """SIGKILL the instance's process group (a fault); its supervisor restarts it."""
        if self._tree is not None:
            self._call(self._tree.child(name).kill, "killed by the lab's fault plan")

    def pid(self, name: str) -> int | None:
        if self._tree is None:
            return None
        pid: int | None = self._tree.child(name).pid
        return pid

    async def restore(self, name: str, timeout: float) -> None:
        """Wait until the instance answers its readiness path again: bringing it back is the
        supervisor's job, not the lab's."""
        url = self.declared[name].ready_url
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=0.5) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise LabError(f"{name} was not ready again within {timeout:g}s of the fault's end")

    def stop_all(self, grace: float = 3.0) -> list[str]:
        """Stop the tree (reverse order, SIGTERM, the child's grace, SIGKILL) and its thread;
        the names that needed SIGKILL."""
        self._remove_listener()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=grace * (len(self.declared) + 1) + 5)
        if self._tree is None:
            return []
        return [
            c["name"]
            for c in self._tree.snapshot()["children"]
            if "SIGKILL after" in str(c.get("last_exit") or "")
        ]

    def pids(self) -> dict[str, int]:
        out = {}
        for name in self.declared:
            pid = self.pid(name)
            if pid is not None and pid_alive(pid):
                out[name] = pid
        return out

    def snapshot(self) -> dict[str, Any]:
        return {} if self._tree is None else dict(self._tree.snapshot())

    def _on_event(self, event: Event) -> None:
        if event.policy_type != "supervisor" or event.pipeline != _TREE:
            return
        fields = {
            k: getattr(event, k)
            for k in ("pid", "reason", "failed", "delay", "failures", "silence", "startup")
            if hasattr(event, k)
        }
        with self._lock:
            self.events.append(
                {"time": round(time.time() - self.wall0, 3), "child": event.policy}
                | {"event": event.kind}
                | fields
            )


def hang(pid: int | None) -> None:
    """Stop the process (SIGSTOP): alive, its port open, nothing answered."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)


def resume(pid: int | None) -> None:
    """SIGCONT, so a stopped process can be stopped for good (SIGTERM waits for it otherwise)."""
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


# -- remediation -------------------------------------------------------------------------------


def burn_rates(
    samples: Sequence[Sample], kinds: Mapping[str, float], now: float, burn: BurnSignalSpec
) -> dict[str, tuple[float, int]]:
    """For each request kind (-> its SLO's objective, a fraction): the burn rate of the requests
    answered (or timed out) in the last ``burn.window`` seconds, and how many there were:
    ``(bad / n) / (1 - objective)``."""
    bad: dict[str, int] = dict.fromkeys(kinds, 0)
    count: dict[str, int] = dict.fromkeys(kinds, 0)
    since = now - burn.window
    for s in reversed(samples):  # appended as they complete: the newest last
        if s.start + s.latency < since:
            break
        if s.kind in count:
            count[s.kind] += 1
            bad[s.kind] += not s.good
    out = {}
    for kind, objective in kinds.items():
        n = count[kind]
        rate = (bad[kind] / n) / (1 - objective) if n else 0.0
        out[kind] = (rate, n)
    return out


class Healer:
    """The ``remediation:`` rules of the file over the lab's ``slo_burn`` signal (see the module
    docstring) of each SLO in ``slos`` (request kind -> the SLO's name and objective, a
    fraction); the mode file is ``run_dir/mode.json`` (``BUTTRESS_LAB_MODE_STATE``)."""

    def __init__(
        self,
        lab: LoadedLab,
        run_dir: Path,
        burn: BurnSignalSpec,
        slos: Mapping[str, tuple[str, float]],
    ) -> None:
        from buttress.modes.switch import ModeSwitch, write_state
        from buttress.remediation.build import build_remediator
        from buttress.remediation.engine import Journal

        self.burn = burn
        self.mode_file = run_dir / "mode.json"
        write_state(self.mode_file, None, "lab start", time.time())
        self.switch = ModeSwitch.from_spec(lab.spec, state_file=self.mode_file)
        self.modes: list[dict[str, Any]] = []
        # Each stretch of ticks at which an SLO's burn signal was active: {slo, from, to, peak}
        # (run seconds), so a reader can tell a burn too short for a rule's hold from a rule that
        # did not act.
        self.burns: list[dict[str, Any]] = []
        self._burning: dict[str, dict[str, Any]] = {}
        self.switch.on_change(self._changed)
        try:
            self.remediator = build_remediator(
                lab.spec, switch=self.switch, journal=Journal(run_dir / "remediation.jsonl")
            )
        except Exception as e:  # a restart: or call: rule, which the lab cannot carry out
            raise LabError(f"remediation: {e}") from None
        self.slos = dict(slos)  # request kind -> (its SLO, the objective as a fraction)
        self.t0 = 0.0
        self.wall0 = time.time()

    def _changed(self, new: str | None, old: str | None) -> None:
        now = round(time.monotonic() - self.t0, 3)
        if old is not None and self.modes and self.modes[-1]["off_at"] is None:
            self.modes[-1]["off_at"] = now
        if new is not None:
            self.modes.append({"mode": new, "on_at": now, "off_at": None})

    async def run(self, samples: Sequence[Sample], t0: float, until: float) -> None:
        """Every half second until ``until`` (run seconds): the burn signal of each SLO, then the
        rules that are due."""
        from buttress.remediation.engine import Signal

        self.t0 = t0
        self.wall0 = time.time() - (time.monotonic() - t0)
        objectives = {k: o for k, (_, o) in self.slos.items()}
        while time.monotonic() - t0 < until:
            await asyncio.sleep(0.5)
            now = time.monotonic() - t0
            for kind, (rate, n) in burn_rates(samples, objectives, now, self.burn).items():
                if n < self.burn.min_requests:
                    continue
                active = rate >= self.burn.rate
                figures = {"burn_rate": round(rate, 1), "window": self.burn.window, "requests": n}
                self._trace(self.slos[kind][0], active, rate, now)
                self.remediator.signal(Signal("slo_burn", self.slos[kind][0], active, figures))
            self.remediator.tick()

    def _trace(self, slo: str, active: bool, rate: float, now: float) -> None:
        stretch = self._burning.get(slo)
        if not active:
            self._burning.pop(slo, None)
            return
        if stretch is None:
            stretch = {"slo": slo, "from": round(now, 3), "to": round(now, 3), "peak": 0.0}
            self._burning[slo] = stretch
            self.burns.append(stretch)
        stretch["to"] = round(now, 3)
        stretch["peak"] = max(stretch["peak"], round(rate, 1))

    @staticmethod
    def none() -> dict[str, Any]:
        """The figures of a run with supervision and no remediation rules."""
        return {"journal": [], "modes": [], "burns": []}

    def figures(self) -> dict[str, Any]:
        journal = [
            {
                "time": round(e.time - self.wall0, 3),
                "rule": e.rule,
                "action": e.action,
                "signal": f"{e.signal} {e.subject}",
                "figures": e.figures,
                "outcome": e.outcome,
            }
            for e in self.remediator.journal.entries
        ]
        return {"journal": journal, "modes": self.modes, "burns": self.burns}


# -- figures, hypotheses, report rows -----------------------------------------------------------


def restarts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The supervisor's restarts: each failed exit of a child, with its reason."""
    out = []
    for e in events:
        if e["event"] == "child_exited" and e.get("failed"):
            out.append({"time": e["time"], "instance": e["child"], "reason": e.get("reason", "")})
    return out


def supervised_hypotheses(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """``hypotheses.supervised``: for each fault named and each SLO the off run spent budget on,
    the Buttress run spends at most ``at_most`` of it."""
    expect = lab.experiments.hypotheses.supervised
    if expect is None or "on" not in runs or "off" not in runs:
        return []
    on = {f["name"]: f for f in runs["on"]["faults"]}
    off = {f["name"]: f for f in runs["off"]["faults"]}
    out = []
    for name in expect.faults:
        for slo, spent_off in (off[name].get("budget_consumed") or {}).items():
            if not spent_off:
                continue
            spent_on = on[name]["budget_consumed"].get(slo) or 0.0
            share = spent_on / spent_off
            h = {
                "hypothesis": f"SLO {slo}: {name} under supervision spends at most "
                f"{expect.at_most:.0%} of the budget it spends with policies off",
                "mode": "on",
                "expected": f"<= {expect.at_most:.0%}",
                "observed": f"{spent_on:.0%} against {spent_off:.0%} off: {share:.0%} of it",
                "passed": share <= expect.at_most,
            }
            out.append(unless_starved(h, {"on": runs["on"]}))
    return out


def healing_rows(runs: dict[str, Any], modes: list[str]) -> list[tuple[str, ...]]:
    """Side-by-side rows: time to recover per process fault, restarts, time in degraded mode."""
    first = runs[modes[0]]
    out: list[tuple[str, ...]] = []
    for j, f in enumerate(first["faults"]):
        if f.get("kind") not in PROCESS_FAULTS:
            continue
        cells = []
        for m in modes:
            ttr = runs[m]["faults"][j].get("time_to_recover")
            cells.append("never" if ttr is None else f"{ttr:.1f} s")
        out.append((f"time to recover from {f['name']}", *cells))
    if not any("healing" in runs[m] for m in modes):
        return out
    cells = []
    for m in modes:
        h = runs[m].get("healing")
        cells.append("-" if h is None else str(len(h["restarts"])))
    out.append(("restarts by the supervisor", *cells))
    cells = []
    for m in modes:
        h = runs[m].get("healing")
        if h is None:
            cells.append("-")
            continue
        end = runs[m].get("duration", 0.0)
        spent = sum(
            (x["off_at"] if x["off_at"] is not None else end) - x["on_at"] for x in h["modes"]
        )
        cells.append(f"{len(h['modes'])}x, {spent:.1f} s")
    out.append(("degraded mode (times, total)", *cells))
    return out


def healing_tables(runs: dict[str, Any]) -> dict[str, list[tuple[str, ...]]]:
    """The report's *Self-healing* tables: the supervisor's restarts, the remediation journal and
    the degraded-mode intervals of every run that had them."""
    from .spec import MODE_NAMES

    restarted: list[tuple[str, ...]] = []
    journal: list[tuple[str, ...]] = []
    modes: list[tuple[str, ...]] = []
    for m, run in runs.items():
        h = run.get("healing")
        if h is None:
            continue
        name = MODE_NAMES.get(m, m)
        for r in h["restarts"]:
            restarted.append((name, f"{r['time']:.1f} s", r["instance"], r["reason"]))
        for e in h["journal"]:
            shown = ", ".join(f"{k} {v}" for k, v in e["figures"].items())
            journal.append(
                (
                    name,
                    f"{e['time']:.1f} s",
                    e["rule"],
                    e["signal"],
                    shown,
                    e["action"],
                    e["outcome"],
                )
            )
        for x in h["modes"]:
            off = "still on at the end" if x["off_at"] is None else f"{x['off_at']:.1f} s"
            modes.append((name, x["mode"], f"{x['on_at']:.1f} s", off))
    return {"restarts": restarted, "journal": journal, "modes": modes}


def healing_sentences(runs: dict[str, Any]) -> list[str]:
    """One sentence per degraded-mode interval: when remediation switched it on and off."""
    out = []
    for run in runs.values():
        h = run.get("healing")
        if h is None:
            continue
        n = len(h["restarts"])
        out.append(f"Under supervision the supervisor restarted an instance {n} time(s).")
        for x in h["modes"]:
            subject = _burning(h["journal"], x)
            off = (
                "it was still on at the end of the run"
                if x["off_at"] is None
                else f"off again at {x['off_at']:.1f} s once {subject} recovered"
            )
            out.append(
                f"Remediation switched the system to its degraded mode {x['mode']} at "
                f"{x['on_at']:.1f} s, when {subject} burned its budget fast; {off}."
            )
        if not h["modes"] and h.get("burns"):
            longest = max(h["burns"], key=lambda b: b["to"] - b["from"])
            out.append(
                f"Remediation did not act: the longest fast burn ({longest['slo']}, from "
                f"{longest['from']:.1f} s) lasted {longest['to'] - longest['from']:.1f} s, "
                "shorter than its rules' hold."
            )
    return out


def _burning(journal: list[dict[str, Any]], interval: dict[str, Any]) -> str:
    """The SLO whose burn switched ``interval``'s mode on: the subject of the journal's action
    nearest in time (``checkout`` when the journal has none)."""
    done = [
        e for e in journal if e["action"] == f"mode {interval['mode']}" and e["outcome"] == "done"
    ]
    if not done:
        return "checkout"
    nearest = min(done, key=lambda e: abs(float(e["time"]) - float(interval["on_at"])))
    return str(nearest["signal"]).split(" ", 1)[-1]
