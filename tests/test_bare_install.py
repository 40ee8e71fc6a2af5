"""A bare install (``pip install buttress``, no extras): every command's common path either works
or ends in one line naming the extra to install, never in a traceback.

Builds a virtual environment in tmp_path and installs this checkout into it without extras,
through pip's configured index (as ``make`` installs), so only the bare dependencies (click,
PyYAML, pydantic) are there.  About a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"

pytestmark = [pytest.mark.slow, pytest.mark.serial]


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("bare") / "venv"
    # No pip of its own (ensurepip costs seconds): this interpreter's pip installs into it.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    py = venv / "bin" / "python"
    # A copy of the tree, so the build writes nothing (build/, *.egg-info) into the checkout.
    src = tmp_path_factory.mktemp("src")
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(src / "t.tar"), "HEAD"],
        check=True,
        timeout=60,
    )
    subprocess.run(["tar", "-xf", str(src / "t.tar"), "-C", str(src)], check=True, timeout=60)
    # Then the working tree's package over it, so the test checks the code as it is now.
    subprocess.run(
        ["cp", "-r", str(ROOT / "src" / "buttress"), str(src / "src")], check=True, timeout=60
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr[-3000:]
    return venv


def test_the_bare_install_has_no_extras(bare: Path) -> None:
    code = "import importlib.util as u; print([m for m in ('numpy', 'httpx', 'jinja2', "
    code += "'starlette', 'redis') if u.find_spec(m)])"
    out = subprocess.run(
        [str(bare / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "[]" == out.stdout.strip()


COMMANDS = [
    ["--version"],
    ["--help"],
    ["spec", "validate", str(EX / "slo" / "reliability.yaml")],
    ["spec", "schema"],
    ["assess", str(EX / "assess" / "reliability.yaml")],
    ["assess", "--help"],
    ["slo", "validate", str(EX / "slo" / "reliability.yaml")],
    ["slo", "generate", str(EX / "slo" / "reliability.yaml"), "--out", "{tmp}"],
    ["slo", "status", str(EX / "slo" / "reliability.yaml"), "--db", "{tmp}/slo.db"],
    ["slo", "convert", str(EX / "slo" / "sloth.yaml"), "--to", "reliability"],
    ["lab", "--help"],
    ["lab", str(EX / "shop")],
    ["chaos", "validate", str(EX / "chaos" / "latency-game-day.yaml")],
    ["chaos", "--help"],
    ["proxy", "--help"],
    ["dashboard", "--help"],
    ["health", "probe", "http://127.0.0.1:9/health", "--timeout", "0.5"],
    ["incident", "list", "--store", "{tmp}/incidents.db"],
    ["incident", "serve", "--store", "{tmp}/incidents.db", "--port", "0"],
    ["report", "--store", "{tmp}/incidents.db"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_each_command_works_or_names_its_extra(bare: Path, tmp_path: Path, args: list[str]) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUTTRESS_")}
    if args[:2] == ["slo", "status"]:  # a store to read: record into it first
        record = ["slo", "record", "--db", f"{tmp_path}/slo.db", "--slo", "checkout-availability"]
        subprocess.run(
            [str(bare / "bin" / "buttress"), *record, "--good", "9", "--total", "10"],
            check=True,
            timeout=120,
            env=env,
            capture_output=True,
        )
    proc = subprocess.run(
        [str(bare / "bin" / "buttress"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if any("pip install 'buttress[" in line for line in lines):
        # the missing extra, named in one line
        assert (True, 1) == (proc.returncode != 0, len(lines)), proc.stderr
        return
    # otherwise it worked: 0, or 1 for a verdict (a failing probe, a missed target) or a usage
    # error that click reports itself in a line or two
    assert proc.returncode in (0, 1), proc.stderr
