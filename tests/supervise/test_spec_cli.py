"""The supervision: section (located errors), `buttress supervise run|status`, and the exports
checked by systemd-analyze and kubernetes-validate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from buttress.cli import main
from buttress.errors import SpecError
from buttress.spec import load_spec_text
from buttress.supervise.export import kubernetes_manifests, systemd_units
from buttress.supervise.spec import build_supervisor

from .helpers import CHILD, alive, records

SRC = str(Path(__file__).parents[2] / "src")


def _tree(rec: Path) -> str:
    py, child = sys.executable, CHILD
    return f"""
service: shop
health:
  drain: {{delay: 2s, grace: 20s}}
supervision:
  name: shop
  strategy: rest_for_one
  intensity: 10
  period: 10s
  children:
    - name: db
      command: [{py}, {child}, --name, db, --record, {rec}, --ready-after, "0.1"]
      ready: {{notify: true}}
      liveness: {{tcp: 5433}}
      liveness_period: 2s
      liveness_timeout: 6s
    - name: api
      command: [{py}, {child}, --name, api, --record, {rec}, --exit-after, "0.3"]
      depends_on: [db]
      env: {{MODE: "a b"}}
      grace: 2s
      backoff_initial: 0s
      ready: {{http: "http://127.0.0.1:8080/health/ready"}}
      ready_timeout: 5s
    - name: workers
      strategy: one_for_one
      intensity: 2
      children:
        - name: mailer
          command: [{py}, {child}, --name, mailer, --record, {rec}]
          restart: transient
          watchdog: 3s
