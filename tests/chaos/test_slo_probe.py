"""The SLO burn-rate probe tied to declared SLOs: a real reliability.yaml, a real SQLite SLI store
filled through the SLO recorder, the evaluator's figures, and the ``burn-rate`` tolerance that
aborts an experiment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from buttress.chaos import ctk
from buttress.chaos.experiment import Runner, load_experiment_text, tolerance_met
from buttress.errors import ButtressError, SpecError
from buttress.slo.recorder import SLIRecorder
from buttress.slo.store import SLIStore

from .test_experiment import act, base

SLO = "checkout-availability"
SPEC = f"""\
service: shop
slos:
  - name: {SLO}
    objective: 99
    sli: {{kind: ratio, pipeline: checkout}}
  - name: search-availability
    objective: 99.9
    sli: {{kind: ratio, pipeline: search}}
"""
# 2024-05-01T12:00:00Z, on a minute boundary
AT = 1714564800.0


def write_spec(tmp_path: Path) -> Path:
    path = tmp_path / "reliability.yaml"
    path.write_text(SPEC)
    return path


def fill(db: Path, minutes: dict[float, tuple[int, int]], sli: str = SLO) -> None:
    """Record (good, total) at each wall time through the SLO recorder, then flush."""
    with SLIStore(db) as store, SLIRecorder(store, flush_every=3600) as rec:
        for at, (good, total) in minutes.items():
            rec.record(sli, good, total, at=at)


@pytest.fixture
def spec_and_store(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "sli.db"
    # The last 5 minutes: 90 of 100 good each; the 55 minutes before: all good.
    history = {AT - 60 * (i + 1): ((90 if i < 5 else 100), 100) for i in range(60)}
    fill(db, history)
    fill(db, {AT - 60: (1000, 1000)}, sli="search-availability")
    return write_spec(tmp_path), db


def test_burn_rate_over_each_alert_window_comes_from_the_evaluator(
    spec_and_store: tuple[Path, Path],
) -> None:
    spec, db = spec_and_store
    args: dict[str, Any] = {"spec": str(spec), "store": str(db), "slo": SLO, "at": AT}
    # burn = (bad / total) / (1 - objective); objective 99% -> budget 0.01
    assert 10.0 == pytest.approx(ctk.slo_burn_rate(window="5m", **args))
    assert (50 / 6000) / 0.01 == pytest.approx(ctk.slo_burn_rate(window="1h", **args))
    assert (50 / 6000) / 0.01 == pytest.approx(ctk.slo_burn_rate(window=3600, **args))
    assert 10.0 == pytest.approx(
        ctk.slo_burn_rate(window="5m", **{**args, "at": "2024-05-01T12:00:00+00:00"})
    )
    # Another SLO in the same store is not mixed in; a window without events burned nothing.
    assert 0.0 == ctk.slo_burn_rate(
        spec=str(spec), store=str(db), slo="search-availability", window="5m", at=AT
    )
    assert 0.0 == ctk.slo_burn_rate(window="5m", **{**args, "at": AT + 86400})


def test_bad_arguments_name_what_exists(spec_and_store: tuple[Path, Path], tmp_path: Path) -> None:
    spec, db = spec_and_store
    args: dict[str, Any] = {"spec": str(spec), "store": str(db), "at": AT}
    with pytest.raises(ButtressError, match=r"no SLO named 'nope'.*checkout-availability"):
        ctk.slo_burn_rate(slo="nope", **args)
    with pytest.raises(ButtressError, match="no 7m window; its alert windows are: 5m, 30m, 1h"):
        ctk.slo_burn_rate(slo=SLO, window="7m", **args)
    with pytest.raises(ButtressError, match="window: cannot read 'soon'"):
        ctk.slo_burn_rate(slo=SLO, window="soon", **args)
    with pytest.raises(ButtressError, match="at='yesterday'"):
        ctk.slo_burn_rate(slo=SLO, **{**args, "at": "yesterday"})
    with pytest.raises(ButtressError, match="no such file"):
        ctk.slo_burn_rate(slo=SLO, **{**args, "store": str(tmp_path / "missing.db")})
    with pytest.raises(SpecError):
        ctk.slo_burn_rate(slo=SLO, **{**args, "spec": str(tmp_path / "missing.yaml")})


def test_burn_rate_tolerance() -> None:
    tol = {"type": "burn-rate", "max": 2}
    assert (True, True, False, False, False) == (
        tolerance_met(tol, 0.0),
        tolerance_met(tol, 2.0),
        tolerance_met(tol, 2.01),
        tolerance_met(tol, None),
        tolerance_met(tol, True),
    )
    assert ctk.burn_rate_at_most(value=1.5, limit=2) is True
    assert ctk.burn_rate_at_most(value=14.4, limit=2) is False


def burn_experiment(tmp_path: Path, spec: Path, db: Path, limit: float) -> dict[str, Any]:
    exp = base(
        tmp_path,
        method=[
            {**act("wait", "nap", seconds=0.01), "pauses": {"after": 1.5}},
            act("after", "touch", path=str(tmp_path / "after")),
        ],
    )
    exp["continuous-probes"] = [
        {
            "type": "probe",
            "name": "checkout-budget",
            "interval": "50ms",
            "tolerance": {"type": "burn-rate", "max": limit},
            "provider": {
                "type": "buttress",
                "func": "slo_burn_rate",
                "arguments": {"spec": str(spec), "store": str(db), "slo": SLO, "window": "5m"},
            },
        }
    ]
    return exp


def run(exp: dict[str, Any]) -> dict[str, Any]:
    loaded = load_experiment_text(yaml.safe_dump(exp, sort_keys=False), "exp.yaml")
    return Runner(loaded).run().to_dict()


def test_a_burning_slo_aborts_the_experiment_and_rollbacks_run(tmp_path: Path) -> None:
    spec, db = write_spec(tmp_path), tmp_path / "sli.db"
    fill(db, {time.time(): (50, 100)})  # now: half the requests fail, burn 50x
    t0 = time.monotonic()
    d = run(burn_experiment(tmp_path, spec, db, limit=2))
    assert time.monotonic() - t0 < 1.5  # stopped during the pause, not after it
    assert ("aborted", True) == (d["status"], d["deviated"])
    assert "continuous probe 'checkout-budget': SLO burn rate 50.0 is above 2" == d["abort_reason"]
    assert (False, 50.0) == (
        d["steady_states"]["during"][-1]["tolerance_met"],
        d["steady_states"]["during"][-1]["output"],
    )
    assert not (tmp_path / "after").exists()
    assert "back\n" == (tmp_path / "rolled").read_text()


def test_a_healthy_slo_lets_the_experiment_complete(tmp_path: Path) -> None:
    spec, db = write_spec(tmp_path), tmp_path / "sli.db"
    fill(db, {time.time(): (999, 1000)})  # burn 0.1x
    exp = burn_experiment(tmp_path, spec, db, limit=2)
    exp["method"][0]["pauses"]["after"] = 0.2
    d = run(exp)
    assert ("completed", False) == (d["status"], d["deviated"])
    during = d["steady_states"]["during"]
    assert during and all(r["tolerance_met"] for r in during)
    assert 0.1 == pytest.approx(during[0]["output"])
    assert (tmp_path / "after").exists()


def test_a_burn_rate_tolerance_without_max_is_rejected_with_its_line(tmp_path: Path) -> None:
    exp = burn_experiment(tmp_path, tmp_path / "r.yaml", tmp_path / "s.db", limit=2)
    exp["continuous-probes"][0]["tolerance"] = {"type": "burn-rate", "max": -1}
    with pytest.raises(SpecError) as info:
        load_experiment_text(yaml.safe_dump(exp, sort_keys=False), "exp.yaml")
    assert "continuous-probes[0].tolerance.max" == info.value.field
    assert "needs max: a number >= 0" in str(info.value)
