"""Logging listener, observed with caplog on the real ``buttress`` logger."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import pytest

from buttress import Backoff, ConfigError, Pipeline, Retry
from buttress.events import Emitter, Event
from buttress.telemetry import logging as blog
from buttress.testing import FakeClock

from .scenario import run_scenario

FIELDS = ("event", "pipeline", "policy")


@pytest.fixture
def installed() -> object:
    remove = blog.install()
    yield remove
    remove()


async def test_levels_names_and_fields(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, installed: object
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress")
    await run_scenario(clock)
    records = [r for r in caplog.records if r.name == "buttress"]

    # Every record's message starts with its event name, which is also the ``event`` field.
    for r in records:
        assert r.getMessage().split(" ", 1)[0] == r.event
        assert r.event.startswith("buttress_")

    levels = Counter((r.event, r.levelname) for r in records)
    assert {
        ("buttress_retry_attempt_failed", "DEBUG"): 9,
        ("buttress_retry_attempt_succeeded", "DEBUG"): 1,
        ("buttress_pipeline_call_succeeded", "DEBUG"): 2,
        ("buttress_retry_scheduled", "INFO"): 5,
        ("buttress_fallback_used", "INFO"): 1,
        ("buttress_pipeline_call_failed", "INFO"): 3,
        ("buttress_retry_gave_up", "WARNING"): 4,
        ("buttress_retry_budget_exhausted", "WARNING"): 1,
        ("buttress_timeout_exceeded", "WARNING"): 3,
    } == dict(levels)

    gave_up = [r for r in records if r.event == "buttress_retry_gave_up"]
    reasons = sorted((r.pipeline, r.reason) for r in gave_up)
    assert [
        ("async_search", "attempts"),
        ("inventory", "deadline"),
        ("payments", "attempts"),
        ("search", "budget"),
    ] == reasons
    payments = next(r for r in gave_up if r.pipeline == "payments")
    assert "retry" == payments.policy
    assert 3 == payments.attempts
    assert "ConnectionError: dependency down" == payments.error
    assert (
        "buttress_retry_gave_up pipeline='payments' policy='retry' attempts=3 reason='attempts' "
        "error='ConnectionError: dependency down'"
    ) == payments.getMessage()

    scheduled = [r for r in records if r.event == "buttress_retry_scheduled"]
    assert {0.5} == {r.delay for r in scheduled}
    ok = next(r for r in records if r.event == "buttress_pipeline_call_succeeded")
    assert 1.0 == ok.duration

    # Every extra field is something a JSON formatter can write as it is.
    for r in records:
        assert all(isinstance(getattr(r, k), str) for k in FIELDS)
        extra = {k: v for k, v in vars(r).items() if k not in vars(logging.makeLogRecord({}))}
        json.dumps(extra)


def test_logger_level_filters_before_building_anything(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, installed: object
) -> None:
    caplog.set_level(logging.WARNING, logger="buttress")
    p = Pipeline(
        [Retry(attempts=2, backoff=Backoff.constant(0.1), budget=None, clock=clock)],
        name="quiet",
        clock=clock,
    )
    p.call(lambda: 1)
    with pytest.raises(KeyError):
        p.call(_key_error)
    assert [("buttress_retry_gave_up", logging.WARNING)] == [
        (r.event, r.levelno) for r in caplog.records if r.name == "buttress"
    ]


def _key_error() -> None:
    raise KeyError("k")


def test_nested_handover_is_debug_not_warning(
    clock: FakeClock, caplog: pytest.LogCaptureFixture, installed: object
) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress")
    inner = Pipeline(
        [Retry(attempts=3, backoff=Backoff.constant(0.1), budget=None, clock=clock)],
        name="inner",
        clock=clock,
    )
    outer = Pipeline(
        [Retry(attempts=2, backoff=Backoff.constant(0.1), budget=None, clock=clock)],
        name="outer",
        clock=clock,
    )
    with pytest.raises(ConnectionError):
        outer.call(lambda: inner.call(_conn_error))
    gave_up = [
        (r.pipeline, r.reason, r.levelname)
        for r in caplog.records
        if getattr(r, "event", "") == "buttress_retry_gave_up"
    ]
    # The inner retry hands over twice (once per outer attempt); the outer one really gives up.
    assert [
        ("inner", "nested", "DEBUG"),
        ("inner", "nested", "DEBUG"),
        ("outer", "attempts", "WARNING"),
    ] == gave_up


def _conn_error() -> None:
    raise ConnectionError("down")


def test_overrides_by_name_and_kind_and_plain_message(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custom")
    p = Pipeline(
        [Retry(attempts=2, backoff=Backoff.constant(0.1), budget=None, clock=clock)],
        name="tuned",
        clock=clock,
    )
    remove = blog.install(
        "custom",
        levels={"buttress_retry_scheduled": "ERROR", "gave_up": logging.CRITICAL},
        fields_in_message=False,
        pipeline=p,
    )
    try:
        with pytest.raises(ConnectionError):
            p.call(_conn_error)
    finally:
        remove()
    got = [(r.getMessage(), r.levelname) for r in caplog.records if r.name == "custom"]
    assert [
        ("buttress_retry_attempt_failed", "DEBUG"),
        ("buttress_retry_scheduled", "ERROR"),
        ("buttress_retry_attempt_failed", "DEBUG"),
        ("buttress_retry_gave_up", "CRITICAL"),
        ("buttress_pipeline_call_failed", "INFO"),
    ] == got


@dataclass(frozen=True, slots=True)
class Probe(Event):
    """An event from another module: its own level, and field names LogRecord already uses."""

    policy_type: ClassVar[str] = "probe"
    kind: ClassVar[str] = "checked"
    log_level: ClassVar[int] = logging.ERROR
    module: str
    payload: object


def test_own_level_reserved_names_and_long_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="buttress")
    em = Emitter("probes")
    remove = blog.install(pipeline=None)
    try:
        em.emit(Probe("probes", "probe", 0.0, "m", list(range(1000))))
    finally:
        remove()
    (r,) = [r for r in caplog.records if r.name == "buttress"]
    assert "ERROR" == r.levelname
    assert "m" == r.buttress_module
    assert "logging" == r.module  # the LogRecord's own field is untouched (the listener's module)
    assert 200 == len(r.payload)
    assert r.payload.endswith("...")


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"levels": {"gave_up": "LOUD"}}, "levels['gave_up']"),
        ({"levels": {"gave_up": True}}, "levels['gave_up']"),
        ({"levels": {"": 10}}, "levels"),
        ({"default_level": 2.5}, "default_level"),
        ({"logger": 42}, "logger"),
    ],
)
def test_bad_input_names_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ConfigError) as err:
        blog.install(**kwargs)  # type: ignore[arg-type]
    assert parameter == err.value.parameter
