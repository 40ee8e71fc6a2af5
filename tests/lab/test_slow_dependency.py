"""Slow-dependency: the issue's figure on a fixed seed, the shedding order, determinism, the counts
behind the table, bad parameters, and the lab's guard deciding exactly as the real pipeline does."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress import (
    AdaptiveLimit,
    AttemptTimeout,
    Bulkhead,
    ConfigError,
    LoadShedder,
    Pipeline,
    criticality,
)
from buttress.lab.sim import (
    SLOW_STRATEGIES,
    ProtectedCalls,
    ScenarioReport,
    SlowDependency,
    SlowDependencyParams,
    render_table,
    to_json,
)
from buttress.lab.sim.measure import percentile
from buttress.lab.sim.scenarios.slow_dependency import arrivals
from buttress.policies.limits import AIMD, Gradient2, Vegas
from buttress.policies.shed import Criticality
from buttress.testing import FakeClock

CLASSES = ("critical", "high", "low", "sheddable")


def test_critical_traffic_keeps_99_percent_while_unprotected_collapses(
    slow_report: ScenarioReport,
) -> None:
    """The issue's figure: during the slowdown critical requests succeed >= 99% of the time with
    bulkhead + adaptive limit + shedding, and mostly fail without protection."""
    guarded, bare = slow_report.result("buttress"), slow_report.result("none")
    assert guarded.extra["critical_success_slow"] >= 0.99
    assert guarded.extra["classes"]["critical"]["success_rate"] >= 0.99  # over the whole run too
    assert bare.extra["critical_success_slow"] < 0.2
    # Unprotected, every class collapses alike: the dependency's queue does not care about class.
    for c in CLASSES:
        assert bare.extra[f"{c}_success_slow"] < 0.2
    # Answered in time, not just answered: critical p99 stays under the caller's timeout, while
    # unprotected callers wait the full timeout.
    p = SlowDependencyParams()
    assert guarded.extra["critical_p99_slow"] < p.timeout
    assert p.timeout == bare.extra["critical_p99_slow"]


def test_classes_are_shed_in_order_least_critical_first(slow_report: ScenarioReport) -> None:
    # (With the static limit, critical and high fail alike, by timeouts rather than sheds.)
    for name in ("buttress", "buttress-gradient2"):
        rates = [slow_report.result(name).extra[f"{c}_success_slow"] for c in CLASSES]
        assert sorted(rates, reverse=True) == rates, name
    guarded = slow_report.result("buttress")
    assert guarded.extra["sheddable_success_slow"] < 0.05  # shed first, almost entirely
    assert guarded.extra["refusals"]["shed"] > 0


def test_a_bulkhead_alone_or_a_static_limit_does_not_protect_critical_traffic(
    slow_report: ScenarioReport,
) -> None:
    """The bulkhead is sized for the caller (5x the dependency's workers): on its own it admits
    enough calls to keep the dependency's queue past the timeout; with shedding on that static
    limit, critical calls are admitted but wait too long.  The adaptive limit is what keeps the
    calls in flight near what the dependency answers in time."""
    assert slow_report.result("bulkhead").extra["critical_success_slow"] < 0.5
    static = slow_report.result("bulkhead+shed")
    assert static.extra["critical_success_slow"] < 0.99
    assert static.extra["timeouts"] > 10 * slow_report.result("buttress").extra["timeouts"]


def test_the_counts_add_up(slow_report: ScenarioReport) -> None:
    p = SlowDependencyParams()
    todo = arrivals(p, 1)
    for r in slow_report.results:
        e = r.extra
        assert len(todo) == e["requests"]
        assert e["requests"] == sum(e["classes"][c]["requests"] for c in CLASSES)
        assert e["successes"] == sum(e["classes"][c]["successes"] for c in CLASSES)
        assert e["requests"] == e["dependency_calls"] + e["refused"]
        assert e["refused"] == sum(e["refusals"].values())
        assert e["dependency_calls"] == pytest.approx(r.load_amplification * e["requests"])
        assert e["successes"] == pytest.approx(r.success_rate * e["requests"])
        assert e["wasted_services"] <= e["timeouts"]
    assert {} == slow_report.result("none").extra["refusals"]
    assert {"bulkhead"} == set(slow_report.result("bulkhead").extra["refusals"])
    # A healthy dependency serves everything when nothing protects it.
    assert 1.0 == slow_report.result("none").extra["success_before"]
    # The classes' shares are the mix's (10/20/30/40%), within sampling noise.
    shares = [
        slow_report.result("none").extra["classes"][c]["requests"] / len(todo) for c in CLASSES
    ]
    assert [0.1, 0.2, 0.3, 0.4] == pytest.approx(shares, abs=0.01)


def test_same_seed_same_figures_other_seed_same_conclusion(slow_report: ScenarioReport) -> None:
    scenario = SlowDependency()
    buttress = next(s for s in SLOW_STRATEGIES if s.name == "buttress")
    assert slow_report.result("buttress") == scenario.run_strategy(buttress, 1)
    other = scenario.run_strategy(buttress, 2)
    assert slow_report.result("buttress").extra != other.extra
    assert other.extra["critical_success_slow"] >= 0.99


def test_the_table_and_json(slow_report: ScenarioReport) -> None:
    table = render_table(slow_report)
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("strategy"))
    assert "critical (slow)" in lines[header]
    rows = lines[header + 2 : header + 2 + len(SLOW_STRATEGIES)]
    assert [s.name for s in SLOW_STRATEGIES] == [r.split()[0] for r in rows]
    guarded = slow_report.result("buttress")
    row = next(r for r in rows if r.startswith("buttress "))
    assert f"{guarded.extra['critical_success_slow'] * 100:.1f}%" in row
    assert f"{guarded.extra['critical_p99_slow'] * 1000:.0f} ms" in row
    doc = json.loads(to_json(slow_report))
    assert "slow-dependency" == doc["scenario"]
    assert {"critical": 0.1, "high": 0.2, "low": 0.3, "sheddable": 0.4} == doc["parameters"]["mix"]
    assert [s.name for s in SLOW_STRATEGIES] == [s["name"] for s in doc["strategies"]]


def test_the_command_prints_the_same_json_in_another_process(slow_report: ScenarioReport) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "lab", "--scenario", "slow-dependency", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONHASHSEED": "random"},
        check=False,
    )
    assert 0 == done.returncode, done.stderr
    assert to_json(slow_report) == done.stdout.rstrip("\n")


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        ({"mix": {"critical": 1, "urgent": 1}}, "mix['urgent']"),
        ({"mix": {"critical": -1}}, "mix['critical']"),
        ({"mix": {"low": 0}}, "mix"),
        ({"slowdown": 0.5}, "slowdown"),
        ({"slow_end": 40.0}, "slow_end"),
        ({"workers": 0}, "workers"),
        ({"timeout": -1.0}, "timeout"),
        ({"step": 0.3}, "step"),
    ],
)
def test_bad_parameters_name_themselves(options: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        SlowDependencyParams(**options)  # type: ignore[arg-type]
    assert parameter == info.value.parameter


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    random.Random(3).shuffle(values)
    assert 99.0 == percentile(values, 0.99)
    assert 50.0 == percentile(values, 0.5)
    assert 100.0 == percentile(values, 1.0)
    assert 7.0 == percentile([7.0], 0.99)
    assert percentile([], 0.5) is None


# --- the guard decides as the pipeline does ------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One call in a chain: its class, time before its child starts, time after, and its end."""

    cls: Criticality
    before: float
    after: float
    end: str  # "ok", "timeout" (a drop) or "error" (not sampled)


steps = st.builds(
    Step,
    st.sampled_from(list(Criticality)),
    st.sampled_from([0.0, 0.01, 0.2]),
    st.sampled_from([0.0, 0.05, 0.7]),
    st.sampled_from(["ok", "ok", "ok", "timeout", "error"]),
)
chains = st.lists(st.lists(steps, min_size=1, max_size=14), min_size=1, max_size=12)


Policies = tuple[LoadShedder | None, AdaptiveLimit, Bulkhead]


def _policies(algo: str, clock: FakeClock, shed: str) -> Policies:
    """``shed``: ``"limit"`` (the shedder reads the adaptive limit), ``"own"`` (its own capacity
    of 4) or ``"none"``."""
    algorithm = {
        "aimd": lambda: AIMD(initial_limit=4, min_limit=1, max_limit=12, timeout=0.5),
        "gradient2": lambda: Gradient2(initial_limit=6, min_limit=2, max_limit=12, long_window=5),
        "vegas": lambda: Vegas(initial_limit=6, max_limit=12, rng=random.Random(4)),
    }[algo]()
    limit = AdaptiveLimit(algorithm, clock=clock)
    thresholds = {"sheddable": 0.5, "low": 0.6, "high": 0.7}
    shedder = {
        "limit": LoadShedder(limit, thresholds=thresholds),
        "own": LoadShedder(4, thresholds=thresholds),
        "none": None,
    }[shed]
    return shedder, limit, Bulkhead(5, max_queue=0, clock=clock)


def _fail(step: Step) -> None:
    if step.end == "timeout":
        raise AttemptTimeout(1.0)
    if step.end == "error":
        raise ConnectionError("500")


def _through_pipeline(
    script: list[list[Step]], clock: FakeClock, policies: Policies
) -> list[object]:
    shedder, limit, bulkhead = policies
    given = [bulkhead, limit] if shedder is None else [bulkhead, shedder, limit]
    pipe = Pipeline(given, clock=clock)  # the default order sorts them
    log: list[object] = []

    def call(chain: list[Step], i: int) -> None:
        if i == len(chain):
            return
        step = chain[i]

        def body() -> None:
            log.append(("admitted", i))
            clock.advance(step.before)
            call(chain, i + 1)
            clock.advance(step.after)
            _fail(step)

        try:
            with criticality(step.cls):
                pipe.call(body)
        except (AttemptTimeout, ConnectionError):
            pass
        except Exception as exc:  # a refusal
            log.append((type(exc).__name__, i))

    for chain in script:
        call(chain, 0)
        log.append((limit.limit, limit.inflight, bulkhead.active))
    return log


def _through_the_lab(
    script: list[list[Step]], clock: FakeClock, policies: Policies
) -> list[object]:
    shedder, limit, bulkhead = policies
    guard = ProtectedCalls(bulkhead=bulkhead, limit=limit, shedder=shedder)
    log: list[object] = []

    def call(chain: list[Step], i: int) -> None:
        if i == len(chain):
            return
        step = chain[i]
        sent = clock.monotonic()
        ticket = guard.admit(sent, step.cls)
        if isinstance(ticket, BaseException):
            log.append((type(ticket).__name__, i))
            return
        log.append(("admitted", i))
        clock.advance(step.before)
        call(chain, i + 1)
        clock.advance(step.after)
        error: BaseException | None = None
        try:
            _fail(step)
        except Exception as exc:
            error = exc
        guard.on_result(clock.monotonic(), error, ticket, sent)

    for chain in script:
        call(chain, 0)
        log.append((limit.limit, limit.inflight, bulkhead.active))
    return log


@settings(max_examples=60, deadline=None)
@given(
    chains,
    st.sampled_from(["aimd", "gradient2", "vegas"]),
    st.sampled_from(["limit", "own", "none"]),
)
def test_the_guard_admits_and_learns_exactly_as_the_pipeline(
    script: list[list[Step]], algo: str, shed: str
) -> None:
    """Nested calls make concurrency in sync code: each call starts the next of its chain inside
    itself.  The real pipeline (shedder > adaptive limit > bulkhead) and the lab's
    :class:`ProtectedCalls`, fed the same chains on a fake clock, refuse the same calls with the
    same errors and end with the same limit."""
    clock = FakeClock()
    executor = _through_pipeline(script, clock, _policies(algo, clock, shed))
    clock = FakeClock()
    policies = _policies(algo, clock, shed)
    lab = _through_the_lab(script, clock, policies)
    assert executor == lab
    shedder = policies[0]
    assert (0, 0, 0) == (
        policies[1].inflight,
        policies[2].active,
        0 if shedder is None else shedder.inflight,
    )
