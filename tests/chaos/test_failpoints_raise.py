"""What ``raise(X)`` may name: classes built from one message; SystemExit and KeyboardInterrupt
only when explicitly allowed (a parameter, or ``$BUTTRESS_FAILPOINTS_ALLOW_EXIT``)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator

import pytest

import buttress
from buttress.chaos import failpoints as fps
from buttress.chaos.failpoints import FailpointEnvWarning, FailpointSyntaxError


@pytest.fixture(autouse=True)
def clean() -> Iterator[None]:
    fps.clear()
    previous = fps.allow_exit_exceptions(False)
    yield
    fps.allow_exit_exceptions(previous)
    fps.clear()


class NeedsTwo(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(a, b)


class Keyworded(Exception):
    def __init__(self, *, code: int) -> None:
        super().__init__(code)


class Fine(Exception):
    pass


@pytest.mark.parametrize(
    "spec",
    [
        "raise(UnicodeDecodeError)",
        'raise(UnicodeDecodeError, "x")',
        "raise(json.JSONDecodeError)",
        f"raise({__name__}.NeedsTwo)",
        f"raise({__name__}.Keyworded, 'boom')",
        "raise(ExceptionGroup)",
    ],
)
def test_classes_that_need_more_than_one_message_are_refused_at_parse(spec: str) -> None:
    import json  # noqa: F401 - in sys.modules for the dotted name

    with pytest.raises(FailpointSyntaxError) as info:
        fps.configure("p", spec)
    assert "cannot be built from one message" in str(info.value)
    assert spec.index("(") + 1 == info.value.position
    assert {} == fps.active()


def test_one_message_classes_raise_with_the_message_or_the_failpoint_name() -> None:
    fps.configure("p", f"raise({__name__}.Fine, 'boom')")
    with pytest.raises(Fine, match=r"^boom$"):
        buttress.failpoint("p")
    fps.configure("p", "raise(ConnectionResetError)")
    with pytest.raises(ConnectionResetError, match=r"^failpoint p$"):
        buttress.failpoint("p")


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt"])
def test_exit_exceptions_are_refused_by_default(name: str) -> None:
    with pytest.raises(FailpointSyntaxError) as info:
        fps.configure("p", f"raise({name})")
    assert "ends the process" in str(info.value)
    assert "BUTTRESS_FAILPOINTS_ALLOW_EXIT" in str(info.value)
    assert {} == fps.active()


@pytest.mark.parametrize("cls", [SystemExit, KeyboardInterrupt])
def test_exit_exceptions_pass_when_allowed_by_parameter(cls: type[BaseException]) -> None:
    fps.configure("p", f"raise({cls.__name__}, 'bye')", allow_exit=True)
    with pytest.raises(cls):
        buttress.failpoint("p")
    # per failpoint: another one still refuses them
    with pytest.raises(FailpointSyntaxError):
        fps.configure("q", f"raise({cls.__name__})")


def test_exit_exceptions_pass_when_allowed_process_wide() -> None:
    fps.allow_exit_exceptions(True)
    fps.configure("p", "raise(SystemExit)")
    with pytest.raises(SystemExit):
        buttress.failpoint("p")
    with pytest.raises(FailpointSyntaxError):  # an explicit False still refuses
        fps.configure("q", "raise(SystemExit)", allow_exit=False)


def test_load_env_skips_exit_exceptions_unless_the_flag_is_set() -> None:
    env = {"BUTTRESS_FAILPOINTS": "a=raise(SystemExit);b=raise(KeyboardInterrupt);c=return(1)"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert {"c": "return(1)"} == fps.load_env(env)
    assert 2 == sum(issubclass(w.category, FailpointEnvWarning) for w in caught)
    assert {"c"} == set(fps.active())
    with pytest.raises(FailpointSyntaxError, match="ends the process"):
        fps.load_env(env, strict=True)
    fps.clear()
    found = fps.load_env({**env, "BUTTRESS_FAILPOINTS_ALLOW_EXIT": "1"})
    assert {"a", "b", "c"} == set(found)
    with pytest.raises(KeyboardInterrupt):
        buttress.failpoint("b")


def test_the_environment_in_a_real_process() -> None:
    code = (
        "import buttress\n"
        "print(buttress.failpoint('x'))\n"  # skipped: None
        "try:\n    buttress.failpoint('y')\n"
        "except ConnectionError as e:\n    print('raised', e)\n"
    )
    base = dict(
        os.environ,
        BUTTRESS_FAILPOINTS="x=raise(SystemExit);y=raise(ConnectionError);z=raise(NotAClass)",
    )
    base.pop("BUTTRESS_FAILPOINTS_ALLOW_EXIT", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True
    )
    assert ["None", "raised failpoint y"] == out.stdout.splitlines()
    assert "ends the process" in out.stderr
    assert "Traceback" not in out.stderr
    allowed = {**base, "BUTTRESS_FAILPOINTS_ALLOW_EXIT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=allowed, capture_output=True, text=True, check=False
    )
    # SystemExit("failpoint x") ended it: the message on stderr, status 1
    assert (1, "") == (out.returncode, out.stdout)
    assert "failpoint x" == out.stderr.strip().splitlines()[-1]
