"""The lab's retry-storm figures in ``make bench``: load amplification per strategy, run time.

The figures are those of ``buttress lab --seed 1`` (simulated time, so they do not depend on the
machine); the run time is wall-clock and does.  Definitions: ``docs/lab.md``.
"""

from __future__ import annotations

import time
from typing import Any

from buttress.lab.sim import RetryStorm

SEED = 1


def run(quick: bool = False) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    report = RetryStorm().run(SEED)
    took = time.perf_counter() - t0
    horizon = report.parameters["observed_after_recovery"]
    rows: list[dict[str, Any]] = []
    for r in report.results:
        recovery = (
            f"{r.recovery_seconds:.1f} s" if r.recovery_seconds is not None else f"> {horizon:g} s"
        )
        rows.append(
            {
                "group": "lab retry-storm: load amplification (seed 1)",
                "name": r.name,
                "value": r.load_amplification,
                "unit": "x",
                "baseline": r.name == "no-retry",
                "lower_is_better": True,
                "note": (
                    f"success {r.success_rate:.1%}, peak {r.peak_load_over_capacity:.2f}x "
                    f"capacity, recovery {recovery}"
                ),
            }
        )
    rows.append(
        {
            "group": "lab retry-storm: wall time",
            "name": "buttress lab (4 strategies)",
            "value": took,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"{sum(r.extra['events'] for r in report.results):,} simulation events",
        }
    )
    return rows
