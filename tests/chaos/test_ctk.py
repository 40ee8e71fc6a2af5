"""The Chaos Toolkit extension, driven by the real `chaos` CLI from PyPI against our proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buttress.chaos import ctk, failpoints
from buttress.chaos.client import Client
from buttress.chaos.proxy import ProxyThread
from buttress.slo.recorder import SLIRecorder
from buttress.slo.store import SLIStore

from .servers import EchoServer, recv_exact

CHAOS = str(Path(sys.executable).with_name("chaos"))


def test_chaostoolkit_cli_runs_an_experiment_with_our_extension(
    tmp_path: Path, px: ProxyThread, api: Client, echo: EchoServer
) -> None:
    p = api.create("echo", echo.addr)
    mod = "buttress.chaos.ctk"
    # A declared SLO and its SLI store, filled through the recorder: 2 bad of 1000 now (burn 0.2).
    spec = tmp_path / "reliability.yaml"
    spec.write_text(
        "service: shop\nslos:\n  - name: echo-availability\n    objective: 99\n"
        "    sli: {kind: ratio, pipeline: echo}\n"
    )
    db = tmp_path / "sli.db"
    with SLIStore(db) as store, SLIRecorder(store) as rec:
        rec.record("echo-availability", 998, 1000)
    slo_probe = {
        "type": "probe",
        "name": "echo-budget",
        "tolerance": {
            "type": "probe",
            "name": "burning-slowly",
            "provider": {
                "type": "python",
                "module": mod,
                "func": "burn_rate_at_most",
                "arguments": {"limit": 2},
            },
        },
        "provider": {
            "type": "python",
            "module": mod,
            "func": "slo_burn_rate",
            "arguments": {
                "spec": str(spec),
                "store": str(db),
                "slo": "echo-availability",
                "window": "5m",
            },
        },
    }
    experiment = {
        "version": "1.0.0",
        "title": "latency on the echo service is survivable",
        "description": "adds 100 ms to the echo proxy, checks it, takes it away",
        "configuration": {"buttress_proxy_url": px.url},
        "steady-state-hypothesis": {
            "title": "the proxy exists",
            "probes": [
                {
                    "type": "probe",
                    "name": "proxy-exists",
                    "tolerance": True,
                    "provider": {
                        "type": "python",
                        "module": mod,
                        "func": "proxy_exists",
                        "arguments": {"name": "echo"},
                    },
                },
                slo_probe,
            ],
        },
        "method": [
            {
                "type": "action",
                "name": "add-latency",
                "provider": {
                    "type": "python",
                    "module": mod,
                    "func": "add_toxic",
                    "arguments": {
                        "proxy": "echo",
                        "type": "latency",
                        "name": "slow",
                        "attributes": {"latency": 100},
                    },
                },
            },
            {
                "type": "probe",
                "name": "toxics-now",
                "provider": {
                    "type": "python",
                    "module": mod,
                    "func": "list_toxics",
                    "arguments": {"proxy": "echo"},
                },
            },
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "remove-latency",
                "provider": {
                    "type": "python",
                    "module": mod,
                    "func": "remove_toxic",
                    "arguments": {"proxy": "echo", "name": "slow"},
                },
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    journal = tmp_path / "journal.json"
    out = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--no-log-file",
            "run",
            "--journal-path",
            str(journal),
            str(path),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert 0 == out.returncode, out.stdout + out.stderr
    d = json.loads(journal.read_text())
    assert "completed" == d["status"]
    assert d["steady_states"]["before"]["steady_state_met"] is True
    budget = d["steady_states"]["before"]["probes"][1]
    assert ("echo-budget", True) == (budget["activity"]["name"], budget["tolerance_met"])
    assert 0.2 == pytest.approx(budget["output"])
    toxics = d["run"][1]["output"]
    assert [("slow", "latency", 100)] == [
        (t["name"], t["type"], t["attributes"]["latency"]) for t in toxics
    ]
    assert [True] == [r["output"] for r in d["rollbacks"]]
    assert [] == p.toxics()  # the rollback really removed it
    # The 100 ms toxic is gone: the fastest of a few round trips is well under it (the fastest,
    # because a busy machine only ever adds time to a trip).
    trips = []
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        for _ in range(5):
            t0 = time.perf_counter()
            s.sendall(b"x")
            assert b"x" == recv_exact(s, 1)
            trips.append(time.perf_counter() - t0)
    assert min(trips) < 0.05, trips


def test_discover_lists_actions_and_probes() -> None:
    d = ctk.discover()
    kinds = {a["name"]: a["type"] for a in d["activities"]}
    assert "action" == kinds["add_toxic"]
    assert "probe" == kinds["slo_burn"]
    assert "buttress" == d["extension"]["name"]
    add = next(a for a in d["activities"] if a["name"] == "add_toxic")
    assert "proxy" in [arg["name"] for arg in add["arguments"]]


def test_failpoint_actions_local_and_remote() -> None:
    failpoints.clear()
    try:
        ctk.configure_failpoint(name="x", spec="return(5)")
        assert 5 == failpoints.failpoint("x")
        assert 1 == ctk.failpoint_hits(name="x")
        assert ctk.disable_failpoint(name="x") is True
        server = failpoints.serve_control()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            ctk.configure_failpoint(name="y", spec="return(6)", failpoints_url=url)
            assert 6 == failpoints.failpoint("y")
            assert 1 == ctk.failpoint_hits(name="y", failpoints_url=url)
            assert ctk.disable_failpoint(name="y", failpoints_url=url) is True
            assert 0 == ctk.failpoint_hits(name="y", failpoints_url=url)
        finally:
            server.shutdown()
            server.server_close()
    finally:
        failpoints.clear()
