"""``buttress lab PATH``: the whole lab, and one run of it.

The lab, in order:

1. load ``PATH/reliability.yaml`` (or ``PATH`` itself) and check its ``experiments:`` section
   against the rest (services, request kinds, SLO names): errors name file, line and field;
2. assess the ``architecture:`` section (:func:`buttress.assess.assess`);
3. run the plan with the policies on, then again with the policies off (:func:`run_once`);
4. check the hypotheses, print the two runs side by side, write ``report.html`` and
   ``result.json`` into the output directory.

One run: start the fault proxy, create one route per instance that something depends on, start
every service (in parallel; they call their dependencies only when asked; in the Buttress run of a
file with ``experiments.healing:``, as children of a :mod:`buttress.supervise` supervisor, one after
the other, with remediation switching the file's modes: :mod:`buttress.lab.system.healing`), wait
until each answers its readiness path, then drive the load while the plan applies its faults, read
every stored order back, check the history, evaluate the SLOs from the store the services recorded
into, and stop everything.  Whatever happens (a failed start, an error, Ctrl-C, SIGTERM) the
faults still applied are removed and verified gone, then every process is stopped.

**Budget consumed per fault.**  For an SLO over request kind ``k`` with objective ``o``, the share
of the run's error budget a fault consumed is ``bad_k(fault) / (total_k(run) * (1 - o))``, where
``bad_k(fault)`` counts the bad requests of kind ``k`` that arrived while the fault was applied
(from its application to its removal plus the client timeout, and at most until the next fault
is applied, so no request is charged to two faults).

**Verdict.**  ``passed`` when every hypothesis held, ``failed`` when one did not, ``inconclusive``
when none failed but one could not be judged because the load driver was starved (its p99
scheduling lag above a tenth of the client timeout: see :mod:`buttress.lab.system.driver`); each
run has its own ``verdict`` and its lag figures under ``driver`` in ``result.json``.

**SLO verdicts.**  The driver records every request into the run's ``client.db`` as the SLIs of the
SLOs over its kind (an SLO's ``sli.pipeline`` names the request kind): what the users saw, timeouts
and refused connections included.  The API records its own view into ``store.db`` through the ASGI
middleware.  Both are :class:`~buttress.slo.SLIStore` files evaluated by
:func:`buttress.slo.evaluator.evaluate`; the verdict uses the users' view: *held* when
``SLI >= objective`` (budget consumed ``<= 100%``), *burned* otherwise.  The services' figures are
reported beside it: a gap between the two is time spent queueing where the service cannot see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from buttress.chaos.checker import History
from buttress.lab import service as lab_env
from buttress.lab.errors import LabError
from buttress.slo import SLIRecorder, SLIStore
from buttress.slo.spec import LatencySLI

from .alerts import alert_hypotheses
from .audit import audit_hypotheses, read_chains, recovery_figures, recovery_hypotheses
from .drill import Backups, drill_figures, drill_hypotheses, drill_lab
from .driver import Burst, LoadDriver, Sample, window_stats
from .figures import assessment as assess_architecture
from .figures import figures, slo_kind
from .figures import hypotheses as check_hypotheses
from .figures import verdict as overall_verdict
from .healing import ControlFiles, Healer, SupervisedServices, restarts, supervised_hypotheses
from .load import LoadedLab, load_lab, targets
from .plan import DataLoss, FaultPlan, scaled
from .priority import priority_hypotheses, shed_figures
from .progress import LiveProgress
from .prometheus import PromStack
from .readback import read_attempts, read_effects, read_final
from .spec import MODE_NAMES, MODES, instance_names
from .supervisor import Supervisor, free_port
from .tenants import add_tenant_figures, read_placement, tenant_hypotheses

__all__ = ["MODES", "MODE_NAMES", "LabOptions", "LoadedLab", "load_lab", "run_lab", "run_once"]


@dataclass(frozen=True)
class LabOptions:
    """How to run: ``quick`` (the short plan), ``out`` (where files go), ``seed``, ``modes``
    (which runs, a subset of :data:`MODES`; ``None``: those of ``experiments.runs``),
    ``prometheus`` (a real Prometheus and Alertmanager beside each run:
    :mod:`buttress.lab.system.prometheus`)."""

    quick: bool = False
    out: Path = Path("lab-report")
    seed: int = 1
    modes: tuple[str, ...] | None = None
    prometheus: bool = False


# -- one run -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up (a second Ctrl-C must not cut the cleanup short)."""
    try:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals cannot be delivered here anyway
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class _Run:
    """One run's processes, ports, stores and result (see :func:`run_once`)."""

    def __init__(
        self, lab: LoadedLab, mode: str, options: LabOptions, progress: LiveProgress
    ) -> None:
        exp = lab.experiments
        self.lab, self.mode, self.options, self.progress = lab, mode, options, progress
        self.duration = exp.load.quick_duration if options.quick else exp.load.duration
        self.dir = (options.out / f"policies-{mode}").resolve()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        (self.dir / "logs").mkdir(parents=True)
        self.store_path = self.dir / "store.db"
        SLIStore(self.store_path).close()  # create it (WAL) before the services open it
        self.targets = targets(exp)
        self.instances = {s: instance_names(s, v) for s, v in exp.system.items()}
        self.names = [n for ns in self.instances.values() for n in ns]
        self.ports = {n: free_port() for n in self.names}
        self.route_ports = {
            n: free_port() for s in self.instances if s in self.targets for n in self.instances[s]
        }
        self.sup = Supervisor()
        self.proxy_url = self._add_proxy()
        # The Buttress run with healing: its services are children of buttress.supervise, and the
        # remediation: rules switch the modes: the api reads; otherwise the lab's plain starter.
        healing = exp.healing if mode == "on" else None
        self.control = ControlFiles(self.dir / "control")
        self.services: Any = SupervisedServices(healing) if healing is not None else self.sup
        self.healer: Healer | None = None
        if healing is not None and lab.spec.remediation:
            slos: dict[str, tuple[str, float]] = {}
            for slo in lab.spec.slos:
                kind = slo_kind(slo, exp.load.requests)
                if kind is not None and kind not in slos:
                    slos[kind] = (slo.name, slo.objective / 100)
            self.healer = Healer(lab, self.dir, healing.burn, slos)
        self.ready_urls: dict[str, str] = {}
        for service in self.instances:
            self._add_service(service)
        self.plan: FaultPlan | None = None
        self.cleaned = False
        self.result: dict[str, Any] = {
            "mode": mode,
            "duration": self.duration,
            "dir": str(self.dir),
            "phases": {},
        }
        self.recorder = SLIRecorder(
            SLIStore(self.dir / "client.db"), lab.spec.slos, flush_every=1.0
        )
        self.prom = PromStack.for_run(lab, self.dir, self.ports) if options.prometheus else None

    def _add_proxy(self) -> str:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self.sup.add(
            "proxy",
            [sys.executable, "-m", "buttress.cli", "proxy", "serve", "--port", str(port)],
            port=port,
            log=self.dir / "logs" / "proxy.log",
            ready_url=f"{url}/version",
        )
        return url

    def _add_service(self, service: str) -> None:
        svc = self.lab.experiments.system[service]
        upstreams = {
            dep: [f"http://127.0.0.1:{self.route_ports[n]}" for n in self.instances[dep]]
            for dep in svc.depends_on
        }
        for n in self.instances[service]:
            port = str(self.ports[n])
            env = {  # what buttress.lab.service reads on the other side
                lab_env.SPEC: str(self.lab.file.resolve()),
                lab_env.POLICIES: self.mode,
                lab_env.UPSTREAMS: json.dumps(upstreams),
                lab_env.STORE: str(self.store_path),
                lab_env.DATA: str(self.dir / "data" / n),
                lab_env.INSTANCE: n,
                lab_env.CONTROL: str(self.control.path(n)),
                "PYTHONUNBUFFERED": "1",
                **svc.env,
            }
            if self.healer is not None:
                env[lab_env.MODE_STATE] = str(self.healer.mode_file)
            uvicorn = ["--app-dir", str(self.lab.app_dir), "--host", "127.0.0.1", "--port", port]
            quiet = [
                "--log-level",
                "warning",
                "--no-access-log",
                "--timeout-graceful-shutdown",
                "1",
            ]
            self.ready_urls[n] = f"http://127.0.0.1:{port}{svc.ready}"
            extra = {"service": service} if self.services is not self.sup else {}
            self.services.add(
                n,
                [sys.executable, "-m", "uvicorn", *uvicorn, *quiet, svc.app],
                port=self.ports[n],
                log=self.dir / "logs" / f"{n}.log",
                ready_url=self.ready_urls[n],
                env=env,
                **extra,
            )

    def _phase(self, name: str, mark: float) -> float:
        self.result["phases"][name] = round(time.monotonic() - mark, 2)
        return time.monotonic()

    def start(self) -> None:
        """Start every process at once (services call their dependencies only when asked), then
        create the proxy's routes and wait until every service is ready."""
        mark = time.monotonic()
        supervised = self.services is not self.sup
        for n in ("proxy", *([] if supervised else self.names)):
            self.sup.spawn(n)
        if self.prom is not None:
            self.prom.spawn()
        self.sup.wait_ready({"proxy": 15.0})
        from buttress.chaos.client import Client

        with Client(self.proxy_url) as client:
            client.populate(
                [
                    {
                        "name": n,
                        "listen": f"127.0.0.1:{port}",
                        "upstream": f"127.0.0.1:{self.ports[n]}",
                        "enabled": True,
                    }
                    for n, port in self.route_ports.items()
                ]
            )
        system = self.lab.experiments.system
        timeouts = {n: system[s].start_timeout for s, ns in self.instances.items() for n in ns}
        if supervised:  # one child after the other, each once the one before is ready
            self.services.start(sum(timeouts.values()))
        else:
            self.sup.wait_ready(timeouts)
        if self.prom is not None:
            self.prom.wait_ready()
        self._phase("start", mark)
        self.progress.message(
            f"{len(self.names)} services and the fault proxy are up "
            f"({', '.join(f'{n}:{self.ports[n]}' for n in self.names)})"
        )

    def _observer(self) -> Callable[[Sample], None]:
        """Records each sample into the driver's store, as the SLIs of the SLOs over its kind."""
        routes: dict[str, list[tuple[str, float | None]]] = {}
        for slo in self.lab.spec.slos:
            kind = slo_kind(slo, self.lab.experiments.load.requests)
            if kind is not None:
                thr = slo.sli.threshold if isinstance(slo.sli, LatencySLI) else None
                routes.setdefault(kind, []).append((slo.name, thr))
        record = self.recorder.record

        def observe(sample: Sample) -> None:
            for name, thr in routes.get(sample.kind, ()):
                good = sample.good and (thr is None or sample.latency <= thr)
                record(name, 1 if good else 0, 1)

        return observe

    def drive(self) -> None:
        """Drive the load while the plan applies its faults, read every order back, clean up and
        measure."""
        mark = time.monotonic()
        drilling = self._drilling()
        plan = self.plan = self._fault_plan(None if drilling is None else drilling[0])
        history = History()
        wall0, samples = self._load(plan, history)
        if drilling is not None:
            drilling[1].stop()
        self.progress.close()
        mark = self._phase("load", mark)
        self.result["wall_start"] = wall0
        # Bursts are faults too: their times are the plan's.
        for a in plan.faults:
            if a.fault.kind == "burst":
                a.applied_at, a.removed_at = a.planned
        if self.prom is not None:  # before anything stops: what Prometheus and Alertmanager saw
            self.result["prometheus"] = self.prom.collect(
                wall0, self.lab, samples, plan, self.duration
            )
        lab, ports, instances, log = self.lab, self.ports, self.instances, self.progress.message
        pending = read_final(lab, ports, instances, history)
        entry_ports = {s: ports[ns[0]] for s, ns in instances.items()}
        self.result["audit"] = read_chains(lab, entry_ports, log)
        placement = read_placement(lab, ports, instances, log)
        attempts = read_attempts(lab, ports, instances, log)
        effects = read_effects(lab, ports, instances)
        history.dump(self.dir / "history.jsonl")
        with _no_interrupts():
            self.result["cleanup"] = plan.cleanup()
            # A graceful stop: the services flush their SLI counts and states as they exit.
            self.result["killed_at_stop"] = self._stop_all()
            self.recorder.close()
            self.cleaned = True
        self._phase("stop", mark)
        if isinstance(self.services, SupervisedServices):
            events = self.services.events
            remediation = Healer.none() if self.healer is None else self.healer.figures()
            healing = {"restarts": restarts(events), "events": events} | remediation
            self.result["healing"] = healing
        self.result.update(
            figures(
                self.lab,
                samples,
                plan,
                history,
                stores=(self.store_path, self.dir / "client.db"),
                wall0=wall0,
                duration=self.duration,
                attempts=attempts,
                pending=pending,
                effects=effects,
            )
        )
        self._more_figures(samples, plan, placement, wall0, drilling)

    def _drilling(self) -> tuple[DataLoss, Backups] | None:
        """The drill's damage and its backup schedule (started), when the plan loses data."""
        drill = self.lab.experiments.drill
        if drill is None or not any(f.kind == "data_loss" for f in self.lab.experiments.plan):
            return None
        db = self.dir / "data" / drill.target / drill.file
        data_loss = DataLoss({drill.target: db}, self.dir / "backups")
        return data_loss, Backups(db, data_loss.backups, drill.backup_every).start()

    def _fault_plan(self, data_loss: DataLoss | None) -> FaultPlan:
        exp = self.lab.experiments
        return FaultPlan(
            exp.plan,
            scale=self.duration / exp.load.duration,
            proxy_url=self.proxy_url,
            routes=self.targets,
            supervisor=self.services,
            log=self.progress.message,
            data_loss=data_loss,
            control=self.control,
            ready_urls=self.ready_urls,
        )

    def _load(self, plan: FaultPlan, history: History) -> tuple[float, list[Any]]:
        """Run the load driver against the entry service while the plan runs: the wall-clock
        start and the driver's samples."""
        exp, duration = self.lab.experiments, self.duration
        scale = duration / exp.load.duration
        bursts = [
            Burst(f.target, *scaled(f, scale), float(f.rate or 0))
            for f in exp.plan
            if f.kind == "burst"
        ]
        driver = LoadDriver(
            f"http://127.0.0.1:{self.ports[self.instances[exp.load.entry][0]]}",
            exp.load,
            duration=duration,
            history=history,
            bursts=bursts,
            label=f"{self.mode}-{self.options.seed}",
            seed=self.options.seed,
            observe=self._observer(),
        )
        wall0 = time.time()
        if isinstance(self.services, SupervisedServices):
            self.services.wall0 = wall0
        samples = asyncio.run(
            _drive(driver, plan, self.progress, duration, bursts, healer=self.healer)
        )
        return wall0, samples

    def _more_figures(
        self,
        samples: list[Any],
        plan: FaultPlan,
        placement: Any,
        wall0: float,
        drilling: tuple[DataLoss, Backups] | None,
    ) -> None:
        """The figures of the optional features: shedding, service recovery, tenants, drill."""
        self.result["shed"] = shed_figures(samples, self.lab.experiments.load.requests)
        self.result["service_recovery"] = recovery_figures(self.lab, samples, plan.faults)
        add_tenant_figures(self.lab, self.result, samples, placement)
        drill = self.lab.experiments.drill
        if drilling is not None and drill is not None:
            data_loss, backups = drilling
            self.result["drill"] = drill_figures(
                self.lab,
                self.result,
                samples,
                wall0=wall0,
                restored=data_loss.restored.get(drill.target),
                backups=backups,
            )

    def _stop_all(self) -> list[str]:
        """Stop the services (supervised ones by their supervisor), then the proxy."""
        killed: list[str] = []
        if self.services is not self.sup:
            killed = self.services.stop_all()
        killed += self.sup.stop_all()
        return killed + (self.prom.stop() if self.prom is not None else [])

    def abort(self) -> None:
        """After a failure or an interrupt: remove the faults still applied, stop everything."""
        progress, plan, sup = self.progress, self.plan, self.sup
        with _no_interrupts():
            progress.close()
            if plan is not None and sup.processes["proxy"].alive:
                done = plan.cleanup()
                self.result["cleanup"] = done
                progress.message(f"cleanup: {done['removed']} fault(s) removed; {done['detail']}")
            stopped = len(sup.pids()) + (0 if self.services is sup else len(self.services.pids()))
            stopped += len(self.prom.pids()) if self.prom is not None else 0
            self.result["killed_at_stop"] = self._stop_all()
            progress.message(f"cleanup: {stopped} process(es) stopped")
            self.recorder.close()


