"""The lab's shared-breaker scenario: real replica processes, a real redis-server."""

from __future__ import annotations

from buttress.lab.sim import get_scenario


def test_shared_state_stops_the_fleet_after_the_first_open() -> None:
    report = get_scenario("shared-breaker").run(seed=1)
    per_process = report.result("per-process").extra
    shared = report.result("shared (redis)").extra
    assert 40 == per_process["failed_calls"]  # every replica learns on its own: 4 x 10
    assert 10 <= shared["failed_calls"] <= 12  # the fleet learns once (+ calls in flight)
    assert 4 * 30 == per_process["failed_calls"] + per_process["rejected_calls"]
    assert 4 * 30 == shared["failed_calls"] + shared["rejected_calls"]
    assert all(r is not None and r <= 3 for r in shared["round_each_replica_stopped"])
