"""Ranges on units' figures give an interval on every journey's availability, by sampling."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from buttress.assess import analyse
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.assess.system import System
from buttress.assess.uncertainty import has_uncertainty, propagate
from buttress.cli import main
from buttress.errors import SpecError


def system_of(arch: dict[str, Any]) -> System:
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def test_one_unit_interval_is_the_ranges_quantiles() -> None:
    system = system_of({"components": {"a": {"uncertain": {"availability": [0.99, 0.999]}}}})
    # Nominal: the geometric middle of the unavailability range.
    nominal = analyse(system).journeys["a"].availability
    assert 1 - math.sqrt(0.01 * 0.001) == pytest.approx(nominal, abs=1e-12)
    (u,) = propagate(system, samples=1000, seed=1).values()
    # q is log-uniform on [0.001, 0.01]: its 95th percentile is 0.001 * 10^0.95, and so on.
    for got, share in ((u.low, 0.95), (u.median, 0.5), (u.high, 0.05)):
        q = 0.001 * 10**share
        assert got == pytest.approx(1 - q, abs=0.15 * q)


def test_series_interval_against_direct_sampling() -> None:
    arch = {
        "components": {
            "web": {"uncertain": {"availability": [0.995, 0.9995]}, "depends_on": ["db"]},
            "db": {"mttr": "1h", "uncertain": {"mtbf": ["500h", "5000h"]}},
        },
        "journeys": {"j": {"entry": "web"}},
    }
    system = system_of(arch)
    assert has_uncertainty(system)
    u = propagate(system, samples=800, seed=3)["j"]
    # Independent computation: the same model as a product, sampled here.
    rng = np.random.default_rng(99)
    q_web = np.exp(rng.uniform(np.log(0.0005), np.log(0.005), 200_000))
    mtbf = np.exp(rng.uniform(np.log(500), np.log(5000), 200_000))
    a = (1 - q_web) * mtbf / (mtbf + 1)
    low, median, high = np.quantile(a, [0.05, 0.5, 0.95])
    width = high - low
    assert u.low == pytest.approx(low, abs=0.08 * width)
    assert u.median == pytest.approx(median, abs=0.08 * width)
    assert u.high == pytest.approx(high, abs=0.08 * width)


def test_a_model_without_ranges_has_no_interval(tmp_path: Path) -> None:
    spec = tmp_path / "reliability.yaml"
    spec.write_text("architecture:\n  components:\n    a: {availability: 0.99}\n", "utf-8")
    result = CliRunner().invoke(main, ["assess", str(spec), "--json", "--report-only"])
    assert "uncertainty" not in json.loads(result.stdout)["journeys"][0]
    spec.write_text(
        "architecture:\n  components:\n    a: {uncertain: {mttr: [10m, 2h]}, mtbf: 1000h}\n",
        "utf-8",
    )
    result = CliRunner().invoke(main, ["assess", str(spec), "--samples", "50", "--report-only"])
    assert 0 == result.exit_code, result.output
    assert "Uncertainty (availability, 90% interval)" in result.output
    data = CliRunner().invoke(
        main, ["assess", str(spec), "--samples", "50", "--json", "--report-only"]
    )
    u = json.loads(data.stdout)["journeys"][0]["uncertainty"]
    assert 50 == u["samples"]
    # MTTR from 10 min to 2 h at MTBF 1000 h.
    assert 1000 / 1002 < u["availability_p05"] < u["availability_p95"] < 1000 / (1000 + 1 / 6)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ("uncertain: {availability: [0.999, 0.99]}", "architecture.components.a.uncertain"),
        ("uncertain: {mtbf: [10h, -1h]}", "architecture.components.a.uncertain.mtbf[1]"),
        (
            "uncertain: {availability: [0, 0.9]}",
            "architecture.components.a.uncertain.availability[0]",
        ),
        ("mtbf: 10h\n      uncertain: {availability: [0.9, 0.99]}", "architecture.components.a"),
    ],
)
def test_bad_ranges_are_located(tmp_path: Path, fields: str, field: str) -> None:
    path = tmp_path / "reliability.yaml"
    path.write_text(f"architecture:\n  components:\n    a:\n      {fields}\n", "utf-8")
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    assert field == info.value.field
    assert info.value.line is not None and info.value.line >= 3
    result = CliRunner().invoke(main, ["assess", str(path)])
    assert 2 == result.exit_code and "Traceback" not in result.output


def test_lognormal_and_uniform_ranges() -> None:
    # Lognormal with [500 h, 5000 h] as its 5th-95th percentile: the MTBF's median is the
    # geometric middle and 90% of the draws fall inside the range.
    def interval(distribution: str) -> Any:
        arch = {
            "components": {
                "a": {
                    "mttr": "1h",
                    "uncertain": {"mtbf": ["500h", "5000h"], "distribution": distribution},
                }
            }
        }
        system = system_of(arch)
        return system, propagate(system, samples=1500, seed=5)["a"]

    system, u = interval("lognormal")
    middle = math.sqrt(500 * 5000)
    assert system.components["a"].unit.mtbf == pytest.approx(middle)
    width = 5000 / 5001 - 500 / 501
    assert u.median == pytest.approx(middle / (middle + 1), abs=0.05 * width)
    assert u.low == pytest.approx(500 / 501, abs=0.08 * width)
    assert u.high == pytest.approx(5000 / 5001, abs=0.08 * width)
    system, u = interval("uniform")
    assert system.components["a"].unit.mtbf == pytest.approx(2750)
    assert u.median == pytest.approx(2750 / 2751, abs=0.05 * width)
    # The uniform draw's 5th percentile is its MTBF's: 500 + 0.05 * 4500.
    assert u.low == pytest.approx(725 / 726, abs=0.08 * width)
