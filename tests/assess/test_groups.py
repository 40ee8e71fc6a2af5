"""Repair crews, hot/warm/cold standby, coverage with a recovery path and beta-factor common cause,
each through the YAML model against an independent computation built here: a per-unit Markov
chain (every unit's own state, a first-in first-out repair queue) solved by its own code, or a
published closed form; to six digits and better."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from buttress.assess import analyse, simulate
from buttress.assess.ctmc import ChainBuilder
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.cli import main
from buttress.errors import SpecError

LAM, MU = 1 / 100, 1 / 8  # MTBF 100 h, MTTR 8 h


def unavailability(component: dict[str, Any]) -> float:
    arch = {"components": {"a": {"mtbf": "100h", "mttr": "8h", **component}}}
    analysis = analyse(System.from_spec(ArchitectureSpec.model_validate(arch)), cut_sets=False)
    return analysis.journeys["a"].unavailability


# -- an independent solver: explicit states, breadth-first exploration, dense linear solve ---------

Transitions = Callable[[Any], Iterator[tuple[Any, float]]]


def solve(start: Any, moves: Transitions, up: Callable[[Any], bool]) -> float:
    """Steady-state availability of the chain reachable from ``start``."""
    order = [start]
    where = {start: 0}
    edges: list[tuple[int, int, float]] = []
    for s in order:  # grows while walked
        for t, rate in moves(s):
            if t not in where:
                where[t] = len(order)
                order.append(t)
            edges.append((where[s], where[t], rate))
    m = len(order)
    q = np.zeros((m, m))
    for i, j, r in edges:
        if i != j:
            q[i, j] += r
    q -= np.diag(q.sum(axis=1))
    # pi Q = 0 and sum(pi) = 1 as one least-squares system (a different route from the module's).
    pi, *_ = np.linalg.lstsq(np.vstack([q.T, np.ones(m)]), np.r_[np.zeros(m), 1.0], rcond=None)
    return float(sum(p for s, p in zip(order, pi, strict=True) if up(s)))


def k_of_n_units(n: int, k: int, crews: int, beta: float = 0.0) -> float:
    """Unavailability of k-of-n with every unit's identity kept: the state is the repair queue (the
    failed units in failure order, the first ``crews`` of them in repair)."""

    def moves(queue: tuple[int, ...]) -> Iterator[tuple[Any, float]]:
        working = [u for u in range(n) if u not in queue]
        for u in working:
            yield (*queue, u), (1 - beta) * LAM
        if working and beta > 0:
            yield (*queue, *working), beta * LAM  # the shock fails every working unit
        for u in queue[:crews]:
            yield tuple(x for x in queue if x != u), MU

    return 1 - solve((), moves, lambda queue: n - len(queue) >= k)


# -- repair crews ----------------------------------------------------------------------------------


def test_one_versus_two_repair_crews_for_a_pair() -> None:
    rho = LAM / MU
    # Closed forms (two-unit parallel system with repair, e.g. Billinton & Allan, Reliability
    # Evaluation of Engineering Systems, ch. 9): two crews are independent units,
    # U = (lam / (lam + mu))^2; one crew: p1 = 2 rho p0, p2 = rho p1.
    two = (LAM / (LAM + MU)) ** 2
    one = 2 * rho**2 / (1 + 2 * rho + 2 * rho**2)
    assert two == pytest.approx(unavailability({"replicas": 2}), rel=1e-9)
    assert two == pytest.approx(unavailability({"replicas": 2, "repair": {"crews": 2}}), rel=1e-9)
    assert one == pytest.approx(unavailability({"replicas": 2, "repair": {"crews": 1}}), rel=1e-9)
    assert one > 1.5 * two  # shared repair is not independent repair


@pytest.mark.parametrize(("n", "k", "crews"), [(3, 2, 1), (3, 2, 2), (4, 3, 1), (4, 2, 2)])
def test_k_of_n_with_crews_matches_the_per_unit_chain(n: int, k: int, crews: int) -> None:
    got = unavailability({"replicas": n, "redundancy": {"required": k}, "repair": {"crews": crews}})
    assert k_of_n_units(n, k, crews) == pytest.approx(got, rel=1e-9)


# -- standby ---------------------------------------------------------------------------------------


def standby_pair(standby: str, crews: int, **extra: Any) -> float:
    redundancy = {"mode": "active-passive", "detection": 0, "switchover": 0, "standby": standby}
    return unavailability(
        {"replicas": 2, "redundancy": {**redundancy, **extra}, "repair": {"crews": crews}}
    )


@pytest.mark.parametrize("crews", [1, 2])
@pytest.mark.parametrize(
    ("standby", "factor"), [("hot", 1.0), ("warm", 0.25), ("warm", 0.1), ("cold", 0.0)]
)
def test_hot_warm_cold_standby_closed_forms(standby: str, factor: float, crews: int) -> None:
    # Standby pair, perfect instant switch (Trivedi, Probability and Statistics with Reliability,
    # Queuing and Computer Science Applications, sec. 8.4): 0 -> 1 at lam + lam_s, 1 -> 2 at lam,
    # 1 -> 0 at mu, 2 -> 1 at min(2, crews) mu.  Cold with one crew: A = (mu^2 + lam mu) /
    # (mu^2 + lam mu + lam^2).
    lam_s = factor * LAM
    p1 = (LAM + lam_s) / MU
    p2 = p1 * LAM / (min(2, crews) * MU)
    expected = p2 / (1 + p1 + p2)
    extra = {"standby_factor": factor} if standby == "warm" else {}
    assert expected == pytest.approx(standby_pair(standby, crews, **extra), rel=1e-9)
    if standby == "cold" and crews == 1:
        a = (MU**2 + LAM * MU) / (MU**2 + LAM * MU + LAM**2)
        assert 1 - a == pytest.approx(standby_pair("cold", 1), rel=1e-9)


def test_warm_standby_lies_between_cold_and_hot() -> None:
    cold, hot = standby_pair("cold", 1), standby_pair("hot", 1)
    warm = standby_pair("warm", 1, standby_factor=0.5)
    assert cold < warm < hot
    assert standby_pair("warm", 1) < standby_pair("warm", 1, standby_factor=0.5)  # default 0.1


# -- imperfect coverage with a recovery path -------------------------------------------------------


@pytest.mark.parametrize("crews", [1, 2])
@pytest.mark.parametrize("recovery_h", [None, 0.25, 2.0])
def test_coverage_with_recovery_rate_closed_form(recovery_h: float | None, crews: int) -> None:
    c, tau = 0.9, 0.05  # 3 min detection + switchover, in hours
    rho = 0.0 if recovery_h is None else 1 / recovery_h
    # Balance equations of the hot pair, solved by hand relative to p0 = 1:
    #   W (switching):  pW / tau = c lam                     -> pW = c lam tau
    #   U (not taken):  pU (rho + mu) = (1 - c) lam          -> recovery or the repair ends it
    #   state 0:        2 lam = mu pU + mu p1                -> p1
    #   state 2:        p2 min(2, crews) mu = lam p1
    p_w = c * LAM * tau
    p_u = (1 - c) * LAM / (rho + MU)
    p_1 = (2 * LAM - MU * p_u) / MU
    p_2 = LAM * p_1 / (min(2, crews) * MU)
    expected = (p_w + p_u + p_2) / (1 + p_w + p_u + p_1 + p_2)
    redundancy: dict[str, Any] = {
        "mode": "active-passive",
        "coverage": c,
        "detection": "1m",
        "switchover": "2m",
    }
    if recovery_h is not None:
        redundancy["recovery"] = f"{recovery_h * 60:g}m"
    got = unavailability({"replicas": 2, "redundancy": redundancy, "repair": {"crews": crews}})
    assert expected == pytest.approx(got, rel=1e-9)


def test_a_fast_recovery_path_beats_waiting_for_the_repair() -> None:
    base = {"mode": "active-passive", "coverage": 0.8}
    slow = unavailability({"replicas": 2, "redundancy": base})
    fast = unavailability({"replicas": 2, "redundancy": {**base, "recovery": "10m"}})
    assert fast < slow / 2


# -- beta-factor common cause ----------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.02, 0.1, 0.3])
@pytest.mark.parametrize(("n", "k"), [(2, 1), (3, 2), (4, 2)])
def test_beta_factor_matches_the_per_unit_chain(n: int, k: int, beta: float) -> None:
    got = unavailability({"replicas": n, "redundancy": {"required": k, "beta": beta}})
    assert k_of_n_units(n, k, crews=n, beta=beta) == pytest.approx(got, rel=1e-9)


def test_beta_factor_1_of_2_closed_form_and_its_textbook_approximation() -> None:
    beta = 0.1
    # Count chain of the pair, solved by hand: 0 -> 1 at 2(1-b)lam, 0 -> 2 at b lam,
    # 1 -> 2 at lam, 1 -> 0 at mu, 2 -> 1 at 2 mu.  Balance of 0 and of 2:
    #   p0 (2(1-b)lam + b lam) = mu p1,   2 mu p2 = b lam p0 + lam p1.
    p1 = (2 * (1 - beta) * LAM + beta * LAM) / MU
    p2 = (beta * LAM + LAM * p1) / (2 * MU)
    exact = p2 / (1 + p1 + p2)
    got = unavailability({"replicas": 2, "redundancy": {"beta": beta}})
    assert exact == pytest.approx(got, rel=1e-9)
    # The usual hand estimate: independent pairs ((1-b) lam / mu)^2 plus the common-cause rate
    # times the outage it causes (here until the first of two parallel repairs, 1 / (2 mu)).
    rough = ((1 - beta) * LAM / MU) ** 2 + beta * LAM / (2 * MU)
    assert got == pytest.approx(rough, rel=0.2)
    assert got > 1.5 * unavailability({"replicas": 2})


def test_beta_and_crews_combine() -> None:
    got = unavailability(
        {"replicas": 3, "redundancy": {"required": 2, "beta": 0.05}, "repair": {"crews": 1}}
    )
    assert k_of_n_units(3, 2, crews=1, beta=0.05) == pytest.approx(got, rel=1e-9)


def test_the_group_explains_itself_and_the_simulation_agrees() -> None:
    arch = {
        "components": {
            "a": {
                "mtbf": "100h",
                "mttr": "8h",
                "replicas": 3,
                "redundancy": {"required": 2, "beta": 0.1},
                "repair": {"crews": 1},
            }
        }
    }
    analysis = analyse(System.from_spec(ArchitectureSpec.model_validate(arch)))
    (spof,) = analysis.journeys["a"].spofs
    assert "1 repair crew for 3 replicas" in spof.explanation
    assert "beta 0.1" in spof.explanation
    sim = simulate(analysis, seed=3, years=100)["a"]
    assert sim.contains(analysis.journeys["a"].unavailability)


# -- the CTMC module against closed forms ----------------------------------------------------------


def single_unit() -> Any:
    b = ChainBuilder()
    b.add("up", "down", LAM)
    b.add("down", "up", MU)
    return b.build(lambda s: s == "up")


@pytest.mark.parametrize("t", [0.0, 1.0, 10.0, 100.0, 5000.0])
def test_point_and_mean_availability_of_one_unit(t: float) -> None:
    chain = single_unit()
    s = LAM + MU
    assert MU / s + LAM / s * math.exp(-s * t) == pytest.approx(chain.availability_at(t), abs=1e-12)
    mean = 1.0 if t == 0 else MU / s + LAM / (s * s * t) * (1 - math.exp(-s * t))
    assert mean == pytest.approx(chain.mean_availability(t), abs=1e-12)
    assert math.exp(-LAM * t) == pytest.approx(chain.reliability(t), rel=1e-10)


def test_mission_reliability_of_a_pair_without_repair() -> None:
    b = ChainBuilder()
    b.add(0, 1, 2 * LAM)
    b.add(1, 2, LAM)
    chain = b.build(lambda s: s < 2)
    for t in (10.0, 100.0, 300.0):
        assert 2 * math.exp(-LAM * t) - math.exp(-2 * LAM * t) == pytest.approx(
            chain.reliability(t), rel=1e-10
        )


def test_outage_rate_and_mean_outage() -> None:
    chain = single_unit()
    assert LAM * MU / (LAM + MU) == pytest.approx(chain.outage_rate(), rel=1e-12)
    assert 1 / MU == pytest.approx(chain.mean_outage(), rel=1e-12)


# -- bad input -------------------------------------------------------------------------------------

FILE = """\
architecture:
  components:
    db:
      replicas: 2
      availability: 0.999
      redundancy: {mode: active-passive}
      repair: {crews: 1}
