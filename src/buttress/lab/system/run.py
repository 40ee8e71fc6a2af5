"""``buttress lab PATH``: the whole lab, and one run of it.

The lab, in order:

1. load ``PATH/reliability.yaml`` (or ``PATH`` itself) and check its ``experiments:`` section
   against the rest (services, request kinds, SLO names): errors name file, line and field;
2. assess the ``architecture:`` section (:func:`buttress.assess.assess`);
3. run the plan with the policies on, then again with the policies off (:func:`run_once`);
4. check the hypotheses, print the two runs side by side, write ``report.html`` and
   ``result.json`` into the output directory.

One run: start the fault proxy, create one route per instance that something depends on, start
every service (in parallel; they call their dependencies only when asked), wait until each answers
its readiness path, then drive the load while the plan applies its faults, read every stored order
back, check the history, evaluate the SLOs from the store the services recorded into, and stop
everything.  Whatever happens (a failed start, an error, Ctrl-C, SIGTERM) the faults still applied
are removed and verified gone, then every process is stopped.

**Budget consumed per fault.**  For an SLO over request kind ``k`` with objective ``o``, the share
of the run's error budget a fault consumed is ``bad_k(fault) / (total_k(run) * (1 - o))``, where
``bad_k(fault)`` counts the bad requests of kind ``k`` that arrived while the fault was applied
(from its application to its removal plus the client timeout, and at most until the next fault
is applied, so no request is charged to two faults).

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
import json
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from buttress.chaos.checker import History, check_set
from buttress.errors import ButtressError
from buttress.lab.errors import LabError
from buttress.slo import SLIRecorder, SLIStore
from buttress.slo import math as slomath
from buttress.slo.evaluator import evaluate
from buttress.slo.spec import LatencySLI, RatioSLI, SLOSpec, WindowSLI
from buttress.spec import ReliabilitySpec, load_spec

from .driver import Burst, LoadDriver, Sample, window_stats
from .plan import FaultPlan, scaled
from .spec import ExperimentsSpec, instance_names
from .supervisor import Supervisor, free_port

__all__ = ["LabOptions", "LoadedLab", "load_lab", "run_lab", "run_once"]

MODES = ("on", "off")


@dataclass(frozen=True)
class LoadedLab:
    """A checked lab: the spec, its ``experiments:`` section, the file and the app directory."""

    spec: ReliabilitySpec
    experiments: ExperimentsSpec
    file: Path
    app_dir: Path


@dataclass(frozen=True)
class LabOptions:
    """How to run: ``quick`` (the short plan), ``out`` (where files go), ``seed``."""

    quick: bool = False
    out: Path = Path("lab-report")
    seed: int = 1
    modes: tuple[str, ...] = MODES


def load_lab(path: str | Path) -> LoadedLab:
    """Load ``path`` (a directory holding ``reliability.yaml``, or the file) and cross-check its
    ``experiments:`` section; every problem raises :class:`~buttress.errors.SpecError` or
    :class:`~buttress.lab.errors.LabError` naming the file."""
    p = Path(path)
    file = p / "reliability.yaml" if p.is_dir() else p
    if not file.exists():
        raise LabError(f"{path}: no such file or directory (expected a reliability.yaml)")
    spec = load_spec(file)
    exp = spec.experiments
    if exp is None:
        raise LabError(f"{file}: no 'experiments:' section, so there is no system to run")
    doc = spec.document
    assert doc is not None

    def err(loc: tuple[str | int, ...], message: str) -> ButtressError:
        return doc.error(("experiments", *loc), message)

    services = exp.system
    for name, svc in services.items():
        for i, dep in enumerate(svc.depends_on):
            if dep not in services:
                raise err(("system", name, "depends_on", i), f"unknown service {dep!r}")
            if dep == name:
                raise err(("system", name, "depends_on", i), "a service cannot depend on itself")
    if exp.load.entry not in services:
        raise err(("load", "entry"), f"unknown service {exp.load.entry!r}")
    fr = exp.load.final_read
    if fr is not None and fr.service not in services:
        raise err(("load", "final_read", "service"), f"unknown service {fr.service!r}")
    if (
        any(r.order for r in exp.load.requests.values())
        and fr is None
        and (exp.hypotheses.nothing_lost)
    ):
        raise err(("load",), "requests place orders: add final_read: so they can be checked")
    targets = _targets(exp)
    seen: set[str] = set()
    for i, f in enumerate(exp.plan):
        if f.name in seen:
            raise err(("plan", i, "name"), f"two faults named {f.name!r}")
        seen.add(f.name)
        if f.kind == "burst":
            if f.target not in exp.load.requests:
                known = ", ".join(sorted(exp.load.requests))
                raise err(("plan", i, "target"), f"unknown request kind {f.target!r} ({known})")
        elif f.kind == "kill":
            instances = {n for s, v in services.items() for n in instance_names(s, v)}
            if f.target not in instances:
                raise err(
                    ("plan", i, "target"),
                    f"unknown instance {f.target!r} (known: {', '.join(sorted(instances))})",
                )
        elif f.target not in targets:
            known = ", ".join(sorted(targets)) or "none: no service has dependents"
            raise err(
                ("plan", i, "target"),
                f"{f.target!r} is not behind the fault proxy (known: {known})",
            )
        if f.at + f.duration > exp.load.duration:
            raise err(("plan", i, "duration"), "the fault ends after the run (load.duration)")
    slo_names = {s.name for s in spec.slos}
    for name in exp.hypotheses.slos:
        if name not in slo_names:
            raise err(("hypotheses", "slos", name), f"no SLO named {name!r} in slos:")
    return LoadedLab(spec, exp, file, file.parent.resolve())


def _targets(exp: ExperimentsSpec) -> dict[str, list[str]]:
    """Fault targets reachable through the proxy: each depended-on instance and service."""
    out: dict[str, list[str]] = {}
    for name, svc in exp.system.items():
        if any(name in s.depends_on for s in exp.system.values()):
            names = instance_names(name, svc)
            out[name] = names
            for n in names:
                out[n] = [n]
    return out


# -- progress ----------------------------------------------------------------------------------


class LiveProgress:
    """A live status line on ``stream``: redrawn in place on a terminal, one line every 5 s
    elsewhere."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -math.inf

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"\r\033[K{self.label} {text}")
            self.stream.flush()
        elif time.monotonic() - self._last >= 5.0:
            self._last = time.monotonic()
            self.stream.write(f"{self.label} {text}\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"{self.label} {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()


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


def _slo_kind(slo: SLOSpec, kinds: dict[str, Any]) -> str | None:
    sli = slo.sli.of if isinstance(slo.sli, WindowSLI) else slo.sli
    pipe = sli.pipeline if isinstance(sli, RatioSLI | LatencySLI) else None
    if pipe in kinds:
        return pipe
    return slo.name if slo.name in kinds else None


def run_once(
    lab: LoadedLab,
    mode: str,
    options: LabOptions,
    *,
    progress: LiveProgress,
) -> dict[str, Any]:
    """One run of the plan with the policies ``mode`` ("on" or "off"); see the module docstring."""
    exp = lab.experiments
    duration = exp.load.quick_duration if options.quick else exp.load.duration
    scale = duration / exp.load.duration
    run_dir = (options.out / f"policies-{mode}").resolve()
    if run_dir.exists():
        shutil.rmtree(run_dir)
    (run_dir / "logs").mkdir(parents=True)
    store_path = run_dir / "store.db"
    SLIStore(store_path).close()  # create it (WAL) before the services open it
    py = sys.executable
    sup = Supervisor()
    proxy_port = free_port()
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    sup.add(
        "proxy",
        [py, "-m", "buttress.cli", "proxy", "serve", "--port", str(proxy_port)],
        port=proxy_port,
        log=run_dir / "logs" / "proxy.log",
        ready_url=f"{proxy_url}/version",
    )
    targets = _targets(exp)
    instances: dict[str, list[str]] = {s: instance_names(s, v) for s, v in exp.system.items()}
    ports = {n: free_port() for names in instances.values() for n in names}
    route_ports = {n: free_port() for s in instances if s in targets for n in instances[s]}
    for service, names in instances.items():
        svc = exp.system[service]
        upstreams = {
            dep: [f"http://127.0.0.1:{route_ports[n]}" for n in instances[dep]]
            for dep in svc.depends_on
        }
        for n in names:
            env = {
                "BUTTRESS_LAB_SPEC": str(lab.file.resolve()),
                "BUTTRESS_LAB_POLICIES": mode,
                "BUTTRESS_LAB_UPSTREAMS": json.dumps(upstreams),
                "BUTTRESS_LAB_STORE": str(store_path),
                "BUTTRESS_LAB_DATA": str(run_dir / "data" / n),
                "BUTTRESS_LAB_INSTANCE": n,
                "PYTHONUNBUFFERED": "1",
                **svc.env,
            }
            sup.add(
                n,
                [
                    py,
                    "-m",
                    "uvicorn",
                    "--app-dir",
                    str(lab.app_dir),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports[n]),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                    "--timeout-graceful-shutdown",
                    "1",
                    svc.app,
                ],
                port=ports[n],
                log=run_dir / "logs" / f"{n}.log",
                ready_url=f"http://127.0.0.1:{ports[n]}{svc.ready}",
                env=env,
            )
    plan: FaultPlan | None = None
    result: dict[str, Any] = {"mode": mode, "duration": duration, "dir": str(run_dir)}
    names = [n for ns in instances.values() for n in ns]
    recorder = SLIRecorder(SLIStore(run_dir / "client.db"), lab.spec.slos, flush_every=1.0)
    routes_of_kind: dict[str, list[tuple[str, float | None]]] = {}
    for slo in lab.spec.slos:
        kind = _slo_kind(slo, exp.load.requests)
        if kind is not None:
            thr = slo.sli.threshold if isinstance(slo.sli, LatencySLI) else None
            routes_of_kind.setdefault(kind, []).append((slo.name, thr))

    def observe(sample: Sample) -> None:
        for name, thr in routes_of_kind.get(sample.kind, ()):
            good = sample.good and (thr is None or sample.latency <= thr)
            recorder.record(name, 1 if good else 0, 1)

    cleaned = False
    phases: dict[str, float] = {}
    result["phases"] = phases
    mark = time.monotonic()
    try:
        # Everything starts at once: services call their dependencies only when asked.
        for n in ("proxy", *names):
            sup.spawn(n)
        sup.wait_ready({"proxy": 15.0})
        from buttress.chaos.client import Client

        with Client(proxy_url) as client:
            client.populate(
                [
                    {
                        "name": n,
                        "listen": f"127.0.0.1:{route_ports[n]}",
                        "upstream": f"127.0.0.1:{ports[n]}",
                        "enabled": True,
                    }
                    for n in route_ports
                ]
            )
        sup.wait_ready({n: exp.system[s].start_timeout for s, ns in instances.items() for n in ns})
        phases["start"] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()
        progress.message(
            f"{len(names)} services and the fault proxy are up "
            f"({', '.join(f'{n}:{ports[n]}' for n in names)})"
        )
        plan = FaultPlan(
            exp.plan,
            scale=scale,
            proxy_url=proxy_url,
            routes=targets,
            supervisor=sup,
            log=progress.message,
        )
        bursts = [
            Burst(f.target, *scaled(f, scale), float(f.rate or 0))
            for f in exp.plan
            if f.kind == "burst"
        ]
        history = History()
        entry = instances[exp.load.entry][0]
        driver = LoadDriver(
            f"http://127.0.0.1:{ports[entry]}",
            exp.load,
            duration=duration,
            history=history,
            bursts=bursts,
            label=f"{mode}-{options.seed}",
            seed=options.seed,
            observe=observe,
        )
        wall0 = time.time()
        samples = asyncio.run(_drive(driver, plan, progress, duration, bursts))
        progress.close()
        phases["load"] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()
        result["wall_start"] = wall0
        # Bursts are faults too: their times are the plan's.
        for a in plan.faults:
            if a.fault.kind == "burst":
                a.applied_at, a.removed_at = a.planned
        fr = exp.load.final_read
        if fr is not None:
            rn = instances[fr.service][0]
            with httpx.Client(timeout=10.0) as c:
                r = c.get(f"http://127.0.0.1:{ports[rn]}{fr.path}")
                r.raise_for_status()
                history.final_read(r.json()[fr.field])
        history.dump(run_dir / "history.jsonl")
        with _no_interrupts():
            result["cleanup"] = plan.cleanup()
            # A graceful stop: the services flush their SLI counts and states as they exit.
            result["killed_at_stop"] = sup.stop_all()
            recorder.close()
            cleaned = True
        phases["stop"] = round(time.monotonic() - mark, 2)
        result.update(
            _figures(
                lab,
                samples,
                plan,
                history,
                store_path=store_path,
                client_path=run_dir / "client.db",
                wall0=wall0,
                duration=duration,
            )
        )
    finally:
        if not cleaned:
            with _no_interrupts():
                progress.close()
                if plan is not None and sup.processes["proxy"].alive:
                    done = plan.cleanup()
                    result["cleanup"] = done
                    progress.message(
                        f"cleanup: {done['removed']} fault(s) removed; {done['detail']}"
                    )
                stopped = len(sup.pids())
                result["killed_at_stop"] = sup.stop_all()
                progress.message(f"cleanup: {stopped} process(es) stopped")
                recorder.close()
    return result


async def _drive(
    driver: LoadDriver,
    plan: FaultPlan,
    progress: LiveProgress,
    duration: float,
    bursts: list[Burst],
) -> list[Sample]:
    def tick() -> None:
        t = driver.now()
        st = window_stats(driver.samples, t - 3.0)
        faults = plan.active() + [f"burst:{b.kind}" for b in bursts if b.start <= t < b.end]
        progress.show(
            f"{min(t, duration):5.1f}/{duration:g}s  {st['count'] / 3:5.1f} req/s  "
            f"good {st['good']:7.2%}  p99 {st['p99'] * 1000:6.0f} ms  "
            f"faults: {', '.join(faults) or '-'}"
        )

    t0 = time.monotonic()
    plan_task = asyncio.create_task(plan.run(t0))
    try:
        samples = await driver.run(tick)
        await plan_task
    finally:
        plan_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plan_task
    return samples


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def _figures(
    lab: LoadedLab,
    samples: list[Sample],
    plan: FaultPlan,
    history: History,
    *,
    store_path: Path,
    client_path: Path,
    wall0: float,
    duration: float,
) -> dict[str, Any]:
    exp = lab.experiments
    kinds = exp.load.requests
    timeout = exp.load.timeout
    requests: dict[str, Any] = {}
    for k in kinds:
        ks = [s for s in samples if s.kind == k]
        good = sum(s.good for s in ks)
        requests[k] = {
            "total": len(ks),
            "good": good,
            "bad": len(ks) - good,
            "good_ratio": good / len(ks) if ks else None,
            "p50": _percentile([s.latency for s in ks if s.good], 0.5),
            "p99": _percentile([s.latency for s in ks if s.good], 0.99),
        }
    # SLO verdicts from what the users saw (the driver's store); the services' own view beside.
    at = time.time() + 60
    with SLIStore(client_path) as store:
        statuses = evaluate(lab.spec.slos, store, at=at)
    with SLIStore(store_path) as store:
        served = evaluate(lab.spec.slos, store, at=at)
    slos: list[dict[str, Any]] = []
    for slo, st, sv in zip(lab.spec.slos, statuses, served, strict=True):
        kind = _slo_kind(slo, kinds)
        verdict = "no data" if not st.total else ("held" if st.budget_consumed <= 1 else "burned")
        slos.append(
            {
                "name": slo.name,
                "objective": slo.objective,
                "request_kind": kind,
                "good": st.good,
                "total": st.total,
                "sli": st.sli,
                "budget_consumed": st.budget_consumed,
                "verdict": verdict,
                "service_good": sv.good,
                "service_total": sv.total,
                "service_sli": sv.sli,
                "service_budget_consumed": sv.budget_consumed,
            }
        )
    faults: list[dict[str, Any]] = []
    starts = sorted(a.applied_at for a in plan.faults if a.applied_at is not None)
    for a in plan.faults:
        entry = a.to_json()
        per_slo: dict[str, float | None] = {}
        if a.applied_at is not None:
            lo = a.applied_at
            hi = (a.removed_at if a.removed_at is not None else duration) + timeout
            # A request is charged to one fault only: the window ends where the next one begins.
            hi = min([hi, *(t for t in starts if t > lo)])
            for s in slos:
                k = s["request_kind"]
                total = requests[k]["total"] if k else 0
                if not k or not total:
                    per_slo[s["name"]] = None
                    continue
                bad = sum(1 for x in samples if x.kind == k and not x.good and lo <= x.start < hi)
                ratio = 1 - s["objective"] / 100
                per_slo[s["name"]] = slomath.budget_consumed(bad, total, ratio)
        entry["budget_consumed"] = per_slo
        faults.append(entry)
    check = check_set(history)
    return {
        "requests": requests,
        "slos": slos,
        "faults": faults,
        "history": check.summary() | {"lost": check.summary()["lost"][:20]},
        "series": _series(samples, slos, kinds, duration),
        "breakers": _breakers(store_path, wall0),
    }


def _series(
    samples: list[Sample], slos: list[dict[str, Any]], kinds: dict[str, Any], duration: float
) -> dict[str, Any]:
    """Per-second series: bad fraction and p99 latency per request kind, and each SLO's
    cumulative budget consumption (client side)."""
    n = max(1, math.ceil(duration))
    out: dict[str, Any] = {"t": list(range(n))}
    buckets: dict[str, list[list[Sample]]] = {k: [[] for _ in range(n)] for k in kinds}
    for s in samples:
        i = min(n - 1, int(s.start))
        buckets[s.kind][i].append(s)
    for k, bs in buckets.items():
        out[f"{k}_error"] = [(sum(not s.good for s in b) / len(b)) if b else None for b in bs]
        out[f"{k}_p99"] = [
            _percentile([s.latency for s in b if s.status], 0.99) if b else None for b in bs
        ]
        out[f"{k}_rate"] = [len(b) for b in bs]
    for slo in slos:
        k = slo["request_kind"]
        if not k:
            continue
        total = sum(len(b) for b in buckets[k])
        ratio = 1 - slo["objective"] / 100
        cum = 0
        series: list[float | None] = []
        for b in buckets[k]:
            cum += sum(not s.good for s in b)
            series.append(slomath.budget_consumed(cum, total, ratio) if total else None)
        out[f"budget_{slo['name']}"] = series
    return out


def _breakers(store_path: Path, wall0: float) -> list[dict[str, Any]]:
    """Circuit-breaker state changes the services published into the store."""
    from buttress.dashboard.feed import FeedReader

    with FeedReader(store_path) as reader:
        events = reader.events(since=wall0 - 5, limit=5000)
    return [
        {
            "time": round(e.time - wall0, 3),
            "name": f"{e.scope}/{e.name}",
            "state": e.state,
            "source": e.source,
        }
        for e in events
        if e.policy_type == "circuit_breaker"
    ]


# -- the lab -----------------------------------------------------------------------------------


def _hypotheses(lab: LoadedLab, runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    hyp = lab.experiments.hypotheses
    out: list[dict[str, Any]] = []
    for name, expect in hyp.slos.items():
        for mode in runs:
            wanted = expect.policies_on if mode == "on" else expect.policies_off
            got = next(s["verdict"] for s in runs[mode]["slos"] if s["name"] == name)
            out.append(
                {
                    "hypothesis": f"SLO {name} {wanted} with policies {mode}",
                    "expected": wanted,
                    "observed": got,
                    "passed": wanted in ("any", got),
                }
            )
    if hyp.nothing_lost:
        for mode, run in runs.items():
            h = run["history"]
            out.append(
                {
                    "hypothesis": f"no acknowledged order lost with policies {mode}",
                    "expected": "0 lost",
                    "observed": (
                        "no final read"
                        if h["valid"] is None
                        else f"{h['lost_count']} lost of {h['acknowledged_count']} acknowledged"
                    ),
                    "passed": h["valid"] is True and h["lost_count"] == 0,
                }
            )
    return out


def _assessment(lab: LoadedLab) -> dict[str, Any] | None:
    arch = lab.spec.architecture
    if arch is None:
        return None
    from buttress.assess import assess
    from buttress.assess.system import System

    report = assess(System.from_spec(arch), source=str(lab.file))
    journeys = [
        {
            "name": j["name"],
            "target": j["target"],
            "availability": j["availability"],
            "meets_target": j["meets_target"],
            "downtime_minutes_per_month": j["downtime_minutes_per_month"],
            "spofs": [c.get("explanation", "") for c in j["spofs"]],
        }
        for j in report["journeys"]
    ]
    return {"journeys": journeys}


def run_lab(
    path: str | Path,
    options: LabOptions,
    *,
    stream: TextIO = sys.stderr,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole lab (see the module docstring); returns the result written to ``result.json``.

    Raises :class:`~buttress.errors.SpecError` / :class:`LabError` for bad input and
    :class:`~buttress.lab.system.supervisor.ServiceFailed` when a process does not start;
    KeyboardInterrupt (Ctrl-C, and SIGTERM, turned into one) after cleaning up."""
    started = time.monotonic()
    lab = load_lab(path)
    for mode in options.modes:
        if mode not in MODES:
            raise LabError(f"unknown mode {mode!r}: 'on' or 'off'")
    options.out.mkdir(parents=True, exist_ok=True)
    assessment = _assessment(lab)
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
        for mode in options.modes:
            progress = LiveProgress(stream, f"[policies {mode}]")
            runs[mode] = run_once(lab, mode, options, progress=progress)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    hypotheses = _hypotheses(lab, runs)
    result: dict[str, Any] = {
        "file": str(lab.file),
        "quick": options.quick,
        "seed": options.seed,
        "assessment": assessment,
        "runs": runs,
        "hypotheses": hypotheses,
        "passed": all(h["passed"] for h in hypotheses),
        "elapsed": round(time.monotonic() - started, 2),
    }
    from .report import render_html

    report_path = options.out / "report.html"
    report_path.write_text(render_html(lab, result), encoding="utf-8")
    result["report"] = str(report_path)
    (options.out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
