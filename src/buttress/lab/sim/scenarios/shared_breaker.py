"""The shared-breaker scenario: a fleet of replicas calling one failing dependency.

The model (defaults of :class:`SharedBreakerParams`):

* **Replicas.**  4 real processes, each with its own :class:`~buttress.CircuitBreaker`
  (``minimum_calls = window_size = 10``, failure-rate threshold 50%, a 60 s break).
* **Dependency.**  Fails every call (``ConnectionError``), from the start.
* **Traffic.**  30 rounds; in each round every replica makes one call, then all wait for each other
  (a barrier), so the interleaving, and the figures, are the same on every run.
* **Strategies.**  ``per-process``: each breaker keeps its state in memory, so each replica must
  see 10 failures of its own before it stops; ``shared (redis)``: the breakers share one state in a
  real ``redis-server`` started for the run (:class:`~buttress.state.RedisState`), so the fleet
  stops as soon as it has seen 10 failures in all.

Expected: per-process, exactly ``replicas x minimum_calls`` failed calls (40); shared, between
``minimum_calls`` (10) and ``replicas x ceil(minimum_calls / replicas)`` (12): the replicas whose
call in the opening round was already admitted still fail once.  The seed is not used: nothing here
is random, only the order of the calls within one round varies.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

from buttress.errors import CircuitOpen
from buttress.lab.sim.checks import integers
from buttress.lab.sim.report import ScenarioReport, StrategyResult
from buttress.ports import free_port

__all__ = ["SharedBreaker", "SharedBreakerParams"]

REDIS_SERVER = "/usr/bin/redis-server"


@dataclass(frozen=True, slots=True)
class SharedBreakerParams:
    """The scenario's knobs (see the module docstring)."""

    replicas: int = 4
    rounds: int = 30
    minimum_calls: int = 10

    def __post_init__(self) -> None:
        integers(self, ("replicas", "rounds", "minimum_calls"), 1)


def _replica(url: str | None, p: SharedBreakerParams, barrier: Any, out: Any) -> None:
    from buttress import CircuitBreaker, Pipeline

    store = None
    if url is not None:
        from buttress.state import RedisState

        # A generous timeout: the lab compares shared against local state, so a slow answer on a
        # busy machine must not silently fall back to local decisions.
        store = RedisState(url, service="lab-shared-breaker", timeout=1.0).breaker_store(
            "dependency/cb"
        )
    breaker = CircuitBreaker(
        minimum_calls=p.minimum_calls,
        window_size=p.minimum_calls,
        failure_rate_threshold=0.5,
        break_duration=60.0,
        store=store,
    )
    pipe = Pipeline([breaker], name="dependency")
    failed = rejected = 0
    first_rejected: int | None = None

    def dependency() -> None:
        raise ConnectionError("dependency down")

    for r in range(p.rounds):
        try:
            pipe.call(dependency)
        except ConnectionError:
            failed += 1
        except CircuitOpen:
            rejected += 1
            if first_rejected is None:
                first_rejected = r
        barrier.wait(30)
    out.put((failed, rejected, first_rejected))


class _Redis:
    """A throwaway redis-server on a free loopback port."""

    def __init__(self) -> None:
        from buttress.lab.errors import LabError

        exe = shutil.which("redis-server") or REDIS_SERVER
        if not os.path.exists(exe):
            raise LabError("the shared-breaker scenario needs redis-server (apt install redis)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="buttress-lab-")
        self.proc = subprocess.Popen(
            [
                *(exe, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.01)
        self.stop()
        raise LabError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class SharedBreaker:
    """``shared-breaker``: per-process breaker state against one state shared through Redis."""

    name = "shared-breaker"
    summary = "4 replicas (processes) call one failing dependency: per-process vs shared breaker"

    def __init__(self, params: SharedBreakerParams | None = None) -> None:
        self.params = params or SharedBreakerParams()

    def _fleet(self, url: str | None) -> list[tuple[int, int, int | None]]:
        p = self.params
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(p.replicas), ctx.Queue()
        procs = [
            ctx.Process(target=_replica, args=(url, p, barrier, out)) for _ in range(p.replicas)
        ]
        for proc in procs:
            proc.start()
        results = [out.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(30)
        return results

    def run(self, seed: int, progress: Any = None) -> ScenarioReport:
        p = self.params
        if progress:
            progress("per-process", 0.0)
        local = self._fleet(None)
        if progress:
            progress("shared (redis)", 0.5)
        server = _Redis()
        try:
            shared = self._fleet(server.url)
        finally:
            server.stop()
        if progress:
            progress("done", 1.0)
        requests = p.replicas * p.rounds
        rows = []
        for name, summary, res in (
            ("per-process", "each replica's breaker in its own memory", local),
            ("shared (redis)", "one breaker state for the fleet, in Redis", shared),
        ):
            failed = sum(r[0] for r in res)
            rows.append(
                StrategyResult(
                    name=name,
                    summary=summary,
                    success_rate=0.0,
                    load_amplification=failed / requests,
                    peak_load_over_capacity=0.0,
                    recovery_seconds=None,
                    extra={
                        "failed_calls": failed,
                        "rejected_calls": sum(r[1] for r in res),
                        "round_each_replica_stopped": [r[2] for r in res],
                    },
                )
            )
        expected_shared = p.replicas * math.ceil(p.minimum_calls / p.replicas)
        notes = (
            f"failed calls (reached the failing dependency): per-process "
            f"{rows[0].extra['failed_calls']}, shared {rows[1].extra['failed_calls']} "
            f"(expected {p.replicas * p.minimum_calls}, and "
            f"{p.minimum_calls} to {expected_shared}).",
            "load amplif. = calls that reached the dependency / requests; success is 0% for "
            "both: the dependency never answers.",
        )
        return ScenarioReport(
            scenario=self.name,
            seed=seed,
            description=(
                f"{p.replicas} replicas, each with a circuit breaker (opens after "
                f"{p.minimum_calls} calls at >= 50% failures), make {p.rounds} calls in lockstep "
                "to a dependency that always fails."
            ),
            parameters=asdict(p),
            results=tuple(rows),
            notes=notes,
        )
