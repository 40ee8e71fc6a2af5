"""``buttress lab PATH --prometheus``: a real Prometheus and Alertmanager beside the services.

Per run, :class:`PromStack` starts three processes on free loopback ports, with the lab's own
:class:`~buttress.lab.system.supervisor.Supervisor` (their own sessions, killed with the lab even
by SIGKILL, stopped in every case):

* **Prometheus** (Debian's ``prometheus``): scrapes every instance's ``/metrics`` directly (not
  through the fault proxy: the monitoring path is not what the plan breaks) every
  :data:`~.alerts.SCRAPE_INTERVAL`, and evaluates the rules Buttress generates for the file's SLOs,
  time-compressed (:func:`~.alerts.lab_rules`), every :data:`~.alerts.EVALUATION_INTERVAL`;
* **Alertmanager** (Debian's ``prometheus-alertmanager``, clustering off): one route, grouped by
  alert, SLO and tier, sent at once (``group_wait: 0s``) to
* **Buttress's incident receiver** (``buttress incident serve``), whose store
  (``incidents.db``) stays in the run's directory with the configuration files, the rules and
  the logs (``prometheus/``).  Prometheus's TSDB and Alertmanager's state live in a temporary
  directory removed when the stack stops.

After the load, :meth:`PromStack.collect` reads from Prometheus's HTTP API the alerts that fired,
the SLI counter's samples and the rule groups' evaluation times, and compares them with the
embedded evaluator (:mod:`buttress.lab.system.alerts`); it reads the incidents the receiver
opened and, per fault, the time to detect it.

The binaries are found on ``PATH`` (``BUTTRESS_PROMETHEUS`` and ``BUTTRESS_ALERTMANAGER`` name
others); without them the lab stops before starting anything, naming the packages to install.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from buttress.lab.errors import LabError
from buttress.slo.rules import to_yaml
from buttress.slo.spec import SLOSpec
from buttress.telemetry.prometheus import SLI_EVENTS_TOTAL

from . import alerts
from .driver import Sample
from .figures import slo_kind
from .load import LoadedLab
from .plan import FaultPlan
from .spec import instance_names
from .supervisor import Supervisor, free_port

__all__ = ["ALERTMANAGER_ENV", "PACKAGES", "PROMETHEUS_ENV", "PromStack", "binaries"]

PROMETHEUS_ENV = "BUTTRESS_PROMETHEUS"
ALERTMANAGER_ENV = "BUTTRESS_ALERTMANAGER"
PACKAGES = ("prometheus", "prometheus-alertmanager")
"""Debian's packages holding the two binaries."""
Point = tuple[float, float]
SETTLE = 2.0
"""Seconds waited after the load, so the last evaluations and notifications get through."""


def binaries() -> tuple[str, str]:
    """The paths of ``prometheus`` and ``prometheus-alertmanager``; :class:`LabError` naming the
    Debian packages when one is missing."""
    found: list[str] = []
    missing: list[str] = []
    for name, env in zip(PACKAGES, (PROMETHEUS_ENV, ALERTMANAGER_ENV), strict=True):
        path = os.environ.get(env) or shutil.which(name) or f"/usr/bin/{name}"
        if os.path.isfile(path) and os.access(path, os.X_OK):
            found.append(path)
        else:
            missing.append(f"{name} ({path}; {env} names another)")
    if missing:
        raise LabError(
            f"buttress lab --prometheus needs {' and '.join(missing)}: install Debian's packages "
            f"with `sudo apt-get install {' '.join(PACKAGES)}` (scripts/sysdeps.sh does it), "
            "or run the lab without --prometheus"
        )
    return found[0], found[1]


