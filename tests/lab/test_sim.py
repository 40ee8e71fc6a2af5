"""The discrete-event engine: time order, ties, the clock, bad scheduling, the server."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress import ConfigError, Retry, RetryBudget
from buttress.clock import Clock
from buttress.lab.sim.engine import Server, SimClock, Simulation, SimulationError


@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=60))
def test_entries_run_in_time_order_and_ties_in_scheduling_order(times: list[float]) -> None:
    sim = Simulation()
    seen: list[tuple[float, int, float]] = []
    for i, t in enumerate(times):
        sim.at(t, lambda i, t=t: seen.append((t, i, sim.now)), i)
    assert len(times) == sim.run()
    assert sorted((t, i) for i, t in enumerate(times)) == [(t, i) for t, i, _ in seen]
    # The clock reads each entry's own time while it runs.
    assert [t for t, _, _ in seen] == [now for _, _, now in seen]
    assert (max(times) if times else 0.0) == sim.now
    assert 0 == sim.pending


def test_callbacks_schedule_more_work_and_the_clock_follows() -> None:
    sim = Simulation()
    log: list[tuple[float, str]] = []

    def ping(n: int) -> None:
        log.append((sim.now, f"ping{n}"))
        if n < 3:
            sim.after(0.5, ping, n + 1)

    sim.at(1.0, ping, 0)
    sim.after(0.0, lambda _: log.append((sim.now, "first")))
    assert 5 == sim.run()
    assert [(0.0, "first"), (1.0, "ping0"), (1.5, "ping1"), (2.0, "ping2"), (2.5, "ping3")] == log
    assert 2.5 == sim.clock.monotonic()
    assert 5 == sim.processed


def test_run_until_stops_before_later_entries_and_resumes() -> None:
    sim = Simulation()
    ran: list[float] = []
    for t in (1.0, 2.0, 3.0):
        sim.at(t, ran.append, t)
    assert 2 == sim.run(until=2.5)
    assert [1.0, 2.0] == ran
    assert 2.5 == sim.now
    assert 1 == sim.pending
    assert 1 == sim.run()
    assert [1.0, 2.0, 3.0] == ran
    with pytest.raises(SimulationError, match="already"):
        sim.run(until=1.0)


@pytest.mark.parametrize("when", [-0.1, float("nan"), float("inf")])
def test_scheduling_in_the_past_or_at_no_time_is_refused(when: float) -> None:
    sim = Simulation()
    sim.at(1.0, lambda _: None)
    sim.run()
    with pytest.raises(SimulationError, match="cannot schedule"):
        sim.at(1.0 + when if when < 0 else when, lambda _: None)
    with pytest.raises(SimulationError, match="cannot schedule"):
        sim.after(when, lambda _: None)


def test_progress_is_reported_every_n_entries() -> None:
    sim = Simulation()
    for i in range(10):
        sim.at(float(i), lambda _: None)
    seen: list[float] = []
    sim.run(progress=seen.append, every=3)
    assert [2.0, 5.0, 8.0] == seen


def test_sim_clock_is_a_clock_that_refuses_to_wait() -> None:
    clock = SimClock(epoch=100.0)
    assert isinstance(clock, Clock)
    assert 0.0 == clock.monotonic()
    assert 100.0 == clock.wall()
    with pytest.raises(SimulationError, match=r"Simulation\.after"):
        clock.sleep(1.0)
    with pytest.raises(SimulationError, match="sleep_async"):
        asyncio.run(clock.sleep_async(1.0))


def test_buttress_policies_read_simulated_time() -> None:
    """A RetryBudget built on the simulation's clock ages its window with simulated time."""
    sim = Simulation()
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, ttl=1.0, slices=10, clock=sim.clock)
    for _ in range(4):
        budget.on_request(sim.now)
    sim.after(0.15, lambda _: None)
    sim.run()
    assert 2.0 == budget.balance()  # 0.5 x 4 deposits, counted once their slice is whole
    sim.after(2.0, lambda _: None)
    sim.run()
    assert 0.0 == budget.balance()  # two simulated seconds later the deposits have expired
    retry = Retry(budget=budget, clock=sim.clock)
    assert sim.clock is retry.clock


def test_server_serves_fifo_queues_then_rejects() -> None:
    sim = Simulation()
    done: list[tuple[float, str]] = []
    server: Server[str] = Server(
        sim,
        workers=2,
        queue_limit=2,
        service_time=lambda: 1.0,
        on_done=lambda job: done.append((sim.now, job)),
    )
    accepted = [server.submit(j) for j in "abcde"]
    assert [True, True, True, True, False] == accepted
    assert (2, 2) == (server.busy, server.queued)
    sim.run()
    assert [(1.0, "a"), (1.0, "b"), (2.0, "c"), (2.0, "d")] == done
    assert (5, 1, 4, 4.0, 2) == (
        server.arrivals,
        server.rejections,
        server.completions,
        server.busy_time,
        server.max_queue,
    )
    assert (0, 0) == (server.busy, server.queued)


def test_server_with_no_queue_rejects_whenever_all_workers_are_busy() -> None:
    sim = Simulation()
    server: Server[int] = Server(
        sim, workers=1, queue_limit=0, service_time=lambda: 0.5, on_done=lambda _: None
    )
    assert server.submit(1)
    assert not server.submit(2)
    sim.run(until=0.5)
    assert server.submit(3)


def test_server_utilisation_matches_queueing_theory() -> None:
    """M/M/c with a long queue: utilisation = arrival rate / (workers x service rate)."""
    rng = random.Random(7)
    sim = Simulation()
    workers, service_mean, rate, horizon = 4, 0.1, 24.0, 500.0
    server: Server[int] = Server(
        sim,
        workers=workers,
        queue_limit=10_000,
        service_time=lambda: rng.expovariate(1 / service_mean),
        on_done=lambda _: None,
    )

    def arrive(n: int) -> None:
        server.submit(n)
        t = sim.now + rng.expovariate(rate)
        if t < horizon:
            sim.at(t, arrive, n + 1)

    sim.at(0.0, arrive, 0)
    sim.run()
    utilisation = server.busy_time / (workers * horizon)
    assert 0.6 == pytest.approx(utilisation, abs=0.03)
    assert 0 == server.rejections


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"workers": 0}, "workers"),
        ({"workers": True}, "workers"),
        ({"queue_limit": -1}, "queue_limit"),
    ],
)
def test_server_rejects_bad_parameters_by_name(kwargs: dict[str, int], parameter: str) -> None:
    options = {"workers": 1, "queue_limit": 0, **kwargs}
    with pytest.raises(ConfigError) as info:
        Server(Simulation(), service_time=lambda: 1.0, on_done=lambda _: None, **options)
    assert parameter == info.value.parameter


def test_a_negative_service_time_is_reported() -> None:
    server: Server[int] = Server(
        Simulation(), workers=1, queue_limit=0, service_time=lambda: -1.0, on_done=lambda _: None
    )
    with pytest.raises(SimulationError, match="service_time"):
        server.submit(1)
