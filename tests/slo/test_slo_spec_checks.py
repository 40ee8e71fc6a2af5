"""`spec validate` refuses what `buttress slo` refuses: duplicate SLO names, an SLO without a
service, and a non-finite objective or burn rate (also in models built from OpenSLO or sloth
files)."""

from __future__ import annotations

import pytest

from buttress.errors import SpecError
from buttress.slo.spec import SLOSpec
from buttress.spec import load_spec_text

SLI = "{kind: ratio, bad: 'sum(rate(x{c=\"5\"}[{{.window}}]))', total: 'sum(rate(x[{{.window}}]))'}"


def _file(top: str, *slos: str) -> str:
    return top + "slos:\n" + "".join(f"  - {s}\n    sli: {SLI}\n" for s in slos)


@pytest.mark.parametrize(
    ("text", "where", "needle"),
    [
        (_file("", "name: a\n    objective: 99"), "r.yaml:2:5: slos[0]", "no service"),
        (
            _file("service: s\n", "name: a\n    objective: 99", "name: a\n    objective: 98"),
            "r.yaml:6:5: slos[1].name",
            "used twice (also slos[0])",
        ),
    ],
)
def test_checks_across_the_file_are_located(text: str, where: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "r.yaml")
    message = str(info.value)
    assert message.startswith(where), message
    assert needle in message


def test_a_valid_file_still_loads() -> None:
    spec = load_spec_text(_file("service: s\n", "name: a\n    objective: 99.9"), "r.yaml")
    assert ["a"] == [s.name for s in spec.slos]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_the_model_itself_refuses_non_finite_objectives(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        SLOSpec.model_validate(
            {"name": "a", "objective": value, "sli": {"kind": "ratio", "bad": "b", "total": "t"}}
        )
