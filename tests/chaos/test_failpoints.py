"""Failpoints: the fail(9)-style grammar, evaluation semantics, env loading, HTTP control."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

import buttress
from buttress.chaos import failpoints as fps
from buttress.chaos.failpoints import FailpointSyntaxError, parse
from buttress.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    fps.clear()
    yield
    fps.clear()


def test_disabled_failpoint_does_nothing() -> None:
    assert buttress.failpoint("nowhere") is None


def test_issue_example_raises_three_times_then_sleeps() -> None:
    fp = fps.configure("payments.charge", "100%3*raise(ConnectionError)->sleep(1)->off")
    for _ in range(3):
        with pytest.raises(ConnectionError):
            buttress.failpoint("payments.charge")
    t0 = time.perf_counter()
    assert buttress.failpoint("payments.charge") is None
    assert time.perf_counter() - t0 >= 0.001
    assert (4, 4) == (fp.passes, fp.fired)


def test_percentages_are_exact_at_the_edges_and_near_the_rate_in_between() -> None:
    fps.configure("never", "0%return(1)")
    fps.configure("always", "100%return(1)")
    assert [None] * 500 == [buttress.failpoint("never") for _ in range(500)]
    assert [1] * 500 == [buttress.failpoint("always") for _ in range(500)]
    fps.configure("third", "30%return(1)", seed=7)
    hits = sum(buttress.failpoint("third") == 1 for _ in range(10_000))
    assert 2800 <= hits <= 3200


def test_first_firing_term_wins_and_counts_run_out() -> None:
    fps.configure("fp", "2*return(1)->1*return(2)->return(3)")
    assert [1, 1, 2, 3, 3] == [buttress.failpoint("fp") for _ in range(5)]


def test_return_values_are_typed() -> None:
    cases = {
        "return(5)": 5,
        "return(2.5)": 2.5,
        "return(true)": True,
        "return(null)": None,
        'return("a, b")': "a, b",
        "return(word)": "word",
        "return()": True,
    }
    for spec, expected in cases.items():
        fps.configure("v", spec)
        assert expected == buttress.failpoint("v"), spec


def test_raise_with_message_and_dotted_exception() -> None:
    fps.configure("e", 'raise(json.JSONDecodeError, "x")')
    with pytest.raises(TypeError):  # JSONDecodeError needs 3 args: the class resolved, then called
        buttress.failpoint("e")
    fps.configure("e", 'raise(TimeoutError, "took too long")')
    with pytest.raises(TimeoutError, match="took too long"):
        buttress.failpoint("e")


@pytest.mark.parametrize(
    ("spec", "position", "fragment"),
    [
        ("30%3*rais(ConnectionError)", 6, "unknown action 'rais'"),
        ("150%off", 1, "percentage must be in [0, 100]"),
        ("0*off", 1, "count must be an integer >= 1"),
        ("sleep(soon)", 7, "sleep needs milliseconds"),
        ("raise(NoSuchError)", 7, "not an exception class"),
        ("return(1) off", 11, "expected '->'"),
        ("return(1->off", 7, "'(' is never closed"),
        ("off->", 6, "expected a term"),
        ("off(1)", 5, "off takes no arguments"),
        ("12off", 3, "expected '%' after a percentage or '*' after a count"),
    ],
)
def test_malformed_specs_name_the_position(spec: str, position: int, fragment: str) -> None:
    with pytest.raises(FailpointSyntaxError) as info:
        parse(spec, "db.write")
    assert position == info.value.position + 1
    assert fragment in str(info.value)
    assert "failpoint 'db.write'" in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_configured_restores_the_previous_setting() -> None:
    fps.configure("x", "return(1)")
    with fps.configured("x", "return(2)"):
        assert 2 == buttress.failpoint("x")
    assert 1 == buttress.failpoint("x")
    with fps.configured("y", "return(3)"):
        assert 3 == buttress.failpoint("y")
    assert buttress.failpoint("y") is None
    assert {"x": "return(1)"} == fps.active()


def test_callable_action_and_disable() -> None:
    calls: list[int] = []
    fps.configure("cb", lambda: calls.append(1))
    buttress.failpoint("cb")
    buttress.failpoint("cb")
    assert [1, 1] == calls
    assert fps.disable("cb") is True
    assert fps.disable("cb") is False
    buttress.failpoint("cb")
    assert [1, 1] == calls


async def test_async_failpoint_sleeps_without_blocking_the_loop() -> None:
    fps.configure("slow", "sleep(50)")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.005)
            ticks += 1

    t0 = time.perf_counter()
    await asyncio.gather(buttress.failpoint_async("slow"), ticker())
    assert time.perf_counter() - t0 >= 0.05
    assert 5 == ticks


async def test_pause_holds_until_disabled() -> None:
    fps.configure("gate", "pause")
    task = asyncio.create_task(buttress.failpoint_async("gate"))
    await asyncio.sleep(0.03)
    assert not task.done()
    fps.disable("gate")
    await asyncio.wait_for(task, 1.0)


def test_env_grammar_is_loaded_at_import_in_a_real_process() -> None:
    code = (
        "import buttress\n"
        "try:\n    buttress.failpoint('payments.charge')\n"
        "except ConnectionError:\n    print('raised')\n"
        "print(buttress.failpoint('db.write'))\n"
    )
    env = dict(
        os.environ, BUTTRESS_FAILPOINTS="payments.charge=raise(ConnectionError);db.write=return(7)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert ["raised", "7"] == out.stdout.split()


def test_env_errors_name_the_position_in_the_variable() -> None:
    text = "a=return(1);b=30%x"
    with pytest.raises(FailpointSyntaxError) as info:
        fps.parse_env(text)
    assert text.index("x") == info.value.position
    with pytest.raises(FailpointSyntaxError, match="expected 'name=spec'"):
        fps.parse_env("a=off;nonsense")


def test_http_control_configures_lists_and_rejects_bad_specs() -> None:
    server = fps.serve_control()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/failpoints"
        req = urllib.request.Request(f"{base}/svc.read", data=b"return(42)", method="PUT")
        with urllib.request.urlopen(req) as resp:
            assert 200 == resp.status
        assert 42 == buttress.failpoint("svc.read")
        with urllib.request.urlopen(base) as resp:
            listed = json.loads(resp.read())
        assert "return(42)" == listed["svc.read"]["spec"]
        bad = urllib.request.Request(f"{base}/svc.read", data=b"return(42", method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(bad)
        assert 400 == info.value.code
        assert "never closed" in json.loads(info.value.read())["error"]
        delete = urllib.request.Request(f"{base}/svc.read", method="DELETE")
        with urllib.request.urlopen(delete) as resp:
            assert 204 == resp.status
        assert buttress.failpoint("svc.read") is None
    finally:
        server.shutdown()
        server.server_close()
