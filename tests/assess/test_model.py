"""Bad input in the architecture section: clear errors with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.assess.model import load_architecture
from buttress.errors import SpecError
from buttress.spec.document import load_spec

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


def test_the_whole_spec_loader_reports_cross_references_too(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("depends_on: {db: hard}", "depends_on: {dbb: hard}"))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "components.web.depends_on.dbb: unknown component 'dbb'" in info.value.message


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