def run_once(
    lab: LoadedLab, mode: str, options: LabOptions, *, progress: LiveProgress
) -> dict[str, Any]:
    """One run of the plan in ``mode`` (one of :data:`MODES`); see the module docstring."""
    run = _Run(lab, mode, options, progress)
    try:
        run.start()
        run.drive()
    finally:
        if not run.cleaned:
            run.abort()
    return run.result


async def _drive(
    driver: LoadDriver,
    plan: FaultPlan,
    progress: LiveProgress,
    duration: float,
    bursts: list[Burst],
    *,
    healer: Healer | None = None,
) -> list[Sample]:
    def tick() -> None:
        t = driver.now()
        st = window_stats(driver.samples, t - 3.0)
        faults = plan.active() + [f"burst:{b.kind}" for b in bursts if b.start <= t < b.end]
        progress.show(
            f"{min(t, duration):5.1f}/{duration:g}s  {st['count'] / 3:5.1f} req/s  "
            f"good {st['good']:7.2%}  p99 {st['p99'] * 1000:6.0f} ms  "
            f"lag p99 {st['lag_p99'] * 1000:4.0f} ms  "
            f"faults: {', '.join(faults) or '-'}"
        )

    t0 = time.monotonic()
    plan_task = asyncio.create_task(plan.run(t0))
    tasks = [plan_task]
    if healer is not None:
        tasks.append(asyncio.create_task(healer.run(driver.samples, t0, duration)))
    try:
        samples = await driver.run(tick)
        await plan_task
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return samples


