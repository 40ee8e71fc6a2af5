"""Deterministic failure and repair schedules, with the rule that nothing ages while the system is
down.

A unit with ``schedule: {every: E, repair: R, first: F}`` fails after ``F`` hours of operation,
then every ``E`` hours of operation, and each repair takes exactly ``R`` hours.  Operation is
counted only while the journey is up: when the journey is down, the units that still work are
idle and do not age (a machine stopped by a failed conveyor does not wear).  Repairs go on
whatever the journey's state.

For a journey whose every basic event is scheduled (or cannot fail), its history is a fixed
sequence of events, computed here event by event: at each step the time advances to the next
failure of a working unit (only while the journey is up) or the next end of a repair.  The
long-run availability comes from the first repeat of the state at a step (the history is then
periodic, and the figure over one period is exact); the mean availability over ``[0, T]`` from
the same walk stopped at ``T``.

A series of scheduled units under this rule never has two units down at once, so its long-run
availability is ``1 / (1 + sum R_i / E_i)`` (a renewal-reward argument, valid for any
distribution), not the product of ``E_i / (E_i + R_i)``: the tests hold the walk to that.
"""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis
from .compiler import occurs
from .faulttree import Event

__all__ = ["ScheduleResult", "scheduled", "scheduled_journeys"]

_MAX_STEPS = 200_000


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """Availability of a fully scheduled journey: long-run, and mean over ``[0, hours]``."""

    journey: str
    availability: float
    periodic: bool
    hours: float | None = None
    mean_availability: float | None = None


def _schedules(analysis: Analysis, journey: str) -> dict[Event, tuple[float, float, float]] | None:
    """Every event of the journey's tree with its schedule; ``None`` if one is random."""
    from .faulttree import events_of

    system = analysis.system
    out: dict[Event, tuple[float, float, float]] = {}
    for ev in events_of(analysis.compiled.tops[journey]):
        info = analysis.compiled.info[ev]
        unit = info.unit(system)
        if unit is None:
            return None  # a Markov group is random
        if unit.schedule is not None:
            out[ev] = unit.schedule
        elif unit.lam > 0:
            return None
    return out


def scheduled_journeys(analysis: Analysis) -> list[str]:
    """The journeys every event of which is scheduled (or cannot fail), with at least one."""
    return [j for j in analysis.journeys if _schedules(analysis, j)]


def scheduled(analysis: Analysis, journey: str, hours: float | None = None) -> ScheduleResult:
    """Walk ``journey``'s deterministic history (see the module docstring)."""
    plan = _schedules(analysis, journey)
    if not plan:
        raise ValueError(f"journey {journey!r} has a random event: its figures are not fixed")
    top = analysis.compiled.tops[journey]
    events = list(plan)
    left = {e: plan[e][2] for e in events}  # operating time to the next failure
    fixing = dict.fromkeys(events, 0.0)  # repair time left (0: working)
    t = up_time = 0.0
    seen: dict[tuple[float, ...], tuple[float, float]] = {}
    long_run: float | None = None
    periodic = False
    mean: float | None = None
    for _ in range(_MAX_STEPS):
        down = frozenset(e for e in events if fixing[e] > 0)
        is_up = not occurs(top, down, {})
        key = (*(round(left[e], 9) for e in events), *(round(fixing[e], 9) for e in events))
        if long_run is None and key in seen:
            t0, u0 = seen[key]
            long_run, periodic = (up_time - u0) / (t - t0), True
        seen.setdefault(key, (t, up_time))
        steps = [fixing[e] for e in events if fixing[e] > 0]
        if is_up:
            steps += [left[e] for e in events if fixing[e] == 0]
        dt = min(steps) if steps else float("inf")
        if hours is not None and mean is None and t + dt >= hours:
            mean = (up_time + (hours - t if is_up else 0.0)) / hours if hours > 0 else 1.0
        if long_run is not None and (hours is None or mean is not None):
            break
        if dt == float("inf"):  # nothing will ever change again
            if long_run is None:
                long_run = 1.0 if is_up else 0.0
            if hours is not None and mean is None:
                mean = (up_time + (hours - t if is_up else 0.0)) / hours if hours > 0 else 1.0
            break
        t += dt
        up_time += dt if is_up else 0.0
        for e in events:
            if fixing[e] > 0:
                fixing[e] = max(0.0, fixing[e] - dt)
                if fixing[e] <= 1e-12:
                    fixing[e], left[e] = 0.0, plan[e][0]
            elif is_up:
                left[e] -= dt
                if left[e] <= 1e-12:
                    fixing[e] = plan[e][1]
                    if fixing[e] <= 0:  # an instant repair: a fresh life at once
                        left[e] = plan[e][0]
    if long_run is None:
        long_run = up_time / t if t > 0 else 1.0
    return ScheduleResult(journey, long_run, periodic, hours, mean)
