"""One full run of each scenario per test session (per xdist worker), shared by its readers."""

from __future__ import annotations

import pytest

from buttress.lab.sim import RetryStorm, ScenarioReport, SlowDependency

SEED = 1


@pytest.fixture(scope="session")
def storm_report() -> ScenarioReport:
    return RetryStorm().run(SEED)


@pytest.fixture(scope="session")
def slow_report() -> ScenarioReport:
    return SlowDependency().run(SEED)