# -- the lab -----------------------------------------------------------------------------------


def run_lab(
    path: str | Path,
    options: LabOptions,
    *,
    stream: TextIO = sys.stderr,
    echo: Callable[[str], None] = print,
    drill: bool = False,
) -> dict[str, Any]:
    """The whole lab (see the module docstring); returns the result written to ``result.json``.
    With ``drill``, the disaster-recovery drill of ``experiments.drill`` instead (one run with
    the policies: :mod:`buttress.lab.system.drill`).

    Raises :class:`~buttress.errors.SpecError` / :class:`LabError` for bad input and
    :class:`~buttress.lab.system.supervisor.ServiceFailed` when a process does not start;
    KeyboardInterrupt (Ctrl-C, and SIGTERM, turned into one) after cleaning up."""
    started = time.monotonic()
    lab = load_lab(path)
    if drill:
        lab = drill_lab(lab)
        options = dataclasses.replace(options, modes=("on",))
    elif options.modes is None:  # the file's experiments.runs, in the lab's order
        options = dataclasses.replace(options, modes=lab.experiments.run_modes())
    for mode in options.modes or ():
        if mode not in MODES:
            raise LabError(f"unknown run {mode!r}: {', '.join(MODE_NAMES.values())}")
    options.out.mkdir(parents=True, exist_ok=True)
    assessment = assess_architecture(lab)
    if assessment is not None:
        for j in assessment["journeys"]:
            echo(
                f"assessment: journey {j['name']}: {j['availability']:.4%} available "
                f"(target {j['target']:.2%}, {'met' if j['meets_target'] else 'NOT met'}); "
                f"{len(j['spofs'])} single point(s) of failure"
            )
    previous = None
    with contextlib.suppress(ValueError):  # only the main thread may set handlers

        def term(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, term)
    runs: dict[str, dict[str, Any]] = {}
    try:
        for mode in options.modes or ():
            progress = LiveProgress(stream, f"[{MODE_NAMES[mode]}]")
            runs[mode] = run_once(lab, mode, options, progress=progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    hypotheses = check_hypotheses(lab, runs) + supervised_hypotheses(lab, runs)
    hypotheses += alert_hypotheses(runs) + tenant_hypotheses(lab, runs)
    hypotheses += priority_hypotheses(lab, runs)
    hypotheses += audit_hypotheses(lab, runs) + recovery_hypotheses(lab, runs)
    if drill:
        hypotheses += drill_hypotheses(runs["on"]["drill"])
    for mode, run in runs.items():
        run["verdict"] = overall_verdict([h for h in hypotheses if h.get("mode") == mode])
    verdict = overall_verdict(hypotheses)
    result: dict[str, Any] = {
        "file": str(lab.file),
        "quick": options.quick,
        "seed": options.seed,
        "drill": runs["on"].get("drill") if drill else None,
        "assessment": assessment,
        "runs": runs,
        "hypotheses": hypotheses,
        "verdict": verdict,
        "passed": verdict == "passed",
        "elapsed": round(time.monotonic() - started, 2),
    }
    from .report import notes, render_html, rows

    # The table and the sentences the console prints, for the dashboard's lab section.
    result["side_by_side"] = rows(result)
    result["notes"] = notes(result)
    report_path = options.out / "report.html"
    report_path.write_text(render_html(lab, result), encoding="utf-8")
    result["report"] = str(report_path)
    (options.out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
