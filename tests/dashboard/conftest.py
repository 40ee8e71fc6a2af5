"""Fixtures: free ports, a real uvicorn serving the dashboard, a real writer process, real
Chaos Toolkit journals and a headless Chromium (Debian's, never downloaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _lab_lock import lab_lock
from buttress.dashboard.app import create_app, make_server
from buttress.dashboard.state import DashboardConfig

__all__ = ["lab_lock"]  # one shop lab at a time, shared with tests/shop (tests/_lab_lock.py)

HERE = Path(__file__).parent
SPEC = HERE / "shop.yaml"
ROOT = HERE.parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Served:
    url: str
    app: Any
    server: Any
    thread: threading.Thread


def serve(config: DashboardConfig) -> Served:
    """Start the dashboard on a real uvicorn, in a thread, on a free port of 127.0.0.1."""
    app = create_app(config)
    server = make_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, name="dashboard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Served(f"http://127.0.0.1:{port}", app, server, thread)


def stop(served: Served) -> None:
    served.server.should_exit = True
    served.thread.join(10)
    assert not served.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def served_factory() -> Iterator[Any]:
    started: list[Served] = []

    def make(config: DashboardConfig) -> Served:
        s = serve(config)
        started.append(s)
        return s

    yield make
    for s in started:
        stop(s)


@dataclass
class Writer:
    proc: subprocess.Popen[str]
    store: Path
    control: Path

    def fail(self) -> None:
        self.control.write_text("down")

    def recover(self) -> None:
        self.control.unlink(missing_ok=True)


def start_writer(tmp: Path, *, seconds: float = 40, history: int = 30) -> Writer:
    store = tmp / "shop.db"
    control = tmp / "payments-down"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "writer.py"),
            str(store),
            str(SPEC),
            str(control),
            "--seconds",
            str(seconds),
            "--history",
            str(history),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError(f"writer did not start: {line!r}")
    return Writer(proc, store, control)


def stop_writer(w: Writer) -> None:
    if w.proc.poll() is None:
        w.proc.terminate()
        try:
            w.proc.wait(10)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()
    if w.proc.stdout is not None:
        w.proc.stdout.close()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = start_writer(tmp_path)
    yield w
    stop_writer(w)


EXPERIMENT = {
    "version": "1.0.0",
    "title": "TITLE",
    "description": "a file that must stay in place",
    "steady-state-hypothesis": {
        "title": "the file is there",
        "probes": [
            {
                "type": "probe",
                "name": "file-exists",
                "tolerance": 0,
                "provider": {"type": "process", "path": "test", "arguments": ["-e", "FILE"]},
            }
        ],
    },
    "method": [],
    "rollbacks": [],
}


def run_experiment(directory: Path, name: str, *, remove_file: bool) -> Path:
    """Run a real Chaos Toolkit experiment (``chaos run``) and return its journal's path.

    The hypothesis checks a file exists; with ``remove_file`` the method deletes it, so the
    experiment deviates."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.target"
    target.write_text("x")
    exp = json.loads(json.dumps(EXPERIMENT).replace("FILE", str(target)))
    exp["title"] = f"{name} keeps its file"
    if remove_file:
        exp["method"] = [
            {
                "type": "action",
                "name": "remove-the-file",
                "provider": {"type": "process", "path": "rm", "arguments": [str(target)]},
            }
        ]
    exp_path = directory / f"{name}.experiment.yaml"
    exp_path.write_text(json.dumps(exp))
    journal = directory / f"{name}.json"
    chaos = Path(sys.executable).parent / "chaos"
    r = subprocess.run(
        [
            str(chaos),
            "--no-version-check",
            "--settings",
            os.devnull,
            "--log-file",
            str(directory / f"{name}.log"),
            "run",
            "--journal-path",
            str(journal),
            str(exp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert journal.exists(), r.stderr
    return journal


@pytest.fixture(scope="session")
def journals_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("journals")
    run_experiment(d, "steady", remove_file=False)
    run_experiment(d, "deviating", remove_file=True)
    (d / "broken.json").write_text('{"experiment": {"title": "cut short"}, "status": ')
    return d


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    yield pg
    context.close()
