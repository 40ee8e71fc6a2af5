"""One full retry-storm run per test session (per xdist worker), shared by its readers."""

from __future__ import annotations

import pytest

from buttress.lab import RetryStorm, ScenarioReport

SEED = 1


@pytest.fixture(scope="session")
def storm_report() -> ScenarioReport:
    return RetryStorm().run(SEED)
