"""``buttress incident``: the lifecycle from the command line, errors as one line with status 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from buttress.cli import main
from buttress.incident import IncidentStore, parse_generic


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_list_show_ack_mitigate_resolve(tmp_path: Path) -> None:
    db = str(tmp_path / "inc.db")
    with IncidentStore(db) as store:
        store.ingest([parse_generic({"key": "db", "status": "firing", "title": "DB down"})])
    code, out = _run("incident", "list", "--store", db)
    assert code == 0 and "#1" in out and "DB down" in out and "detected" in out
    assert _run("incident", "ack", "1", "--by", "alice", "--store", db)[0] == 0
    assert _run("incident", "mitigate", "1", "--by", "bob", "--store", db)[0] == 0
    code, out = _run("incident", "ack", "1", "--by", "bob", "--store", db)
    assert code == 2
    assert out.strip().splitlines() == [
        "error: cannot acknowledge incident 1: it is already mitigated "
        "(steps go forward only: detected -> acknowledged -> mitigated -> resolved)"
    ]
    assert _run("incident", "resolve", "1", "--by", "carol", "--store", db)[0] == 0
    code, out = _run("incident", "show", "1", "--json", "--store", db)
    shown = json.loads(out)
    assert [e["actor"] for e in shown["log"]] == ["webhook", "alice", "bob", "carol"]
    assert _run("incident", "list", "--open", "--store", db)[1].strip() == "no incidents"


def test_unknown_incident_and_deploy(tmp_path: Path) -> None:
    db = str(tmp_path / "inc.db")
    code, out = _run("incident", "resolve", "5", "--by", "x", "--store", db)
    assert (code, out.strip()) == (
        2, "error: cannot resolve incident 5: no such incident (it was never detected)"
    )  # fmt: skip
    code, out = _run("incident", "deploy", "--service", "shop", "--version", "9", "--store", db)
    assert code == 0 and out.startswith("deploy #1: shop 9 at ")


def test_serve_refuses_a_public_bind_without_token(tmp_path: Path) -> None:
    code, out = _run("incident", "serve", "--host", "0.0.0.0", "--store", str(tmp_path / "i.db"))
    assert code == 2
    assert "only with a token" in out


def test_serve_checks_notification_options(tmp_path: Path) -> None:
    db = str(tmp_path / "i.db")
    code, out = _run("incident", "serve", "--store", db, "--smtp", "mailhost")
    assert (code, out.strip()) == (2, "error: invalid --smtp='mailhost': must be HOST:PORT")
    code, out = _run("incident", "serve", "--store", db, "--mail-to", "a@b.org")
    assert code == 2 and "needs --smtp HOST:PORT" in out
    code, out = _run("incident", "serve", "--store", db, "--notify-webhook", "ftp://x")
    assert code == 2 and "must be an http:// or https:// URL" in out
