"""Priority load shedding: the order by class (hypothesis), thresholds, sources, context, bad
input."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buttress.context import Context
from buttress.errors import ConfigError, LoadShed, Rejected
from buttress.events import Event
from buttress.pipeline import Pipeline
from buttress.policies.bulkhead import Bulkhead
from buttress.policies.limits import AIMD, AdaptiveLimit
from buttress.policies.shed import (
    Criticality,
    LimitSource,
    LoadShedder,
    Shed,
    criticality,
    current_criticality,
    parse_criticality,
)

ORDER = list(Criticality)  # least to most critical


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"thresholds": {"low": 0}}, "thresholds['low']"),
        ({"thresholds": {"low": 1.5}}, "thresholds['low']"),
        ({"thresholds": {"high": -0.2}}, "thresholds['high']"),
        ({"thresholds": {"urgent": 0.5}}, "thresholds['urgent']"),
        ({"thresholds": {"sheddable": 0.8}}, "thresholds['sheddable']"),  # above low's 0.7
        ({"thresholds": {"critical": 0.8}}, "thresholds['high']"),  # high 0.9 above critical
        ({"thresholds": [0.5]}, "thresholds"),
        ({"default": "urgent"}, "default"),
        ({"capacity": 0}, "capacity"),
        ({"capacity": True}, "capacity"),
        ({"capacity": "ten"}, "capacity"),
        ({"retry_after": 0}, "retry_after"),
        ({"retry_after": -1.0}, "retry_after"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, Any], parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        LoadShedder(**kwargs)
    assert parameter == info.value.parameter


def test_unknown_criticality_names_fail_where_given() -> None:
    with pytest.raises(ConfigError, match="expected one of sheddable, low, high, critical"):
        criticality("urgent")
    assert Criticality.LOW == parse_criticality(" Low ")
    assert Criticality.HIGH == parse_criticality(Criticality.HIGH)


def test_defaults() -> None:
    s = LoadShedder()
    assert (0.5, 0.7, 0.9, 1.0) == s.thresholds
    assert (Criticality.CRITICAL, 1.0, 100) == (s.default, s.retry_after, s.limit)


# -- the order by class ----------------------------------------------------------------------------


@st.composite
def thresholds(draw: st.DrawFn) -> dict[str, float]:
    values = sorted(
        draw(st.lists(st.floats(min_value=0.01, max_value=1.0), min_size=4, max_size=4))
    )
    return {c.label: v for c, v in zip(ORDER, values, strict=True)}


@given(
    table=st.one_of(st.none(), thresholds()),
    limit=st.integers(min_value=1, max_value=500),
    inflight=st.integers(min_value=0, max_value=600),
)
def test_if_a_class_is_admitted_every_more_critical_class_is(
    table: dict[str, float] | None, limit: int, inflight: int
) -> None:
    s = LoadShedder(limit, thresholds=table)
    admitted = [s.admits(c, inflight, limit) for c in ORDER]
    for i, ok in enumerate(admitted):
        if ok:
            assert all(admitted[i:]), (admitted, inflight, limit)
    # critical is shed only at 100% of the limit (with the default critical threshold of 1)
    if table is None or table["critical"] == 1.0:
        assert (inflight < limit) == admitted[-1]


@given(
    table=st.one_of(st.none(), thresholds()),
    data=st.data(),
    limit=st.integers(min_value=1, max_value=60),
)
def test_try_acquire_admits_in_class_order_at_every_load(
    table: dict[str, float] | None, data: st.DataObject, limit: int
) -> None:
    """The counting path (an own capacity) agrees with the pure decision at every real load."""
    if table is not None:
        table = {**table, "critical": 1.0}  # so that critical calls can build any load up
    s = LoadShedder(limit, thresholds=table)
    inflight = data.draw(st.integers(min_value=0, max_value=limit), label="inflight")
    for _ in range(inflight):
        assert s.try_acquire(Criticality.CRITICAL)
    admitted = []
    for c in ORDER:
        ok = s.try_acquire(c)
        if ok:
            s.release()
        admitted.append(ok)
    assert [s.admits(c, inflight, limit) for c in ORDER] == admitted
    for i, ok in enumerate(admitted):
        if ok:
            assert all(admitted[i:])
    assert inflight == s.inflight


@given(inflight=st.integers(min_value=0, max_value=120))
def test_default_thresholds_by_hand(inflight: int) -> None:
    s = LoadShedder(100)
    expected = [inflight < 50, inflight < 70, inflight < 90, inflight < 100]
    assert expected == [s.admits(c, inflight, 100) for c in ORDER]


async def test_pipeline_sheds_lowest_classes_first(captured_events: list[Event]) -> None:
    s = LoadShedder(10, name="front")
    pipe = Pipeline([s], name="api")
    gate = asyncio.Event()
    held: list[asyncio.Task[Any]] = []

    async def hold(c: str) -> None:
        with criticality(c):
            await pipe.call_async(gate.wait)

    async def probe(c: str) -> bool:
        with criticality(c):
            try:
                await pipe.call_async(asyncio.sleep, 0)
            except LoadShed:
                return False
        return True

    async def fill_to(n: int) -> None:
        while s.inflight < n:
            held.append(asyncio.create_task(hold("critical")))
            await asyncio.sleep(0)

    table = {}
    for level in (0, 4, 5, 7, 9, 10):
        await fill_to(level)
        assert level == s.inflight
        table[level] = [await probe(c.label) for c in ORDER]
    assert {
        0: [True, True, True, True],
        4: [True, True, True, True],
        5: [False, True, True, True],
        7: [False, False, True, True],
        9: [False, False, False, True],
        10: [False, False, False, False],
    } == table
    gate.set()
    await asyncio.gather(*held)
    assert 0 == s.inflight
    shed = [e for e in captured_events if isinstance(e, Shed)]
    assert ["sheddable", "sheddable", "low", "sheddable", "low", "high"] == [
        e.criticality for e in shed
    ][:6]
    assert ("api", "front", "buttress_load_shedder_shed") == (
        shed[0].pipeline,
        shed[0].policy,
        shed[0].name,
    )


def test_shed_error_carries_retry_after_and_is_a_rejection() -> None:
    s = LoadShedder(2, thresholds={"sheddable": 0.5}, retry_after=2.5)
    pipe = Pipeline([s])
    with criticality("sheddable"):
        assert s.try_acquire()  # one in flight: utilisation 50%
        with pytest.raises(LoadShed) as info:
            pipe.call(lambda: None)
    s.release()
    assert isinstance(info.value, Rejected)
    assert 2.5 == info.value.retry_after
    assert "shed sheddable call at utilisation 1/2" in str(info.value)


def test_class_from_the_call_context_and_the_default() -> None:
    s = LoadShedder(4, default="low")
    pipe = Pipeline([s])
    assert s.try_acquire(Criticality.CRITICAL)
    assert s.try_acquire(Criticality.CRITICAL)
    assert s.try_acquire(Criticality.CRITICAL)  # 3 of 4 in flight: 75%
    with pytest.raises(LoadShed, match="shed low"):
        pipe.call(lambda: None)  # the default class, low (0.7)
    assert "ok" == pipe.call_with_context(Context(properties={"criticality": "high"}), lambda: "ok")
    with pytest.raises(LoadShed, match="shed sheddable"):
        pipe.call_with_context(Context(properties={"criticality": "sheddable"}), lambda: None)
    with criticality("high"):  # the context variable wins over the call context's property
        assert "ok" == pipe.call_with_context(
            Context(properties={"criticality": "sheddable"}), lambda: "ok"
        )
    assert current_criticality() is None


def test_criticality_follows_into_threads_with_a_copied_context() -> None:
    import contextvars

    seen: list[Criticality | None] = []
    with criticality("low"):
        ctx = contextvars.copy_context()
    t = threading.Thread(target=ctx.run, args=(lambda: seen.append(current_criticality()),))
    t.start()
    t.join()
    assert [Criticality.LOW] == seen


# -- utilisation of another limit ------------------------------------------------------------------


def test_utilisation_of_a_bulkhead() -> None:
    b = Bulkhead(4)
    s = LoadShedder(b)
    assert isinstance(b, LimitSource)
    pipe = Pipeline([s, b])
    assert b.try_acquire()
    assert b.try_acquire()  # 2 of 4
    with criticality("sheddable"), pytest.raises(LoadShed):
        pipe.call(lambda: None)
    with criticality("low"):
        assert "ok" == pipe.call(lambda: "ok")
    assert 0.5 == s.utilisation
    b.release()
    b.release()


async def test_utilisation_of_an_adaptive_limit_follows_the_learned_limit() -> None:
    al = AdaptiveLimit(AIMD(initial_limit=4, min_limit=1, max_limit=10, backoff_ratio=0.5))
    s = LoadShedder(al)
    pipe = Pipeline([al, s])  # default order puts the shedder (55) outside the limit (58)
    assert [s, al] == list(pipe.policies)
    gate = asyncio.Event()
    held = [asyncio.create_task(pipe.call_async(gate.wait)) for _ in range(2)]
    await asyncio.sleep(0)
    assert (2, 4) == (s.inflight, s.limit)

    async def sheddable() -> None:
        with criticality("sheddable"):
            await pipe.call_async(asyncio.sleep, 0)

    with pytest.raises(LoadShed):
        await sheddable()  # 2 of 4: 50%
    gate.set()
    await asyncio.gather(*held)
    # The limit dropped (a timeout halves it): the same load now means more utilisation.

    async def timeout() -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        await pipe.call_async(timeout)
    assert 2 == s.limit