class PromStack:
    """Prometheus, Alertmanager and the incident receiver for one run (see the module docstring).

    :param slos: the file's SLOs (their rules are generated, compressed).
    :param service: the file's service (the SLOs' default ``service`` label).
    :param targets: ``{instance: (service, port)}``, every instance to scrape.
    :param run_dir: the run's directory; files go to ``run_dir / "prometheus"``.
    """

    def __init__(
        self,
        slos: Sequence[SLOSpec],
        service: str,
        targets: dict[str, tuple[str, int]],
        run_dir: Path,
    ) -> None:
        prometheus, alertmanager = binaries()
        self.slos = list(slos)
        self.dir = run_dir / "prometheus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="buttress-lab-prom-"))
        self.incidents_path = self.dir / "incidents.db"
        self.ports = {n: free_port() for n in ("prometheus", "alertmanager", "receiver")}
        self.url = f"http://127.0.0.1:{self.ports['prometheus']}"
        self.sup = Supervisor()
        self.started = 0.0
        self._write_configs(service, targets)
        self._add(
            "receiver",
            [
                *(sys.executable, "-m", "buttress.cli", "incident", "serve"),
                *("--store", str(self.incidents_path), "--port", str(self.ports["receiver"])),
            ],
            "/healthz",
        )
        am = f"http://127.0.0.1:{self.ports['alertmanager']}"
        self._add(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.tmp / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                f"--web.external-url={am}",
                "--cluster.listen-address=",  # no gossip port on every interface
                "--log.level=warn",
            ],
            "/-/ready",
        )
        self._add(
            "prometheus",
            [
                prometheus,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
                f"--web.external-url={self.url}",
                "--rules.alert.resend-delay=1s",
                "--log.level=warn",
            ],
            "/-/ready",
        )

    @classmethod
    def for_run(cls, lab: LoadedLab, run_dir: Path, ports: dict[str, int]) -> PromStack:
        """The stack of one run of ``lab``: every instance of ``experiments.system`` scraped on
        its port (``ports``)."""
        system = lab.experiments.system
        scrape = {n: (s, ports[n]) for s, svc in system.items() for n in instance_names(s, svc)}
        return cls(lab.spec.slos, lab.spec.service or lab.file.parent.name, scrape, run_dir)

    def _add(self, name: str, argv: list[str], ready: str) -> None:
        port = self.ports[name]
        self.sup.add(
            name,
            argv,
            port=port,
            log=self.dir / f"{name}.log",
            ready_url=f"http://127.0.0.1:{port}{ready}",
        )

    def _write_configs(self, service: str, targets: dict[str, tuple[str, int]]) -> None:
        (self.dir / "rules.yml").write_text(
            to_yaml(alerts.lab_rules(self.slos, service)), encoding="utf-8"
        )
        jobs: dict[str, list[dict[str, Any]]] = {}
        for instance, (job, port) in targets.items():
            jobs.setdefault(job, []).append(
                {"targets": [f"127.0.0.1:{port}"], "labels": {"instance": instance}}
            )
        scrape, every = f"{alerts.SCRAPE_INTERVAL:g}s", f"{alerts.EVALUATION_INTERVAL:g}s"
        prometheus = {
            "global": {
                "scrape_interval": scrape,
                "scrape_timeout": scrape,
                "evaluation_interval": every,
            },
            "rule_files": [str(self.dir / "rules.yml")],
            "alerting": {
                "alertmanagers": [
                    {"static_configs": [{"targets": [f"127.0.0.1:{self.ports['alertmanager']}"]}]}
                ]
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": groups} for job, groups in jobs.items()
            ],
        }
        receiver = f"http://127.0.0.1:{self.ports['receiver']}/api/v1/alertmanager"
        alertmanager = {
            "route": {
                "receiver": "buttress",
                "group_by": ["alertname", "slo", "burn_tier"],
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {"name": "buttress", "webhook_configs": [{"url": receiver, "send_resolved": True}]}
            ],
        }
        for name, doc in (("prometheus.yml", prometheus), ("alertmanager.yml", alertmanager)):
            (self.dir / name).write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    # -- lifetime ----------------------------------------------------------------------------------

    def spawn(self) -> None:
        """Start the three processes (do not wait)."""
        self.started = time.time()
        for name in ("receiver", "alertmanager", "prometheus"):
            self.sup.spawn(name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the three answer their readiness paths, then until Prometheus has scraped
        every target once (so every SLI counter has a sample at 0 before the load)."""
        self.sup.wait_ready(dict.fromkeys(self.sup.processes, timeout))
        deadline = time.monotonic() + timeout
        while True:
            targets = self._get("/api/v1/targets")["activeTargets"]
            scraped = all(not t.get("lastScrape", "0001").startswith("0001") for t in targets)
            if targets and scraped and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                down = [t["labels"].get("instance") for t in targets if t["health"] != "up"]
                raise LabError(
                    f"Prometheus did not scrape every service within {timeout:g}s: "
                    f"{', '.join(map(str, down)) or 'no target'} down (logs in {self.dir})"
                )
            time.sleep(0.2)

    def pids(self) -> dict[str, int]:
        return self.sup.pids()

    def stop(self) -> list[str]:
        """Stop the three processes (SIGTERM, then SIGKILL after 5 s), remove the temporary
        directory; returns the names that needed SIGKILL."""
        killed = self.sup.stop_all(grace=5.0)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return killed

    # -- reading -----------------------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> Any:
        with httpx.Client(timeout=10.0) as client:
            r = client.get(f"{self.url}{path}", params=params)
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise LabError(f"Prometheus {path} {params}: HTTP {r.status_code} {body}")
        return body["data"]

    def series(self, query: str, at: float) -> list[tuple[dict[str, str], list[Point]]]:
        """The raw samples of a range-vector ``query`` at ``at``: ``(labels, [(time, value)])``."""
        data = self._get("/api/v1/query", query=query, time=f"{at:.3f}")
        return [
            (dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]])
            for r in data["result"]
        ]

    def collect(
        self,
        wall0: float,
        lab: LoadedLab,
        samples: Sequence[Sample],
        plan: FaultPlan,
        duration: float,
    ) -> dict[str, Any]:
        """What Prometheus and the receiver saw, compared with the embedded evaluator: the
        ``prometheus`` entry of the run's result (see :mod:`buttress.lab.system.alerts`);
        times are seconds from ``wall0``, the start of the load."""
        kinds = {s.name: slo_kind(s, lab.experiments.load.requests) for s in self.slos}
        n = math.ceil(duration)
        users = alerts.embedded_firing(
            self.slos, alerts.users_counts(self.slos, samples, kinds, n), n
        )
        time.sleep(SETTLE)
        out = self.compared(wall0, users=users)
        incidents = self.incidents(wall0)
        faults = [a.to_json() for a in plan.faults]
        return out | {
            "incidents": incidents,
            "detection": detection(faults, incidents, duration),
            "dir": str(self.dir),
        }

    def compared(
        self, wall0: float, *, users: dict[tuple[str, str], list[int]] | None = None
    ) -> dict[str, Any]:
        """The alerts Prometheus fired since ``wall0`` beside the embedded evaluator's on the
        SLI counter's samples Prometheus scraped (:func:`~.alerts.compare`; ``users``: the users'
        view, steps per alert), with the settings and the span compared."""
        now = time.time()
        rng = f"[{math.ceil(now - self.started) + 5}s]"
        fired: dict[tuple[str, str], list[float]] = {}
        for labels, values in self.series(f'ALERTS{{alertstate="firing"}}{rng}', now):
            key = (labels.get("slo", ""), labels.get("burn_tier", ""))
            fired.setdefault(key, []).extend(t - wall0 for t, _ in values)
        phase, last = self._phases(rng, now, wall0)
        end = last - alerts.EVALUATION_INTERVAL  # the last evaluation may have missed a scrape
        counts = self._counts(rng, now, wall0, phase, end)
        embedded: dict[tuple[str, str], list[int]] = {}
        for slo in self.slos:
            if slo.name in counts:
                steps = alerts.steps_of(phase[slo.name], end)
                one = {slo.name: counts[slo.name]}
                embedded |= alerts.embedded_firing([slo], one, steps)
        rows = alerts.compare(
            self.slos,
            prometheus={k: [t for t in v if t <= end] for k, v in fired.items()},
            embedded=embedded,
            users=users or {},
            phase=phase,
            end=end,
        )
        return {
            "factor": alerts.FACTOR,
            "scrape_interval": alerts.SCRAPE_INTERVAL,
            "evaluation_interval": alerts.EVALUATION_INTERVAL,
            "tolerance": alerts.TOLERANCE,
            "compared_until": round(end, 2),
            "phase": {k: round(v, 3) for k, v in phase.items()},
            "alerts": rows,
        }

    def _phases(self, rng: str, now: float, wall0: float) -> tuple[dict[str, float], float]:
        """Per SLO, where its embedded steps fall (s from ``wall0``): one interval before the
        first evaluation of its rule group at or after the start, so the step at 0 sees nothing;
        and the last evaluation of every group."""
        phase: dict[str, float] = {}
        last = 0.0
        for labels, values in self.series(f"slo:objective:ratio{rng}", now):
            times = [t - wall0 for t, _ in values]
            if not times:
                continue
            p = times[-1] % alerts.EVALUATION_INTERVAL
            phase[labels.get("slo", "")] = p - alerts.EVALUATION_INTERVAL
            last = max(last, times[-1])
        return phase, last

    def _counts(
        self, rng: str, now: float, wall0: float, phase: dict[str, float], end: float
    ) -> dict[str, tuple[list[int], list[int]]]:
        """Per SLO, good and total events per embedded step, from the increments of the SLI
        counter between consecutive scrapes: an increment scraped at ``t`` belongs to the first
        evaluation at or after ``t`` (step ``ceil(t - phase)``, stored as count ``step - 1``)."""
        out: dict[str, tuple[list[int], list[int]]] = {}
        for labels, values in self.series(f"{SLI_EVENTS_TOTAL}{rng}", now):
            name = labels.get("sli", "")
            if name not in phase:
                continue
            n = alerts.steps_of(phase[name], end) + 1
            good, total = out.setdefault(name, ([0] * n, [0] * n))
            for (_, before), (t, value) in itertools.pairwise(values):
                step = math.ceil(t - wall0 - phase[name])
                increase = value - before if value >= before else value  # a counter reset
                if 1 <= step <= n:
                    total[step - 1] += round(increase)
                    if labels.get("outcome") == "good":
                        good[step - 1] += round(increase)
        return out

    def incidents(self, wall0: float) -> list[dict[str, Any]]:
        """The incidents the receiver opened, oldest first, times in seconds from ``wall0``."""
        from buttress.incident import IncidentStore

        def rel(t: float | None) -> float | None:
            return None if t is None else round(t - wall0, 2)

        with IncidentStore(self.incidents_path) as store:
            found = store.incidents(limit=10_000)
        return [
            {
                "id": i.id,
                "title": i.title,
                "slo": i.labels.get("slo"),
                "tier": i.labels.get("burn_tier"),
                "severity": i.severity,
                "state": i.state,
                "started": rel(i.started),
                "detected": rel(i.detected),
                "resolved": rel(i.resolved),
                "notifications": i.notifications,
            }
            for i in sorted(found, key=lambda i: i.id)
        ]


def detection(
    faults: Sequence[dict[str, Any]], incidents: Sequence[dict[str, Any]], duration: float
) -> list[dict[str, Any]]:
    """Per fault applied: the first incident the receiver opened from its application to the
    next fault's (or the end of the run), the time to detect it (s), and the incidents already
    open when it was applied (an open incident absorbs the alerts of its group: no new one)."""
    applied = sorted(
        (f for f in faults if f.get("applied_at") is not None), key=lambda f: f["applied_at"]
    )
    out = []
    for i, f in enumerate(applied):
        lo = float(f["applied_at"])
        hi = float(applied[i + 1]["applied_at"]) if i + 1 < len(applied) else duration + SETTLE
        first = next(
            (x for x in incidents if x["detected"] is not None and lo <= x["detected"] < hi), None
        )
        still = [
            x["id"]
            for x in incidents
            if x["detected"] is not None
            and x["detected"] < lo
            and (x["resolved"] is None or x["resolved"] > lo)
        ]
        out.append(
            {
                "fault": f["name"],
                "applied_at": round(lo, 2),
                "open": still,
                "incident": None if first is None else first["id"],
                "alert": None if first is None else f"{first['title']} ({first['tier']})",
                "detected": None if first is None else first["detected"],
                "time_to_detect": None if first is None else round(first["detected"] - lo, 2),
            }
        )
    return out