"""


@pytest.mark.parametrize(
    ("old", "new", "field", "line"),
    [
        ("repair: {crews: 1}", "repair: {crews: 0}", "components.db.repair.crews", 7),
        ("{mode: active-passive}", "{coverage: 1.5}", "components.db.redundancy.coverage", 6),
        ("{mode: active-passive}", "{coverage: -0.1}", "components.db.redundancy.coverage", 6),
        ("{mode: active-passive}", "{beta: 1.0}", "components.db.redundancy.beta", 6),
        ("{mode: active-passive}", "{beta: -0.1}", "components.db.redundancy.beta", 6),
        ("{mode: active-passive}", "{detection: -5s}", "components.db.redundancy.detection", 6),
        ("{mode: active-passive}", "{recovery: 0s}", "components.db.redundancy.recovery", 6),
        (
            "{mode: active-passive}",
            "{standby_factor: 2}",
            "components.db.redundancy.standby_factor",
            6,
        ),
        (
            "{mode: active-passive}",
            "{standby: cold, standby_factor: 0.5}",
            "components.db.redundancy.standby_factor",
            6,
        ),
        ("replicas: 2", "replicas: 1", "components.db.redundancy.beta", 6),
    ],
)
def test_bad_group_input_is_located(
    tmp_path: Path, old: str, new: str, field: str, line: int
) -> None:
    text = FILE.replace(old, new)
    if field.endswith(".beta") and "beta" not in new:
        text = text.replace("{mode: active-passive}", "{beta: 0.1}")
    path = tmp_path / "reliability.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    assert (f"architecture.{field}", line) == (info.value.field, info.value.line)
    result = CliRunner().invoke(main, ["assess", str(path)])
    assert 2 == result.exit_code
    assert f"reliability.yaml:{line}:" in result.output
    assert "Traceback" not in result.output


def test_crews_beyond_the_replicas_are_independent_repair() -> None:
    assert unavailability({"replicas": 2}) == pytest.approx(
        unavailability({"replicas": 2, "repair": {"crews": 5}}), rel=1e-12
    )


def test_per_unit_solver_reproduces_independent_units() -> None:
    # The test's own solver is right where the answer is plain: independent units.
    q = LAM / (LAM + MU)
    for n, k in itertools.product((2, 3), (1, 2)):
        exact = sum(math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(n - k + 1, n + 1))
        assert exact == pytest.approx(k_of_n_units(n, k, crews=n), rel=1e-9)


# -- repair crews shared by different components, FIFO or priority ---------------------------------

LAM_A, MU_A, LAM_B, MU_B = 1 / 50, 1 / 10, 1 / 400, 1 / 30


def pool_unavailability(discipline: str, crews: int = 1) -> float:
    arch = {
        "components": {
            "pay": {
                "members": ["psp-a", "psp-b"],
                "repair": {"crews": crews, "discipline": discipline},
            },
            "psp-a": {"mtbf": "50h", "mttr": "10h"},
            "psp-b": {"mtbf": "400h", "mttr": "30h"},
        },
        "journeys": {"pay": {"entry": "pay"}},
    }
    analysis = analyse(System.from_spec(ArchitectureSpec.model_validate(arch)))
    return analysis.journeys["pay"].unavailability


def test_shared_crew_fifo_and_priority_against_hand_built_chains() -> None:
    # States: () both up, (a), (b), and both failed in the order a crew takes them.
    rates = {"a": (LAM_A, MU_A), "b": (LAM_B, MU_B)}

    def moves_for(discipline: str) -> Transitions:
        def moves(queue: tuple[str, ...]) -> Iterator[tuple[Any, float]]:
            for u in "ab":
                if u not in queue:
                    nxt = (*queue, u)
                    yield (tuple(sorted(nxt)) if discipline == "priority" else nxt), rates[u][0]
            if queue:
                head = queue[0]  # one crew, on the head of the queue
                yield tuple(x for x in queue if x != head), rates[head][1]

        return moves

    for discipline in ("fifo", "priority"):
        expected = 1 - solve((), moves_for(discipline), lambda q: len(q) < 2)
        assert expected == pytest.approx(pool_unavailability(discipline), rel=1e-9)
    # Priority to the fast-failing, fast-repaired provider shortens the double outages here.
    assert pool_unavailability("priority") < pool_unavailability("fifo")
    # Two crews: independent repair, the product of the two unavailabilities.
    q_a, q_b = LAM_A / (LAM_A + MU_A), LAM_B / (LAM_B + MU_B)
    assert q_a * q_b == pytest.approx(pool_unavailability("fifo", crews=2), rel=1e-9)


def test_crew_pool_members_must_be_plain_units_used_nowhere_else() -> None:
    arch = {
        "components": {
            "pay": {"members": ["psp-a", "psp-b"], "repair": {"crews": 1}},
            "psp-a": {"availability": 0.99, "replicas": 2},
            "psp-b": {"availability": 0.99},
            "shop": {"depends_on": ["pay", "psp-b"]},
        }
    }
    with pytest.raises(ValueError) as info:
        ArchitectureSpec.model_validate(arch)
    text = str(info.value)
    assert "psp-a shares pay's repair crews, so it must be a single unit" in text
    assert "psp-b shares pay's repair crews, so it is also used by shop" in text


# -- multiple Greek letter common cause ------------------------------------------------------------


def mgl_units(n: int, k: int, beta: float, gamma: float, delta: float) -> float:
    """Per-unit chain: every set S of units has its own shock at the MGL rate of its size (the
    published per-set rates, NUREG/CR-4780), failing the units of S still working."""
    shares = {
        1: 1 - beta,
        2: beta * (1 - gamma),
        3: beta * gamma * (1 - (delta if n == 4 else 0.0)),  # n = 3: Q3 = beta gamma lam
        4: beta * gamma * delta,
    }
    rate = {m: shares[m] * LAM / math.comb(n - 1, m - 1) for m in range(1, n + 1)}

    def moves(down: frozenset[int]) -> Iterator[tuple[Any, float]]:
        for m in range(1, n + 1):
            for group in itertools.combinations(range(n), m):
                hit = down | set(group)
                if hit != down:
                    yield frozenset(hit), rate[m]
        for u in down:
            yield down - {u}, MU

    return 1 - solve(frozenset(), moves, lambda down: n - len(down) >= k)


@pytest.mark.parametrize(
    ("n", "k", "gamma", "delta"), [(3, 2, 0.3, None), (3, 1, 0.6, None), (4, 2, 0.4, 0.5)]
)
def test_mgl_matches_the_per_set_chain(n: int, k: int, gamma: float, delta: float | None) -> None:
    redundancy: dict[str, Any] = {"required": k, "beta": 0.1, "gamma": gamma}
    if delta is not None:
        redundancy["delta"] = delta
    got = unavailability({"replicas": n, "redundancy": redundancy})
    assert mgl_units(n, k, 0.1, gamma, delta or 1.0) == pytest.approx(got, rel=1e-9)


def test_mgl_with_gamma_one_is_the_beta_factor() -> None:
    beta_only = unavailability({"replicas": 3, "redundancy": {"required": 2, "beta": 0.1}})
    mgl = unavailability({"replicas": 3, "redundancy": {"required": 2, "beta": 0.1, "gamma": 1}})
    assert beta_only == pytest.approx(mgl, rel=1e-12)


@pytest.mark.parametrize(
    ("redundancy", "replicas", "message"),
    [
        ({"gamma": 0.5}, 3, "give beta > 0"),
        ({"beta": 0.1, "gamma": 0.5}, 2, "active-active group of 3 or 4"),
        ({"beta": 0.1, "gamma": 0.5, "delta": 0.5}, 3, "delta (four failing together)"),
        ({"beta": 0.1, "delta": 0.5}, 4, "delta needs gamma"),
    ],
)
def test_bad_mgl(redundancy: dict[str, Any], replicas: int, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ArchitectureSpec.model_validate(
            {"components": {"a": {"replicas": replicas, "redundancy": redundancy}}}
        )
