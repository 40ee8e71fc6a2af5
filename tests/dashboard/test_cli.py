"""``buttress dashboard``: bad input is one clear line and exit status 2; a real server process
serves and stops on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.ports import free_port
from buttress.slo.store import SLIStore

from .conftest import SPEC


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "{tmp}/missing.db"], "--store {tmp}/missing.db: no such store"),
        (["--store", "{tmp}"], "is a directory, expected the SQLite store file"),
        (["--store", "{db}", "--port", "70000"], "invalid --port=70000: must be between 0 and"),
        (["--store", "{db}", "--stale-after", "0"], "invalid --stale-after=0.0"),
        (["--store", "{db}", "--spec", "{tmp}/nope.yaml"], "nope.yaml: file not found"),
        (["--store", "{db}", "--spec", "{tmp}"], "is a directory; give the reliability.yaml"),
        (["--store", "{db}", "--journals", "{tmp}/nope"], "--journals {tmp}/nope: no such dir"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "s.db"
    SLIStore(db).close()
    fill = {"tmp": str(tmp_path), "db": str(db)}
    r = CliRunner().invoke(main, ["dashboard", *(a.format(**fill) for a in args)])
    assert 2 == r.exit_code, r.output
    assert message.format(**fill) in r.output
    assert "Traceback" not in r.output


def test_listed_in_help() -> None:
    r = CliRunner().invoke(main, ["--help"])
    assert "dashboard" in r.output


def test_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    SLIStore(db).close()
    port = free_port()
    exe = Path(sys.executable).parent / "buttress"
    proc = subprocess.Popen(
        [str(exe), "dashboard", "--store", str(db), "--spec", str(SPEC), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "dashboard did not start"
                time.sleep(0.05)
        assert "pass" == r.json()["status"]
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "Buttress dashboard" in page.text
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert 0 == proc.returncode, err
        assert f"http://127.0.0.1:{port}/" in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
