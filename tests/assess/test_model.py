"""Bad input in the architecture section: clear errors with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.assess.model import (
    ArchitectureSpec,
    ComponentSpec,
    DefaultsSpec,
    RedundancySpec,
    architecture_problems,
    check_architecture,
    load_architecture,
)
from buttress.cli import main
from buttress.errors import SpecError
from buttress.spec.document import load_spec, load_spec_text

GOOD = """\
version: 1
architecture:
  domains:
    zone-a: {kind: zone}
  components:
    web:
      replicas: 2
      placement: [zone-a]
      availability: 0.999
      depends_on: {db: hard}
    db:
      availability: 0.9995
  journeys:
    home: {entry: web, target: 0.999}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "reliability.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str) -> SpecError:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_architecture(path)
    return info.value


def test_a_good_file_loads_through_both_loaders(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    arch, _ = load_architecture(path)
    assert ["web", "db"] == list(arch.components)
    spec = load_spec(path)
    assert spec.architecture is not None
    assert 2 == spec.architecture.components["web"].replicas


def test_cycle_among_hard_dependencies_points_at_the_closing_edge(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      availability: 0.9995\n",
        "      availability: 0.9995\n      depends_on: {web: hard}\n",
    )
    err = error_of(tmp_path, text)
    assert str(err.file).endswith("reliability.yaml")
    assert 13 == err.line
    assert "architecture.components.db.depends_on.web" == err.field
    assert "cycle: web -> db -> web" in err.message


def test_soft_cycles_are_allowed(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      availability: 0.9995\n",
        "      availability: 0.9995\n      depends_on: {web: soft}\n",
    )
    arch, _ = load_architecture(write(tmp_path, text))
    assert "soft" == arch.components["db"].depends_on["web"].type


def test_unknown_component_suggests_the_closest_name(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("depends_on: {db: hard}", "depends_on: {dbb: hard}"))
    assert 10 == err.line
    assert "architecture.components.web.depends_on.dbb" == err.field
    assert "unknown component 'dbb'; did you mean 'db'?" == err.message


def test_unknown_journey_entry_and_domain(tmp_path: Path) -> None:
    err = error_of(tmp_path, GOOD.replace("entry: web", "entry: webb"))
    assert ("architecture.journeys.home.entry", 14) == (err.field, err.line)
    err = error_of(tmp_path, GOOD.replace("placement: [zone-a]", "placement: [zone-b]"))
    assert ("architecture.components.web.placement[0]", 8) == (err.field, err.line)
    assert "unknown domain 'zone-b'" in err.message


def test_k_greater_than_n(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      replicas: 2\n", "      replicas: 2\n      redundancy: {required: 3}\n"
    )
    err = error_of(tmp_path, text)
    assert ("architecture.components.web.redundancy.required", 8) == (err.field, err.line)
    assert "required=3 > replicas=2" in err.message


@pytest.mark.parametrize("value", ["0", "1.5", "-0.2"])
def test_availability_outside_zero_one(tmp_path: Path, value: str) -> None:
    err = error_of(tmp_path, GOOD.replace("availability: 0.9995", f"availability: {value}"))
    assert ("architecture.components.db.availability", 12) == (err.field, err.line)


def test_negative_times(tmp_path: Path) -> None:
    text = GOOD.replace("      availability: 0.9995\n", "      mtbf: 100h\n      mttr: -5m\n")
    err = error_of(tmp_path, text)
    assert ("architecture.components.db.mttr", 13) == (err.field, err.line)
    assert "negative" in err.message


def test_availability_and_mtbf_together_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      availability: 0.9995\n", "      availability: 0.9995\n      mtbf: 10h\n"
    )
    err = error_of(tmp_path, text)
    assert "either availability or mtbf" in err.message
    assert "architecture.components.db" == err.field


CYCLE = GOOD.replace(
    "      availability: 0.9995\n", "      availability: 0.9995\n      depends_on: {web: hard}\n"
)
K_OVER_N = GOOD.replace(
    "      replicas: 2\n", "      replicas: 2\n      redundancy: {required: 3}\n"
)
UNKNOWN = GOOD.replace("depends_on: {db: hard}", "depends_on: {dbb: hard}")