"""


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ("  intensity: 0\n", "supervision.intensity: Input should be greater than 0"),
        ("  period: 0s\n", "supervision.period: Input should be greater than 0"),
        (
            "  children:\n    - {name: a, command: [x], liveness: {notify: true}}\n",
            "supervision.children[0].liveness.notify: liveness is a tcp or http check",
        ),
        (
            "  children:\n    - {name: a, command: [x], depends_on: [zz]}\n",
            "supervision.children[0].depends_on[0]: unknown child 'zz' (siblings: a)",
        ),
        (
            "  children:\n    - {name: a, command: [x], depends_on: [b]}\n"
            "    - {name: b, command: [x], depends_on: [a]}\n",
            "supervision.children[0].depends_on: start dependencies form a cycle: a -> b -> a",
        ),
        (
            "  children:\n    - name: w\n      children:\n        - {name: a, command: [x]}\n"
            "        - {name: a, command: [y]}\n",
            "supervision.children[0].children[1].name: duplicate child name 'a'",
        ),
        (
            "  children:\n    - {name: a, command: [x], strategy: one_for_all}\n",
            "supervision.children[0].strategy: only a supervisor",
        ),
    ],
)
def test_bad_trees_are_refused_at_their_line(snippet: str, where: str) -> None:
    text = "supervision:\n" + snippet
    if "children:" not in snippet:
        text += "  children:\n    - {name: a, command: [x]}\n"
    with pytest.raises(SpecError) as e:
        load_spec_text(text, "r.yaml")
    message = str(e.value)
    assert message.startswith("r.yaml:"), message
    assert where in message


def test_the_spec_builds_the_tree(tmp_path: Path) -> None:
    spec = load_spec_text(_tree(tmp_path / "rec"), "r.yaml")
    top = build_supervisor(spec, base_dir=tmp_path)
    assert ["db", "api", "workers"] == top.order
    assert "rest_for_one" == top.supervisor_options.strategy
    workers = top.child("workers")
    assert 2 == workers.supervisor_options.intensity  # type: ignore[attr-defined]
    assert 3.0 == workers.child("mailer").options.watchdog  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    spec = load_spec_text(_tree(tmp_path / "rec"), "r.yaml")
    assert spec.supervision is not None
    units = systemd_units(spec.supervision, tmp_path)
    assert {
        "shop.target",
        "shop-db.service",
        "shop-api.service",
        "shop-workers.target",
        "shop-workers-mailer.service",
    } == set(units)
    api = units["shop-api.service"]
    for line in (
        "Requires=shop-db.service",
        "After=shop-db.service",
        "Restart=always",
        "StartLimitBurst=11",
        "StartLimitIntervalSec=10s",
        'Environment="MODE=a b"',
        "TimeoutStopSec=2s",
    ):
        assert line in api.splitlines()
    assert "Type=notify" in units["shop-db.service"]
    assert "WatchdogSec=3s" in units["shop-workers-mailer.service"]
    assert "Restart=on-failure" in units["shop-workers-mailer.service"]
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    files = [str(tmp_path / n) for n in units]
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 on settings it ignores: its warnings must be empty too
    assert (0, "") == (done.returncode, done.stderr.strip())


def test_kubernetes_manifests_validate(tmp_path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    runner = CliRunner()
    file = tmp_path / "reliability.yaml"
    file.write_text(_tree(tmp_path / "rec"))
    result = runner.invoke(
        main, ["supervise", "export", "kubernetes", str(file), "--image", "shop:1"]
    )
    assert 0 == result.exit_code, result.output
    docs = list(yaml.safe_load_all(result.output))
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert [
        ("Deployment", "shop-db"),
        ("PodDisruptionBudget", "shop-db"),
        ("Deployment", "shop-api"),
        ("PodDisruptionBudget", "shop-api"),
        ("Job", "shop-workers-mailer"),
    ] == kinds
    for d in docs:
        kubernetes_validate.validate(d, "1.30", strict=True)
    api = docs[2]["spec"]["template"]["spec"]
    container = api["containers"][0]
    assert "/health/ready" == container["readinessProbe"]["httpGet"]["path"]
    assert "/health/live" == container["livenessProbe"]["httpGet"]["path"]
    assert "/health/started" == container["startupProbe"]["httpGet"]["path"]
    assert 5 == container["startupProbe"]["failureThreshold"]
    assert 22 == api["terminationGracePeriodSeconds"]  # the drain: 2 s delay + 20 s grace
    assert "OnFailure" == docs[4]["spec"]["template"]["spec"]["restartPolicy"]
    db = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert {"tcpSocket": {"port": 5433}, "periodSeconds": 2, "failureThreshold": 3} == db[
        "livenessProbe"
    ]
    assert "readinessProbe" not in db  # notify readiness has no probe
    # and a broken manifest is caught by the same validation
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)
    assert kubernetes_manifests  # the function the command uses


def test_cli_errors_name_the_file_and_exit_2(tmp_path: Path) -> None:
    file = tmp_path / "r.yaml"
    file.write_text("supervision:\n  intensity: -1\n  children:\n    - {name: a, command: [x]}\n")
    result = CliRunner().invoke(main, ["supervise", "run", str(file)])
    assert 2 == result.exit_code
    assert f"{file}:2:3: supervision.intensity" in result.output
    no_section = tmp_path / "n.yaml"
    no_section.write_text("service: x\n")
    result = CliRunner().invoke(
        main, ["supervise", "export", "systemd", str(no_section), "-o", str(tmp_path)]
    )
    assert 2 == result.exit_code and "has no supervision: section" in result.output
    missing = tmp_path / "m.yaml"
    missing.write_text(
        "supervision:\n  children:\n    - name: w\n      children:\n"
        "        - {name: a, command: [no-such-program-xyz]}\n"
    )
    result = CliRunner().invoke(main, ["supervise", "run", str(missing)])
    assert 2 == result.exit_code
    assert (
        f"{missing}:5:31: supervision.children[0].children[0].command[0]: program"
        " 'no-such-program-xyz' not found: nothing was started"
    ) in result.output
    result = CliRunner().invoke(main, ["supervise", "status", "--state", str(tmp_path / "none")])
    assert 2 == result.exit_code and "is `buttress supervise run` running?" in result.output


def test_run_and_status(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    file = tmp_path / "reliability.yaml"
    file.write_text(_tree(rec).replace('ready: {http: "http://127.0.0.1:8080/health/ready"}', ""))
    state = tmp_path / "state.json"
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [
        sys.executable,
        "-m",
        "buttress.cli",
        "supervise",
        "run",
        str(file),
        "--state",
        str(state),
    ]
    run = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while len(records(rec, "start", "api")) < 3:
            assert time.monotonic() < deadline, "api did not restart twice"
            time.sleep(0.05)
        status = subprocess.run(
            [sys.executable, "-m", "buttress.cli", "supervise", "status", "--state", str(state)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=15)
    assert 0 == run.returncode, err
    lines = status.splitlines()
    assert lines[0].startswith("shop (rest_for_one, 10 in 10s)  run pid")
    api = next(line for line in lines if "api" in line)
    assert "last exit: exited 1" in api
    assert any("workers" in line and "(one_for_one, 2 in 5s)" in line for line in lines)
    assert any("└─ mailer" in line for line in lines)
    assert "shop/api: child_restarting" in err
    final = json.loads(state.read_text())
    assert all(c["state"] == "stopped" for c in final["tree"]["children"][:2])
    assert not any(alive(pid) for _, _, pid, _ in records(rec, "start"))


def test_run_acts_on_the_remediation_rules(tmp_path: Path) -> None:
    rec, marker = tmp_path / "rec", tmp_path / "paged"
    py, child = sys.executable, CHILD
    file = tmp_path / "reliability.yaml"
    file.write_text(f"""
