"""Shuffle sharding: deterministic, uniform over the C(n, k) shards (the Builders' Library figure:
8 endpoints in shards of 2 make 28 shards, so two tenants share both endpoints 1 time in 28),
stable when endpoints come and go, and bad input refused."""

from __future__ import annotations

import collections
import itertools
import math
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.errors import ConfigError
from buttress.failover import overlap_odds, shard_count, shuffle_shard

TENANTS = [f"tenant-{i}" for i in range(28_000)]


def _within(observed: int, trials: int, p: float, sigmas: float = 4.0) -> bool:
    """``observed`` successes in ``trials`` are within ``sigmas`` standard deviations of ``p``."""
    sd = math.sqrt(trials * p * (1 - p))
    return abs(observed - trials * p) <= sigmas * sd


def test_the_builders_library_figure() -> None:
    # 8 workers, shards of 2: 28 combinations against 4 plain partitions.
    assert 28 == shard_count(8, 2)
    odds = overlap_odds(8, 2)
    assert [15 / 28, 12 / 28, 1 / 28] == pytest.approx(odds)
    assert 1.0 == pytest.approx(sum(odds))
    # The Well-Architected lab's example: 100 workers, shards of 5.
    assert 75_287_520 == shard_count(100, 5)


def test_every_shard_is_equally_likely() -> None:
    shards = collections.Counter(tuple(shuffle_shard(t, 8, 2)) for t in TENANTS)
    assert 28 == len(shards)  # every combination occurs
    expected = len(TENANTS) / 28
    chi2 = sum((c - expected) ** 2 / expected for c in shards.values())
    assert chi2 < 60.0  # 27 degrees of freedom: p < 1e-4 above 60


def test_two_tenants_share_all_their_shards_rarely() -> None:
    # Disjoint pairs of tenants: independent trials of "how many endpoints do they share".
    shards = [set(shuffle_shard(t, 8, 2)) for t in TENANTS]
    pairs = len(shards) // 2
    shared = collections.Counter(len(shards[2 * i] & shards[2 * i + 1]) for i in range(pairs))
    for j, p in enumerate(overlap_odds(8, 2)):
        assert _within(shared[j], pairs, p), (j, shared[j], pairs * p)
    # A larger fleet: 16 endpoints in shards of 4 (1,820 shards): full overlap about 1 in 1,820.
    big = [set(shuffle_shard(t, 16, 4)) for t in TENANTS[:20_000]]
    full = sum(big[2 * i] == big[2 * i + 1] for i in range(10_000))
    assert _within(full, 10_000, 1 / 1820)
    assert full <= 15


@given(key=st.text(max_size=20), n=st.integers(1, 30), data=st.data())
def test_a_shard_is_k_distinct_endpoints_and_deterministic(
    key: str, n: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, n))
    names = [f"backend-{i}" for i in range(1, n + 1)]
    shard = shuffle_shard(key, names, k)
    assert k == len(set(shard)) == len(shard)
    assert shard == [x for x in names if x in shard]  # in the order given
    assert shard == shuffle_shard(key, list(names), k)
    assert shuffle_shard(key, n, k) == shuffle_shard(key, n, k)


@given(key=st.text(max_size=20), n=st.integers(3, 20), data=st.data())
def test_stable_when_endpoints_come_and_go(key: str, n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, n - 1))
    names = [f"b{i}" for i in range(n)]
    shard = shuffle_shard(key, names, k)
    # Removing an endpoint outside the shard changes nothing.
    outside = data.draw(st.sampled_from([x for x in names if x not in shard]))
    assert shard == shuffle_shard(key, [x for x in names if x != outside], k)
    # Adding one changes at most one member (the newcomer displaces the lowest ranked).
    grown = shuffle_shard(key, [*names, "newcomer"], k)
    assert len(set(grown) - set(shard)) <= 1
    assert set(grown) <= {*shard, "newcomer"}


def test_salt_gives_an_independent_placement() -> None:
    plain = [tuple(shuffle_shard(t, 8, 2)) for t in TENANTS[:2000]]
    salted = [tuple(shuffle_shard(t, 8, 2, salt=b"fleet-b")) for t in TENANTS[:2000]]
    same = sum(a == b for a, b in zip(plain, salted, strict=True))
    assert _within(same, 2000, 1 / 28)


def test_the_same_shard_in_another_process() -> None:
    # No per-process hash seed: every gateway replica computes the same placement.
    code = "from buttress.failover import shuffle_shard; print(shuffle_shard('acme', 8, 2))"
    env_seeds = ("0", "12345")
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in env_seeds
    }
    assert {f"{shuffle_shard('acme', 8, 2)}\n"} == outs


def test_every_combination_reached_for_small_fleets() -> None:
    for n, k in itertools.product(range(1, 7), range(1, 7)):
        if k > n:
            continue
        seen = {tuple(shuffle_shard(t, n, k)) for t in TENANTS[:3000]}
        assert math.comb(n, k) == len(seen), (n, k)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: shuffle_shard("a", 8, 0), "size"),
        (lambda: shuffle_shard("a", 2, 3), "size"),
        (lambda: shuffle_shard("a", 0, 1), "endpoints"),
        (lambda: shuffle_shard("a", ["x", "x"], 1), "endpoints"),
        (lambda: shuffle_shard(7, 8, 2), "key"),  # type: ignore[call-overload]
        (lambda: shuffle_shard("a", 8, 2, salt="s"), "salt"),  # type: ignore[call-overload]
        (lambda: shard_count(4, 5), "size"),
        (lambda: overlap_odds(0, 1), "endpoints"),
    ],
)
def test_bad_input_names_the_parameter(call: object, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        call()  # type: ignore[operator]
    assert field in str(err.value)