# (file text, line, column, field, message head) of each semantic error.
SEMANTIC = {
    "cycle": (
        CYCLE,
        13,
        20,
        "architecture.components.db.depends_on.web",
        "hard dependencies form a cycle: web -> db -> web",
    ),
    "k>n": (
        K_OVER_N,
        8,
        20,
        "architecture.components.web.redundancy.required",
        "k of k-of-n must not exceed n: required=3 > replicas=2",
    ),
    "unknown": (
        UNKNOWN,
        10,
        20,
        "architecture.components.web.depends_on.dbb",
        "unknown component 'dbb'; did you mean 'db'?",
    ),
}


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_every_loader_names_the_exact_node_of_a_semantic_error(tmp_path: Path, case: str) -> None:
    """load_architecture (buttress assess), load_spec and load_spec_text (buttress spec validate
    and every other command) report cross-reference errors at the same line, column and field."""
    text, line, column, field, message = SEMANTIC[case]
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as spec_err:
        load_spec(path)
    with pytest.raises(SpecError) as text_err:
        load_spec_text(text, file="inline.yaml")
    arch_err = error_of(tmp_path, text)
    for err, file in ((spec_err.value, str(path)), (arch_err, str(path))):
        assert (file, line, column, field) == (err.file, err.line, err.column, err.field)
        assert err.message.startswith(message)
    t = text_err.value
    assert ("inline.yaml", line, column, field) == (t.file, t.line, t.column, t.field)


@pytest.mark.parametrize("case", sorted(SEMANTIC))
def test_spec_validate_prints_the_exact_position(tmp_path: Path, case: str) -> None:
    text, line, column, field, message = SEMANTIC[case]
    path = write(tmp_path, text)
    for args in (["spec", "validate", str(path)], ["assess", str(path)]):
        result = CliRunner().invoke(main, args)
        assert 2 == result.exit_code
        assert f"error: {path}:{line}:{column}: {field}: {message}" in result.output
        assert "Traceback" not in result.output


def test_all_semantic_errors_are_listed_at_once_beside_schema_errors(tmp_path: Path) -> None:
    text = (
        "version: 1\n"
        "slos: 3\n"
        "architecture:\n"
        "  components:\n"
        "    web:\n"
        "      replicas: 2\n"
        "      redundancy: {required: 3}\n"
        "      depends_on:\n"
        "        - db\n"
        "        - dbx\n"
        "    db:\n"
        "      depends_on: {web: hard}\n"
        "  journeys:\n"
        "    j: {entry: wbe}\n"
    )
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    found = [(p.line, p.field) for p in info.value.problems]  # type: ignore[attr-defined]
    assert [
        (2, "slos"),
        (7, "architecture.components.web.redundancy.required"),
        (10, "architecture.components.web.depends_on[1]"),  # list form: the item's own line
        (12, "architecture.components.db.depends_on.web"),
        (14, "architecture.journeys.j.entry"),
    ] == found
    # The architecture-only loader reports the same four architecture problems.
    err = error_of(tmp_path, text)
    assert found[1:] == [(p.line, p.field) for p in err.problems]  # type: ignore[attr-defined]


def test_check_architecture_raises_the_first_problem_through_the_callback() -> None:
    arch = ArchitectureSpec.model_construct(
        defaults=DefaultsSpec(),
        domains={},
        components={"a": ComponentSpec(replicas=1, redundancy=RedundancySpec(required=2))},
        journeys={},
    )
    assert [
        (
            ("components", "a", "redundancy", "required"),
            "k of k-of-n must not exceed n: required=2 > replicas=1",
        )
    ] == architecture_problems(arch)
    with pytest.raises(KeyError) as info:
        check_architecture(arch, lambda loc, msg: KeyError((loc, msg)))
    assert ("components", "a", "redundancy", "required") == info.value.args[0][0]


def test_domain_parent_cycle(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    zone-a: {kind: zone}\n",
        "    zone-a: {kind: zone, parent: r}\n    r: {kind: region, parent: zone-a}\n",
    )
    err = error_of(tmp_path, text)
    assert "domain parents form a cycle" in err.message
    assert "architecture.domains.zone-a.parent" == err.field


def test_missing_section(tmp_path: Path) -> None:
    err = error_of(tmp_path, "version: 1\n")
    assert "no 'architecture:' section" in err.message
