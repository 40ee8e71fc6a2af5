"""The package as users meet it: exports, typing marker, the CLI entry point."""

from __future__ import annotations

import importlib.resources
import inspect
import subprocess
import sys

import buttress


def test_py_typed_is_shipped() -> None:
    assert importlib.resources.files("buttress").joinpath("py.typed").is_file()


def test_all_is_exact_and_importable() -> None:
    names = buttress.__all__
    assert len(names) == len(set(names)), "a name is exported twice"
    for name in names:
        assert hasattr(buttress, name), f"{name} is in __all__ but not importable"


def test_public_callables_are_documented() -> None:
    undocumented = [
        name
        for name in buttress.__all__
        if (inspect.isclass(getattr(buttress, name)) or inspect.isfunction(getattr(buttress, name)))
        and not inspect.getdoc(getattr(buttress, name))
    ]
    assert [] == undocumented


def test_cli_version_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"buttress, version {buttress.__version__}" == out.stdout.strip()
    helped = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "spec" in helped.stdout
    assert "lab" in helped.stdout


def test_cli_reports_bad_spec_without_traceback(tmp_path: object) -> None:
    import pathlib

    assert isinstance(tmp_path, pathlib.Path)
    bad = tmp_path / "reliability.yaml"
    bad.write_text("policies:\n  payments:\n    retri: {attempts: 3}\n")
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "spec", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert 2 == out.returncode
    assert "Traceback" not in out.stderr
    assert f"{bad}:3:5: policies.payments.retri: unknown key 'retri'; did you mean 'retry'?" in (
        out.stderr
    )
