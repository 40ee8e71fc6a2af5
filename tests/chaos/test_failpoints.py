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
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import buttress
from buttress.chaos import failpoints as fps
from buttress.chaos.failpoints import FailpointSyntaxError, parse
from buttress.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_value() -> Iterator[None]:
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
    # JSONDecodeError needs 3 arguments: refused when read, not a TypeError at the failpoint
    with pytest.raises(FailpointSyntaxError, match="cannot be built from one message"):
        fps.configure("e", 'raise(json.JSONDecodeError, "x")')
    fps.configure("e", 'raise(TimeoutError, "took too long")')
    with pytest.raises(TimeoutError, match="took too long"):
        buttress.failpoint("e")


@pytest.mark.parametrize(
    ("spec", "position", "fragment"),
    [
        ("30%3*rais(ConnectionError)", 6, "unknown action 'rais'"),
        ("150%off", 1, "percentage must be in [0, 100]"),
        ("0*off", 1, "count must be an integer >= 1"),
        ("sleep(soon)", 7, "sleep needs a finite number of milliseconds"),
        ("sleep(nan)", 7, "sleep needs a finite number of milliseconds"),
        ("off->sleep(inf)", 12, "sleep needs a finite number of milliseconds"),
        ("sleep(-inf)", 7, "sleep needs a finite number of milliseconds"),
        ("sleep(-5)", 7, "sleep needs a finite number of milliseconds"),
        ("sleep(1e300)", 7, "sleep needs a finite number of milliseconds"),
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


# -- imports: a spec never makes the process import a module unless allowed ------------------------


def _marker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A module on sys.path whose import leaves a marker file (a side effect we can see)."""
    name = f"fp_marker_{uuid.uuid4().hex[:12]}"
    marker = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('yes')\n"
        "class Boom(Exception):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


def test_raise_never_imports_a_module_that_is_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, marker = _marker_module(tmp_path, monkeypatch)
    with pytest.raises(FailpointSyntaxError) as info:
        fps.configure("p", f"raise({name}.Boom)")
    assert 7 == info.value.position + 1
    assert "is not imported" in str(info.value)
    assert "BUTTRESS_FAILPOINTS_IMPORTS" in str(info.value)
    assert (False, False) == (marker.exists(), name in sys.modules)
    assert {} == fps.active()


def test_raise_over_http_cannot_import_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, marker = _marker_module(tmp_path, monkeypatch)
    server = fps.serve_control()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/failpoints/p"
        req = urllib.request.Request(url, data=f"raise({name}.Boom)".encode(), method="PUT")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req)
        assert 400 == info.value.code
        assert "is not imported" in json.loads(info.value.read())["error"]
    finally:
        server.shutdown()
        server.server_close()
    assert (False, False) == (marker.exists(), name in sys.modules)


def test_allow_list_permits_the_import_and_loaded_modules_need_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, marker = _marker_module(tmp_path, monkeypatch)
    previous = fps.allow_imports([name])
    try:
        fps.configure("p", f"raise({name}.Boom, 'boom')")
    finally:
        fps.allow_imports(previous)
    assert marker.exists()
    boom = sys.modules[name].Boom
    with pytest.raises(boom, match="boom"):
        buttress.failpoint("p")
    # Now that the module is loaded, no allow-list is needed; a bad allow-list entry is refused.
    fps.configure("q", f"raise({name}.Boom)")
    with pytest.raises(ConfigError, match="dotted module name"):
        fps.allow_imports(["not a module"])
    monkeypatch.delitem(sys.modules, name)


# -- the environment never breaks the import -----------------------------------------------------


def test_a_malformed_env_entry_is_skipped_and_reported_with_its_position(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = "a=sleep(nan);b=return(7);c=bogus"
    with pytest.warns(fps.FailpointEnvWarning) as warned:
        found = fps.load_env({fps.ENV_VAR: text})
    assert {"b": "return(7)"} == found
    assert 7 == buttress.failpoint("b")
    assert buttress.failpoint("a") is None
    first, second = (str(w.message) for w in warned)
    assert f"'a=sleep(nan)': at position {text.index('nan') + 1}: sleep needs" in first
    assert f"'c=bogus': at position {text.index('bogus') + 1}: unknown action" in second
    logged = [r.getMessage() for r in caplog.records if r.name == "buttress.failpoints.env"]
    assert 2 == len(logged)
    assert "skipped failpoint entry 'c=bogus'" in logged[1]


def test_load_env_strict_raises_and_configures_nothing() -> None:
    with pytest.raises(FailpointSyntaxError) as info:
        fps.load_env({fps.ENV_VAR: "b=return(7);a=sleep(nan)"}, strict=True)
    assert "b=return(7);a=sleep(nan)".index("nan") == info.value.position
    assert {} == fps.active()
    with pytest.raises(ConfigError, match="expected host:port"):
        fps.load_env({fps.ENV_HTTP: "nowhere"}, strict=True)


def test_a_bad_http_address_in_the_env_is_reported_not_raised() -> None:
    with pytest.warns(fps.FailpointEnvWarning, match="expected host:port"):
        assert {} == fps.load_env({fps.ENV_HTTP: "127.0.0.1:http"})


def test_import_and_the_cli_survive_a_malformed_env_in_a_real_process() -> None:
    env = dict(os.environ, BUTTRESS_FAILPOINTS="a=sleep(nan);b=return(7);=oops")
    env.pop("PYTHONWARNINGS", None)
    out = subprocess.run(
        [sys.executable, "-c", "import buttress; print(buttress.failpoint('b'))"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (0, "7") == (out.returncode, out.stdout.strip())
    lines = out.stderr.splitlines()
    assert 2 == len(lines), out.stderr
    assert lines[0].startswith("$BUTTRESS_FAILPOINTS:9: FailpointEnvWarning: skipped")
    assert "at position 9: sleep needs a finite number" in lines[0]
    assert "entry '=oops': at position 26: expected 'name=spec'" in lines[1]
    cli = Path(sys.executable).parent / "buttress"
    out = subprocess.run(
        [str(cli), "--version"], env=env, capture_output=True, text=True, check=False
    )
    assert (0, "buttress, version") == (out.returncode, out.stdout[: len("buttress, version")])
    # `buttress --version` no longer loads the failpoints at all (the top level is lazy).
    assert "" == out.stderr


def test_warnings_as_errors_still_do_not_break_the_import() -> None:
    env = dict(
        os.environ,
        BUTTRESS_FAILPOINTS="a=bogus",
        BUTTRESS_FAILPOINTS_HTTP="x",
        BUTTRESS_FAILPOINTS_IMPORTS="not a module",
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import buttress; print('imported')"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (0, "imported") == (out.returncode, out.stdout.strip())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {} == fps.load_env({fps.ENV_VAR: "a=bogus"})
