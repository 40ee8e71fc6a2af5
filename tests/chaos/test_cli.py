"""`buttress proxy serve` and `buttress chaos check` as real subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from buttress.chaos.checker import History
from buttress.chaos.client import Client

from .servers import EchoServer, recv_exact


def test_proxy_serve_populates_from_config_and_stops_on_sigterm(tmp_path: Path) -> None:
    with EchoServer() as echo:
        cfg = tmp_path / "proxies.json"
        cfg.write_text(json.dumps([{"name": "echo", "upstream": echo.addr}]))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "buttress.cli",
                "proxy",
                "serve",
                "--port",
                "0",
                "--config",
                str(cfg),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            assert "control API on http://127.0.0.1:" in line
            url = line.strip().rsplit(" ", 1)[-1]
            with Client(url) as api:
                p = api.get("echo")
                import socket

                with socket.create_connection((p.host, p.port), timeout=5) as s:
                    s.sendall(b"hi")
                    assert b"hi" == recv_exact(s, 2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        assert 0 == proc.returncode


def test_proxy_serve_bad_config_is_one_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "proxies.json"
    cfg.write_text('[{"name": "x"}]')
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "buttress.cli",
            "proxy",
            "serve",
            "--port",
            "0",
            "--config",
            str(cfg),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert 2 == out.returncode
    assert f"{cfg}: [0]: missing required field: upstream" in out.stderr
    assert "Traceback" not in out.stderr


def test_chaos_check_cli(tmp_path: Path) -> None:
    h = History()
    for v in range(3):
        h.add(v).ok()
    h.final_read([0, 2])
    path = tmp_path / "h.jsonl"
    h.dump(path)
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "chaos", "check", str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert 1 == out.returncode
    assert "INVALID" in out.stdout
    assert "lost: [1]" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "buttress.cli", "chaos", "check", "--json", str(path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=30,
    )
    assert [1] == json.loads(out.stdout)["lost"]


def test_example_experiments_validate() -> None:
    from buttress.chaos.experiment import load_experiment

    examples = sorted((Path(__file__).parents[2] / "examples" / "chaos").glob("*.*"))
    assert 2 <= len(examples)
    for path in examples:
        assert load_experiment(path).experiment.title
