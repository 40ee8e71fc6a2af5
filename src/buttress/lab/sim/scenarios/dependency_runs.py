"""What the traffic scenarios' runs build alike: one client (policy or guard) per calling
instance, and the :class:`~buttress.lab.sim.calls.Dependency` their parameters describe."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Protocol, TypeVar

from buttress.clock import Clock
from buttress.lab.sim.calls import Call, Dependency
from buttress.lab.sim.checks import DependencyParams
from buttress.lab.sim.engine import Simulation

__all__ = ["dependency_for", "per_instance"]

R = TypeVar("R")
C = TypeVar("C", bound=Call)
C_contra = TypeVar("C_contra", bound=Call, contravariant=True)


class _Answers(Protocol[C_contra]):
    @property
    def sim(self) -> Simulation: ...
    def answer(self, call: C_contra) -> None: ...
    def timed_out(self, call: C_contra) -> None: ...


def per_instance(
    build: Callable[[Clock, random.Random], R], sim: Simulation, stream: str, instances: int
) -> list[R]:
    """``build`` once per calling instance, on the simulation's clock.  Each instance draws from
    its own random stream, named ``<stream>:<instance>`` (``stream`` names the scenario, the seed
    and the strategy), so a run is reproducible and no strategy shifts another's draws."""
    return [build(sim.clock, random.Random(f"{stream}:{k}")) for k in range(instances)]


def dependency_for(
    run: _Answers[C],
    params: DependencyParams,
    *,
    service_time: Callable[[], float],
    timeout: float,
    busy: BaseException,
    failure: Callable[[float], BaseException | None] | None = None,
) -> Dependency[C]:
    """The dependency ``params`` sizes (workers, queue, network delay, per-second counts over the
    duration), answering to ``run``'s :meth:`answer` and :meth:`timed_out`; ``timeout`` is the
    callers' wait."""
    return Dependency(
        run.sim,
        workers=params.workers,
        queue_limit=params.queue_limit,
        service_time=service_time,
        timeout=timeout,
        network_delay=params.network_delay,
        busy=busy,
        on_answer=run.answer,
        on_timeout=run.timed_out,
        failure=failure,
        seconds=math.ceil(params.duration),
    )
