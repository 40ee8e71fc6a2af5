"""Rules from reliability.yaml acting on real things: a mode, a real child process, an HTTP hook,
a command; and the located errors for unknown targets."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from buttress.errors import SpecError
from buttress.modes import ModeSwitch
from buttress.remediation import Journal, Signal, signal_from_event
from buttress.remediation.build import build_remediator
from buttress.spec import load_spec_text
from buttress.supervise import ProcessChild, Supervisor
from buttress.supervise.events import SupervisorGaveUp

CHILD = str(Path(__file__).parents[1] / "supervise" / "child.py")


def _spec(hook: str, record: Path) -> str:
    return f"""
supervision:
  name: shop
  children:
    - name: api
      command: [{sys.executable}, {CHILD}, --name, api, --record, {record}]
      backoff_initial: 0s
modes:
  - {{name: essential-only, off: [recommendations]}}
remediation:
  - name: degrade
    when: {{signal: slo_burn, subject: checkout}}
    action: {{mode: essential-only}}
    cooldown: 1h
  - name: recover
    when: {{signal: slo_burn, subject: checkout, state: clear}}
    action: {{clear_mode: true}}
  - name: restart-api
    when: {{signal: health_failing, subject: readiness}}
    action: {{restart: api}}
  - name: page
    when: {{signal: supervisor_gave_up}}
    action: {{http: "{hook}"}}
  - name: broken
    when: {{signal: disk_full}}
    action: {{command: [/bin/sh, -c, "echo no space >&2; exit 3"]}}
"""


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def hook() -> object:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


async def test_rules_act_on_real_targets_and_journal_everything(hook: str, tmp_path: Path) -> None:
    record = tmp_path / "rec"
    spec = load_spec_text(_spec(hook, record))
    switch = ModeSwitch.from_spec(spec)
    from buttress.supervise.spec import build_supervisor

    sup = build_supervisor(spec)
    journal = Journal(tmp_path / "journal.jsonl")
    rem = build_remediator(spec, switch=switch, supervisor=sup, journal=journal)
    task = asyncio.create_task(sup.run())
    try:
        while "ready" not in (record.read_text() if record.exists() else ""):
            await asyncio.sleep(0.01)
        # an SLO burns: the mode goes on; it recovers: the mode goes off
        rem.signal(Signal("slo_burn", "checkout", figures={"burn_rates": {"1h": 14.4}}))
        assert not switch.is_on("recommendations")
        rem.signal(Signal("slo_burn", "checkout", active=False))
        assert switch.is_on("recommendations")
        # readiness fails: the api is killed and its supervisor starts it again
        rem.signal(Signal("health_failing", "readiness"))
        for _ in range(500):
            if record.read_text().count("start api") >= 2:
                break
            await asyncio.sleep(0.01)
        assert 2 == record.read_text().count("start api")
        restarted = sup.snapshot()["children"][0]
        # a supervisor gives up: the hook hears about it
        event = SupervisorGaveUp("workers", "workers", 0.0, 4, 5.0, "mailer failed")
        sig = signal_from_event(event)
        assert sig is not None
        rem.signal(sig)
        assert [{"rule": "page", "signal": "supervisor_gave_up", "subject": "workers"}] == [
            {k: r[k] for k in ("rule", "signal", "subject")} for r in _Hook.received
        ]
        # a command that fails: journaled as failed, and the rule escalates
        (failed,) = rem.signal(Signal("disk_full", "/var"))
        assert "failed: RuntimeError: exit status 3: no space" == failed.outcome
        assert [] == rem.signal(Signal("disk_full", "/tmp"))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert ["degrade", "recover", "restart-api", "page", "broken"] == [e["rule"] for e in lines]
    assert {"burn_rates": {"1h": 14.4}} == lines[0]["figures"]
    assert ["done", "done", "done", "done"] == [e["outcome"] for e in lines[:4]]
    assert "remediation restart-api: health_failing readiness" == restarted["last_exit"]
    assert 1 == restarted["restarts"]


def test_unknown_targets_are_refused_at_their_line(tmp_path: Path) -> None:
    text = _spec("http://127.0.0.1:1/x", tmp_path / "r").replace("{restart: api}", "{restart: web}")
    with pytest.raises(
        SpecError,
        match=r"r.yaml:\d+:\d+: remediation\[2\].action.restart: unknown child 'web' "
        r"\(known: api\)",
    ):
        load_spec_text(text, "r.yaml")
    text = _spec("http://127.0.0.1:1/x", tmp_path / "r").replace(
        "{mode: essential-only}", "{mode: off}"
    )
    with pytest.raises(SpecError, match=r"remediation\[0\].action.mode: unknown mode 'off'"):
        load_spec_text(text, "r.yaml")


def test_a_rule_without_what_it_acts_on_is_refused(tmp_path: Path) -> None:
    from buttress.errors import ConfigError

    spec = load_spec_text(_spec("http://127.0.0.1:1/x", tmp_path / "r"))
    with pytest.raises(ConfigError, match="switches modes: pass a ModeSwitch"):
        build_remediator(spec)
    assert ProcessChild and Supervisor  # the types the rules act on
