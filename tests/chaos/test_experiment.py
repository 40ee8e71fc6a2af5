"""Experiments: validation with positions, providers, rollbacks that always run, continuous probes,
output references, dry runs, and the CLI in a real subprocess (with a real SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from buttress.chaos.client import Client
from buttress.chaos.experiment import Runner, load_experiment_text, tolerance_met
from buttress.chaos.proxy import ProxyThread
from buttress.errors import SpecError

from .servers import HttpServer

# The helpers module, by its importable name here.  Subprocesses import it as plain
# `exp_helpers` from this directory (the tests root itself may hold packages that shadow the
# standard library's, such as `http`).
H = __name__.rsplit(".", 1)[0] + ".exp_helpers"
HERE = Path(__file__).parent
ENV = dict(
    os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
)


def for_subprocess(exp: dict[str, Any]) -> str:
    return yaml.safe_dump(exp, sort_keys=False).replace(H, "exp_helpers")


def py(func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "python", "module": H, "func": func, "arguments": arguments}


def act(name: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "action", "name": name, "provider": py(func, **arguments)}


def probe(name: str, func: str, tolerance: Any = None, **arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "probe", "name": name, "provider": py(func, **arguments)}
    if tolerance is not None:
        out["tolerance"] = tolerance
    return out


def run(exp: dict[str, Any], **kw: Any) -> Any:
    loaded = load_experiment_text(yaml.safe_dump(exp, sort_keys=False), "exp.yaml")
    return Runner(loaded, **kw).run()


def base(tmp: Path, **extra: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "version": "1.0.0",
        "title": "t",
        "description": "d",
        "steady-state-hypothesis": {
            "title": "healthy",
            "probes": [probe("healthy", "exists", True, path=str(tmp / "healthy"))],
        },
        "method": [act("touch", "touch", path=str(tmp / "ran"))],
        "rollbacks": [act("rollback", "append", path=str(tmp / "rolled"), line="back")],
    }
    (tmp / "healthy").write_text("yes")
    exp.update(extra)
    return exp


# -- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "field", "fragment"),
    [
        (
            "title: t\nmethod:\n  - type: action\n    name: a\n    provder: {}\n",
            5,
            "method[0].provder",
            "unknown key 'provder'; did you mean 'provider'?",
        ),
        ("method: []\n", 1, "title", "required field is missing"),
        (
            "title: t\nmethod:\n  - type: action\n    name: a\n    provider: {type: buttress, "
            "func: nope}\n",
            5,
            "method[0].provider.func",
            "unknown buttress function 'nope'",
        ),
        ("title: t\nmethod:\n  - {ref: ghost}\n", 3, "method[0].ref", "no earlier activity named"),
        (
            "title: t\nmethod:\n  - type: action\n    name: a\n    provider: {type: python, "
            "module: m, "
            "func: f, arguments: {x: '${outputs.later.v}'}}\n",
            5,
            "method[0].provider.arguments.x",
            "not an earlier activity",
        ),
        (
            "title: t\nsteady-state-hypothesis:\n  title: h\n  probes:\n    - type: probe\n     "
            " name: p\n"
            "      provider: {type: python, module: m, func: f}\nmethod:\n  - {ref: p}\n",
            5,
            "steady-state-hypothesis.probes[0]",
            "needs a tolerance",
        ),
        (
            "title: t\nmethod:\n  - type: probe\n    name: p\n    provider: {type: python, "
            "module: m, "
            "func: f}\n    tolerance: {type: range, range: [5, 1]}\n",
            6,
            "method[0].tolerance.range",
            "low <= high",
        ),
        (
            "title: t\nmethod:\n  - type: action\n    name: a\n    provider: {type: python, "
            "module: m, "
            "func: f}\nrollbacks:\n  - type: probe\n    name: r\n    provider: {type: python, "
            "module: m, "
            "func: f}\n",
            7,
            "rollbacks[0].type",
            "rollbacks are actions",
        ),
        (
            "title: t\nmethod:\n  - type: action\n    name: a\n    provider: {type: python, "
            "module: m, "
            "func: f, arguments: {x: '${nokey}'}}\n",
            5,
            "method[0].provider.arguments.x",
            "no configuration or secret key 'nokey'",
        ),
    ],
)
def test_malformed_experiments_name_line_and_field(
    text: str, line: int, field: str, fragment: str
) -> None:
    with pytest.raises(SpecError) as info:
        load_experiment_text(text, "exp.yaml")
    e = info.value
    assert ("exp.yaml", line, field) == (e.file, e.line, e.field)
    assert fragment in str(e)


def test_json_experiments_are_read_with_positions_too() -> None:
    text = json.dumps(
        {
            "title": "t",
            "method": [
                {
                    "type": "action",
                    "name": "a",
                    "provider": {"type": "process", "path": "true", "timeout": "soon"},
                }
            ],
        },
        indent=2,
    )
    with pytest.raises(SpecError) as info:
        load_experiment_text(text, "exp.json")
    assert "method[0].provider.timeout" == info.value.field
    assert info.value.line is not None and info.value.line > 1


# -- running -----------------------------------------------------------------


def test_a_passing_run_records_everything(tmp_path: Path) -> None:
    j = run(base(tmp_path))
    d = j.to_dict()
    assert ("completed", False) == (d["status"], d["deviated"])
    assert d["steady_states"]["before"]["steady_state_met"] is True
    assert d["steady_states"]["after"]["steady_state_met"] is True
    assert ["succeeded"] == [r["status"] for r in d["run"]]
    assert ["rollback"] == [r["activity"]["name"] for r in d["rollbacks"]]
    assert "back\n" == (tmp_path / "rolled").read_text()
    for key in ("chaoslib-version", "platform", "node", "experiment", "start", "end", "duration"):
        assert key in d


def test_rollbacks_run_after_a_failed_action(tmp_path: Path) -> None:
    exp = base(
        tmp_path, method=[act("fail", "boom"), act("touch", "touch", path=str(tmp_path / "ran"))]
    )
    d = run(exp).to_dict()
    assert ["failed", "succeeded"] == [r["status"] for r in d["run"]]
    assert "the action failed" in "".join(d["run"][0]["exception"])
    assert "back\n" == (tmp_path / "rolled").read_text()
    assert 1 == len(d["rollbacks"])


def test_rollbacks_run_after_a_deviation(tmp_path: Path) -> None:
    exp = base(tmp_path, method=[act("break", "touch", path=str(tmp_path / "broken"))])
    exp["steady-state-hypothesis"]["probes"].append(
        probe("not-broken", "exists", False, path=str(tmp_path / "broken"))
    )
    d = run(exp).to_dict()
    assert ("failed", True) == (d["status"], d["deviated"])
    assert d["steady_states"]["after"]["steady_state_met"] is False
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_rollbacks_run_when_the_steady_state_fails_first(tmp_path: Path) -> None:
    exp = base(tmp_path)
    (tmp_path / "healthy").unlink()
    d = run(exp).to_dict()
    assert ("failed", False) == (d["status"], d["deviated"])
    assert [] == d["run"]
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_continuous_probe_aborts_the_method_and_rollbacks_run(tmp_path: Path) -> None:
    exp = base(
        tmp_path,
        method=[
            act("break", "touch", path=str(tmp_path / "broken")),
            {**act("long", "nap", seconds=0.01), "pauses": {"after": 5}},
            act("never", "touch", path=str(tmp_path / "never")),
        ],
    )
    exp["continuous-probes"] = [
        {**probe("watch", "exists", False, path=str(tmp_path / "broken")), "interval": "20ms"}
    ]
    t0 = time.monotonic()
    d = run(exp).to_dict()
    assert time.monotonic() - t0 < 3
    assert ("aborted", True) == (d["status"], d["deviated"])
    assert "continuous probe 'watch'" in d["abort_reason"]
    assert not (tmp_path / "never").exists()
    assert d["steady_states"]["during"][-1]["tolerance_met"] is False
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_outputs_configuration_and_secrets_are_referenced(tmp_path: Path) -> None:
    os.environ["BUTTRESS_TEST_SECRET"] = "s3cret"
    exp = base(
        tmp_path,
        configuration={
            "greeting": "hello",
            "port": {"type": "env", "key": "NO_SUCH_VAR", "default": 8},
        },
        secrets={"db": {"password": {"type": "env", "key": "BUTTRESS_TEST_SECRET"}}},
        method=[
            act("first", "give", value={"n": 41, "items": ["a", "b"]}),
            act(
                "second",
                "echo_kwargs",
                n="${outputs.first.n}",
                second="${outputs.first.items.1}",
                text="n=${outputs.first.n} ${greeting}:${port}",
                pw="${password}",
            ),
            act("config", "uses_configuration"),
        ],
    )
    d = run(exp).to_dict()
    assert {"n": 41, "second": "b", "text": "n=41 hello:8", "pw": "s3cret"} == d["run"][1]["output"]
    assert "hello" == d["run"][2]["output"]


def test_dry_run_calls_nothing(tmp_path: Path) -> None:
    d = run(base(tmp_path), dry=True).to_dict()
    assert d["dry"] is True
    assert ["skipped"] == [r["status"] for r in d["run"]]
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "rolled").exists()


def test_http_and_process_providers_with_tolerances(tmp_path: Path) -> None:
    with HttpServer() as web:
        exp = base(
            tmp_path,
            method=[
                {
                    "type": "probe",
                    "name": "web",
                    "tolerance": 200,
                    "provider": {"type": "http", "url": f"http://{web.addr}/x", "timeout": 5},
                },
                {
                    "type": "probe",
                    "name": "body",
                    "tolerance": {"type": "regex", "pattern": "^GET /x", "target": "body"},
                    "provider": {"type": "http", "url": f"http://{web.addr}/x"},
                },
                {
                    "type": "probe",
                    "name": "proc",
                    "tolerance": {"type": "regex", "pattern": "^42$", "target": "stdout"},
                    "provider": {
                        "type": "process",
                        "path": sys.executable,
                        "arguments": ["-c", "print(42)"],
                        "timeout": 10,
                    },
                },
                {
                    "type": "probe",
                    "name": "by-probe",
                    "tolerance": {"type": "probe", "name": "check", "provider": py("positive")},
                    "provider": py("give", value=3),
                },
            ],
        )
        d = run(exp).to_dict()
    assert [True] * 4 == [r["tolerance_met"] for r in d["run"]]
    assert 200 == d["run"][0]["output"]["status"]


def test_tolerance_rules() -> None:
    assert tolerance_met(True, True) and not tolerance_met(True, False)
    assert tolerance_met(200, {"status": 200, "body": ""})
    assert tolerance_met([200, 204], {"status": 204})
    assert tolerance_met({"type": "range", "range": [0, 2]}, 1.5)
    assert not tolerance_met({"type": "range", "range": [0, 2]}, 2.5)
    assert not tolerance_met({"type": "range", "range": [0, 2]}, "1")
    assert tolerance_met({"type": "range", "range": [1, 3], "target": "a.b"}, {"a": {"b": 2}})


def test_slo_burn_probe_through_the_proxy_aborts_the_run(tmp_path: Path) -> None:
    with HttpServer() as web, ProxyThread() as px, Client(px.url) as api:
        p = api.create("web", web.addr)
        url = f"http://{p.listen}/health"
        burn = {
            "type": "probe",
            "name": "burn",
            "interval": "50ms",
            "tolerance": {"type": "range", "range": [0, 2]},
            "provider": {
                "type": "buttress",
                "func": "slo_burn",
                "arguments": {"url": url, "objective": 0.99, "samples": 5},
            },
        }
        exp = base(
            tmp_path,
            configuration={"buttress_proxy_url": px.url},
            method=[
                {
                    "type": "action",
                    "name": "break-it",
                    "provider": {
                        "type": "buttress",
                        "func": "add_toxic",
                        "arguments": {
                            "proxy": "web",
                            "type": "http_status",
                            "name": "err",
                            "attributes": {"status": 503},
                        },
                    },
                },
                {**act("wait", "nap", seconds=0.01), "pauses": {"after": 5}},
            ],
            rollbacks=[
                {
                    "type": "action",
                    "name": "fix-it",
                    "provider": {
                        "type": "buttress",
                        "func": "remove_toxic",
                        "arguments": {"proxy": "web", "name": "err"},
                    },
                }
            ],
        )
        exp["continuous-probes"] = [burn]
        d = run(exp).to_dict()
        assert [] == p.toxics()
    assert "aborted" == d["status"]
    last = d["steady_states"]["during"][-1]
    # burn = bad/samples / (1 - 0.99): 20 per bad sample out of 5, 100 when all fail
    assert last["tolerance_met"] is False
    assert round(last["output"]) in {20, 40, 60, 80, 100}
    assert [True] == [r["output"] for r in d["rollbacks"]]


# -- the CLI, in real subprocesses -------------------------------------------


def cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "buttress.cli", *args],
        capture_output=True,
        check=False,
        text=True,
        env=ENV,
        timeout=60,
        **kw,
    )


def test_cli_validate_and_bad_file(tmp_path: Path) -> None:
    good = tmp_path / "exp.yaml"
    good.write_text(for_subprocess(base(tmp_path)))
    out = cli("chaos", "validate", str(good))
    assert 0 == out.returncode, out.stderr
    assert "ok ('t', 3 activities)" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "title: t\nmethod:\n  - type: acton\n    name: a\n    provider: {type: python, module: "
        "m, func: f}\n"
    )
    out = cli("chaos", "validate", str(bad))
    assert 2 == out.returncode
    assert f"{bad}:3:5: method[0].type:" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_run_exit_status_and_journal(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(for_subprocess(base(tmp_path)))
    journal = tmp_path / "journal.json"
    out = cli("chaos", "run", str(exp), "--journal", str(journal))
    assert 0 == out.returncode, out.stderr + out.stdout
    assert "completed" == json.loads(journal.read_text())["status"]
    (tmp_path / "healthy").unlink()
    out = cli("chaos", "run", str(exp), "--journal", str(journal), "-q")
    assert 1 == out.returncode


def test_sigint_during_the_method_still_runs_rollbacks(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    exp = base(
        tmp_path,
        method=[
            act("long", "nap", seconds=30, marker=str(marker)),
            act("never", "touch", path=str(tmp_path / "never")),
        ],
        rollbacks=[
            act("slow-rollback", "nap", seconds=0.5),
            act("rollback", "append", path=str(tmp_path / "rolled"), line="back"),
        ],
    )
    path = tmp_path / "exp.yaml"
    path.write_text(for_subprocess(exp))
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buttress.cli",
            "chaos",
            "run",
            str(path),
            "--journal",
            str(journal),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)  # now inside the slow rollback: a second Ctrl-C must not stop it
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert 130 == proc.returncode, stderr
    d = json.loads(journal.read_text())
    assert "interrupted" == d["status"]
    assert ["slow-rollback", "rollback"] == [r["activity"]["name"] for r in d["rollbacks"]]
    assert "back\n" == (tmp_path / "rolled").read_text()
    assert not (tmp_path / "never").exists()
    assert "rollbacks are running and will finish" in stdout


# -- a tolerance that raises -----------------------------------------------------------------------


def raising_tolerance() -> dict[str, Any]:
    return {"type": "probe", "name": "judge", "provider": py("boom", message="judge is broken")}


def test_a_tolerance_probe_that_raises_is_not_met_and_recorded(tmp_path: Path) -> None:
    exp = base(tmp_path)
    exp["steady-state-hypothesis"]["probes"].append(
        probe("judged", "give", raising_tolerance(), value=1)
    )
    d = run(exp).to_dict()
    assert ("failed", False) == (d["status"], d["deviated"])
    judged = d["steady_states"]["before"]["probes"][1]
    assert ("succeeded", False) == (judged["status"], judged["tolerance_met"])
    assert "RuntimeError: judge is broken" in "".join(judged["tolerance_exception"])
    assert [] == d["run"]
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_a_continuous_probe_whose_tolerance_raises_aborts_the_run(tmp_path: Path) -> None:
    exp = base(
        tmp_path,
        method=[
            {**act("long", "nap", seconds=0.01), "pauses": {"after": 5}},
            act("never", "touch", path=str(tmp_path / "never")),
        ],
    )
    exp["continuous-probes"] = [
        {**probe("watch", "give", raising_tolerance(), value=1), "interval": "20ms"}
    ]
    t0 = time.monotonic()
    d = run(exp).to_dict()
    assert time.monotonic() - t0 < 3
    assert ("aborted", True) == (d["status"], d["deviated"])
    assert "judge is broken" in "".join(d["steady_states"]["during"][-1]["tolerance_exception"])
    assert not (tmp_path / "never").exists()
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_the_cli_writes_the_journal_when_a_tolerance_raises(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from buttress.cli import main

    exp = base(tmp_path)
    exp["steady-state-hypothesis"]["probes"].append(
        probe("judged", "give", raising_tolerance(), value=1)
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp, sort_keys=False))
    journal = tmp_path / "journal.json"
    result = CliRunner().invoke(main, ["chaos", "run", str(path), "--journal", str(journal), "-q"])
    assert (1, SystemExit) == (result.exit_code, type(result.exception)), result.output
    assert "failed: the steady state was not met before the method" in result.output
    d = json.loads(journal.read_text())
    assert ("failed", 1) == (d["status"], len(d["rollbacks"]))
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_rollbacks_all_run_and_the_journal_is_written_on_an_unforeseen_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = base(
        tmp_path,
        rollbacks=[
            act("first", "append", path=str(tmp_path / "rolled"), line="one"),
            act("second", "append", path=str(tmp_path / "rolled"), line="two"),
        ],
    )
    loaded = load_experiment_text(yaml.safe_dump(exp, sort_keys=False), "exp.yaml")
    runner = Runner(loaded)

    def broken(phase: str) -> None:
        raise KeyError(phase)  # a bug anywhere in the run, not a provider's failure

    monkeypatch.setattr(runner, "hypothesis", broken)
    d = runner.run().to_dict()
    assert ("failed", "internal error: KeyError: 'before'") == (d["status"], d["abort_reason"])
    assert "one\ntwo\n" == (tmp_path / "rolled").read_text()
