"""The nothing-lost checker (Jepsen's set checker) on planted and clean histories."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.chaos.checker import History, check_set
from buttress.errors import ButtressError


def test_clean_history_is_valid() -> None:
    h = History()
    for v in range(5):
        h.add(v).ok()
    h.final_read(range(5))
    r = check_set(h)
    assert r.valid is True
    assert frozenset() == r.lost
    assert 5 == len(r.acknowledged)


def test_planted_lost_write_is_found() -> None:
    h = History()
    for v in range(10):
        h.add(v).ok()
    h.final_read(v for v in range(10) if v != 7)  # the store dropped an acknowledged write
    r = check_set(h)
    assert r.valid is False
    assert frozenset({7}) == r.lost
    assert 1 == r.summary()["lost_count"]


def test_unknown_outcomes_may_land_or_not() -> None:
    h = History()
    h.add(1).ok()
    h.add(2).unknown()
    h.add(3).unknown()
    h.add(4)  # invoked, never completed: unknown as well
    h.final_read([1, 2])
    r = check_set(h)
    assert r.valid is True
    assert frozenset({2}) == r.recovered
    assert frozenset({3, 4}) == r.vanished
    assert frozenset({4}) == r.never_completed


def test_unexpected_and_revived_values_are_errors() -> None:
    h = History()
    h.add(1).ok()
    h.add(2).fail()
    h.final_read([1, 2, 99])
    r = check_set(h)
    assert r.valid is False
    assert frozenset({99}) == r.unexpected
    assert frozenset({2}) == r.revived


def test_no_final_read_is_undecided() -> None:
    h = History()
    h.add(1).ok()
    assert check_set(h).valid is None


def test_context_manager_classifies_outcomes() -> None:
    h = History(definite_failures=(ValueError,))
    with h.add("a"):
        pass
    with pytest.raises(ValueError), h.add("b"):
        raise ValueError("rejected by validation")
    with pytest.raises(TimeoutError), h.add("c"):
        raise TimeoutError
    kinds = {(op.value, op.type) for op in h.ops if op.type != "invoke"}
    assert {("a", "ok"), ("b", "fail"), ("c", "unknown")} == kinds
    with pytest.raises(ButtressError):
        pa = h.add("d")
        pa.ok()
        pa.ok()


def test_concurrent_recording_keeps_every_operation() -> None:
    h = History()

    def writer(base: int) -> None:
        for i in range(200):
            h.add(base + i, process=base).ok()

    threads = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1600 == len(h)
    h.final_read(k * 1000 + i for k in range(4) for i in range(200))
    assert check_set(h).valid is True


def test_jsonl_round_trip_and_errors(tmp_path: Path) -> None:
    h = History()
    h.add(1).ok()
    h.add(2).ok()
    h.add(3).unknown()
    h.final_read([1, 3])
    path = tmp_path / "h.jsonl"
    h.dump(path)
    again = check_set(History.load(path))
    assert frozenset({2}) == again.lost
    assert frozenset({3}) == again.recovered
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "ok", "f": "add", "value": 5, "id": 1}) + "\n")
    with pytest.raises(ButtressError, match=r"bad.jsonl:1: ok of an add that was never invoked"):
        History.load(bad)
    bad.write_text('{"type": "ok"\n')
    with pytest.raises(ButtressError, match=r"bad.jsonl:1: not JSON"):
        History.load(bad)


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.sampled_from(["ok", "fail", "unknown"])), max_size=40
    ),
    st.sets(st.integers(0, 60)),
)
def test_checker_matches_the_set_definitions(
    ops: list[tuple[int, str]], read_extra: set[int]
) -> None:
    h = History()
    seen: dict[int, str] = {}
    for v, kind in ops:
        if v in seen:
            continue  # one add per value, as in Jepsen's set workload
        seen[v] = kind
        getattr(h.add(v), kind)()
    h.final_read(read_extra)
    r = check_set(h)
    ok = {v for v, k in seen.items() if k == "ok"}
    fail = {v for v, k in seen.items() if k == "fail"}
    assert ok - read_extra == r.lost
    assert read_extra - set(seen) == r.unexpected
    assert fail & read_extra == r.revived
    assert (not r.lost and not r.unexpected and not r.revived) == r.valid
