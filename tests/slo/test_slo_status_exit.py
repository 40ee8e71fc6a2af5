"""`buttress slo status` is a verdict a pipeline can gate on: 0 ok, 1 a page alert fires, 2 bad
input; `--report-only` prints the same verdict and exits 0."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from buttress.cli import main
from buttress.slo.store import SLIStore

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
M = int(NOW.timestamp() // 60)

SPEC = """\
service: shop
slos:
  - name: checkout
    objective: 99.9
    sli: {kind: ratio, pipeline: checkout}
  - name: search
    objective: 99
    sli: {kind: ratio, pipeline: search}
    alerting:
      tiers:
        - {name: slow, severity: ticket, long_window: 1h, short_window: 5m, burn_rate: 2}
"""


@pytest.fixture
def spec(write):
    return write("reliability.yaml", SPEC)


def _store(tmp_path, checkout_bad: int, search_bad: int) -> str:
    db = tmp_path / "slo.db"
    with SLIStore(db) as store:
        store.add(("checkout", M - 60 + i, 1000 - checkout_bad, 1000) for i in range(60))
        store.add(("search", M - 60 + i, 1000 - search_bad, 1000) for i in range(60))
    return str(db)


def _status(spec, db, *extra: str):
    return CliRunner().invoke(
        main, ["slo", "status", str(spec), "--db", db, "--at", NOW.isoformat(), *extra]
    )


def test_exit_0_when_no_page_alert_fires(spec, tmp_path):
    result = _status(spec, _store(tmp_path, 0, 0))
    assert 0 == result.exit_code, result.output
    assert "shop/checkout" in result.output


def test_exit_0_when_only_a_ticket_fires(spec, tmp_path):
    # search: 5% errors is 5x its budget, above the ticket's 2x; checkout is healthy.
    result = _status(spec, _store(tmp_path, 0, 50), "--json")
    assert 0 == result.exit_code, result.output
    assert [[], ["slow"]] == [r["firing"] for r in json.loads(result.stdout)]


@pytest.mark.parametrize("as_json", [False, True])
def test_exit_1_when_a_page_alert_fires(spec, tmp_path, as_json):
    # checkout: 50% errors for an hour, far above the 14.4x page.
    result = _status(spec, _store(tmp_path, 500, 0), *(["--json"] if as_json else []))
    assert 1 == result.exit_code, result.output
    assert "page alert(s) firing: shop/checkout: page-1h, shop/checkout: page-6h" in result.stderr
    if as_json:  # the verdict is still printed whole
        assert "page-1h" in json.loads(result.stdout)[0]["firing"]


def test_report_only_exits_0_on_a_firing_page(spec, tmp_path):
    result = _status(spec, _store(tmp_path, 500, 0), "--report-only")
    assert 0 == result.exit_code, result.output
    assert "page-1h" in result.stdout and "page alert(s) firing" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "{missing}"], "no such store"),
        (["--slo", "nope"], "no SLO named 'nope'"),
        (["--at", "yesterday"], "--at 'yesterday'"),
    ],
)
def test_exit_2_on_bad_input_even_with_report_only(spec, tmp_path, args, message):
    db = _store(tmp_path, 500, 0)
    args = [a.format(missing=tmp_path / "missing.db") for a in args]
    cmd = ["slo", "status", str(spec), "--db", db, "--report-only", *args]
    if "--at" not in args:
        cmd += ["--at", NOW.isoformat()]
    result = CliRunner().invoke(main, cmd)
    assert 2 == result.exit_code, result.output
    assert message in result.output and "Traceback" not in result.output


def test_exit_2_on_an_invalid_file(write, tmp_path):
    bad = write("bad.yaml", "slos:\n  - name: x\n    objective: 100\n    sli: {kind: ratio}\n")
    result = _status(bad, _store(tmp_path, 0, 0))
    assert 2 == result.exit_code
    assert "bad.yaml:3:5: slos[0].objective" in result.output


def test_the_codes_are_documented_in_the_help():
    out = CliRunner().invoke(main, ["slo", "status", "--help"]).output
    for line in ("0  no page alert fires", "1  at least one page alert fires", "2  bad input"):
        assert line in out
    assert "--report-only" in out


def test_status_reads_only_its_section_and_checks_it_as_the_whole_file_does(write, tmp_path):
    db = _store(tmp_path, 0, 0)
    # Another section broken: status (which reads service and slos:) still answers; the
    # validating commands refuse the file.
    broken = write("broken.yaml", SPEC + "policies:\n  checkout: {retry: {attempts: -1}}\n")
    assert 0 == _status(broken, db).exit_code
    refused = CliRunner().invoke(main, ["slo", "validate", str(broken)])
    assert 2 == refused.exit_code and "policies.checkout.retry" in refused.output
    # Its own section is checked as strictly, each problem at its line.
    cases = [  # (replaced, by, field, line in the changed file)
        ("objective: 99.9", "objective: .nan", "slos[0].objective", 4),
        ("name: search", "name: checkout", "slos[1].name", 6),
        ("service: shop\n", "", "slos[0]", 2),
        ("pipeline: search}", "pipeline: search, timeout: 1s}", "slos[1].sli.timeout", 8),
    ]
    for old, new, field, line in cases:
        bad = write("bad.yaml", SPEC.replace(old, new, 1))
        done = _status(bad, db)
        assert 2 == done.exit_code, (old, done.output)
        assert f"bad.yaml:{line}:" in done.output and field in done.output, done.output
