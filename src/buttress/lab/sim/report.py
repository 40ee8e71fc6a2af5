"""What a lab run reports: one row per strategy, as a table for people or JSON for machines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from buttress.records import attributes
from buttress.tables import render_table as render

__all__ = [
    "DEFAULT_COLUMNS",
    "Column",
    "ScenarioReport",
    "StrategyResult",
    "render_table",
    "to_json",
]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the text table: ``header``, the ``key`` of the figure in
    :meth:`StrategyResult.as_dict`, and how to show it (``fmt``):

    ``"text"`` as is; ``"percent"`` a fraction as ``97.5%``; ``"times"`` ``1.07x``; ``"ms"``
    seconds as milliseconds; ``"recovery"`` seconds, or ``never (> horizon)`` for ``None``.
    Missing figures show as ``-``.
    """

    header: str
    key: str
    fmt: str = "text"


DEFAULT_COLUMNS: tuple[Column, ...] = (
    Column("strategy", "name"),
    Column("success", "success_rate", "percent"),
    Column("load amplif.", "load_amplification", "times"),
    Column("peak load/capacity", "peak_load_over_capacity", "times"),
    Column("recovery", "recovery_seconds", "recovery"),
    Column("how", "summary"),
)
"""The retry-storm table."""


_FIGURES = ("success_rate", "load_amplification", "peak_load_over_capacity", "recovery_seconds")


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """The figures of one strategy in one scenario run (definitions in ``docs/lab.md``).

    :param success_rate: client requests that eventually succeeded / client requests issued.
    :param load_amplification: calls that reached the server (attempts, rejected ones included) /
        client requests issued.
    :param peak_load_over_capacity: the largest number of server calls in any 1-second bucket
        ``[k, k + 1)``, divided by the server's capacity per second.
    :param recovery_seconds: how long after the dependency is back the client success rate stays at
        or above the target (see the scenario); ``None`` when it never did within the run.
    :param extra: further counts (server rejections, wasted work, reasons for giving up...).
    """

    name: str
    summary: str
    success_rate: float
    load_amplification: float
    peak_load_over_capacity: float
    recovery_seconds: float | None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data: the figures rounded to 6 places, then ``extra``."""
        out: dict[str, Any] = {"name": self.name, "summary": self.summary}
        for key in _FIGURES:
            value = getattr(self, key)
            out[key] = None if value is None else round(value, 6)
        return out | self.extra


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """A whole run: scenario, seed, parameters, description and one row per strategy."""

    scenario: str
    seed: int
    description: str
    parameters: dict[str, Any]
    results: tuple[StrategyResult, ...]
    notes: tuple[str, ...] = ()
    columns: tuple[Column, ...] = DEFAULT_COLUMNS

    def result(self, name: str) -> StrategyResult:
        """The row of strategy ``name`` (``KeyError`` when absent)."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        strategies = [r.as_dict() for r in self.results]
        head = attributes(self, "scenario", "seed", "description", "parameters")
        return head | {"strategies": strategies, "notes": list(self.notes)}


def to_json(report: ScenarioReport, indent: int | None = 2) -> str:
    """The report as JSON (deterministic: same run, same text)."""
    return json.dumps(report.as_dict(), indent=indent)


def _cell(col: Column, row: dict[str, Any], horizon: float | None) -> str:
    v = row.get(col.key)
    fmt = col.fmt
    if fmt == "recovery":
        if v is not None:
            return f"{v:.1f} s"
        return f"never (> {horizon:g} s)" if horizon is not None else "never"
    if v is None:
        return "-"
    if fmt == "percent":
        return f"{v * 100:.1f}%"
    if fmt == "times":
        return f"{v:.2f}x"
    if fmt == "ms":
        return f"{v * 1000:.0f} ms"
    return str(v)


def render_table(report: ScenarioReport) -> str:
    """The report as text: the description, a table (``report.columns``), then the notes."""
    h = report.parameters.get("observed_after_recovery")
    horizon = float(h) if isinstance(h, int | float) else None
    cols = report.columns
    dicts = [r.as_dict() for r in report.results]
    table = render(
        [c.header for c in cols],
        [[_cell(c, d, horizon) for c in cols] for d in dicts],
        right={i for i, c in enumerate(cols) if c.fmt != "text"},
    )
    parts = [f"buttress lab: {report.scenario} (seed {report.seed})", "", report.description, ""]
    parts.append(table)
    if report.notes:
        parts.append("")
        parts.extend(report.notes)
    return "\n".join(parts)