supervision:
  name: shop
  intensity: 50
  children:
    - name: workers
      intensity: 1
      period: 60s
      children:
        - name: mailer
          command: [{py}, {child}, --name, mailer, --record, {rec}, --exit-after, "0.05"]
          backoff_initial: 0s
modes:
  - {{name: no-mail, off: [mail]}}
remediation:
  - name: page
    when: {{signal: supervisor_gave_up, subject: workers}}
    action: {{command: [/bin/sh, -c, "echo paged >> {marker}"]}}
    cooldown: 1h
  - name: degrade
    when: {{signal: supervisor_gave_up, subject: workers}}
    action: {{mode: no-mail}}
""")
    env = {**os.environ, "PYTHONPATH": SRC}
    journal, mode = tmp_path / "journal.jsonl", tmp_path / "mode.json"
    cmd = [
        sys.executable,
        "-m",
        "buttress.cli",
        "supervise",
        "run",
        str(file),
        "-q",
        "--state",
        str(tmp_path / "s.json"),
        "--journal",
        str(journal),
        "--mode-state",
        str(mode),
    ]
    run = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while len(records(rec, "start", "mailer")) < 6:  # workers gave up at least twice
            assert time.monotonic() < deadline, "the nested supervisor did not give up twice"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=15)
    assert 0 == run.returncode, err
    assert ["paged"] == marker.read_text().split()  # once: the cooldown holds the second
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {"page", "degrade"} == {e["rule"] for e in entries}
    assert all(e["outcome"] == "done" and e["subject"] == "workers" for e in entries)
    assert "no-mail" == json.loads(mode.read_text())["mode"]
    assert "remediation/page: run /bin/sh" in err
    shown = (
        CliRunner()
        .invoke(
            main,
            [
                "supervise",
                "status",
                "--state",
                str(tmp_path / "s.json"),
                "--journal",
                str(journal),
                "--mode-state",
                str(mode),
            ],
        )
        .output
    )
    assert "mode: no-mail (cause: remediation degrade: supervisor_gave_up workers)" in shown
    assert "page: run /bin/sh -c echo paged" in shown and ": done" in shown


def test_the_docs_yaml_examples_validate() -> None:
    import re

    docs = Path(__file__).parents[2] / "docs"
    blocks = [
        block
        for page in ("supervise.md", "degraded-modes.md")
        for block in re.findall(r"```yaml\n(.*?)```", (docs / page).read_text(), re.S)
    ]
    assert 3 == len(blocks)
    spec = load_spec_text("\n".join(blocks), "docs")
    assert spec.supervision is not None and 3 == len(spec.supervision.children)
    assert ["essential-only"] == [m.name for m in spec.modes]
    assert 4 == len(spec.remediation)
