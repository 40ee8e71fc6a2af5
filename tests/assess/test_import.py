"""``buttress assess --from``: a first model from a Docker Compose file or Kubernetes manifests,
with the guesses listed as assumptions; anything else is refused with its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from buttress.assess.importers import import_architecture
from buttress.assess.model import ArchitectureSpec, load_architecture
from buttress.cli import main
from buttress.errors import SpecError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_compose_model() -> None:
    imported = import_architecture(FIXTURES / "compose.yaml")
    assert "compose" == imported.kind
    comps = imported.architecture["components"]
    assert 3 == comps["web"]["replicas"] and 2 == comps["api"]["replicas"]
    assert "replicas" not in comps["db"]
    assert {"db": "hard", "cache": "hard"} == comps["api"]["depends_on"]
    assert ("datastore", "datastore", "queue") == (
        comps["db"]["kind"],
        comps["cache"]["kind"],
        comps["events"]["kind"],
    )
    assert 30.0 == comps["web"]["detect"] and 25.0 == comps["db"]["detect"]
    assert 3600.0 == comps["worker"]["mttr"]  # no restart policy
    assert {"web": {"entry": "web"}} == imported.architecture["journeys"]
    assert any(a.startswith("cache: no healthcheck") for a in imported.assumptions)
    arch = ArchitectureSpec.model_validate(imported.architecture)
    assert ["api"] == list(arch.components["web"].depends_on)


def test_kubernetes_model() -> None:
    imported = import_architecture(FIXTURES / "k8s")
    assert "kubernetes" == imported.kind
    comps = imported.architecture["components"]
    web, api, db = comps["web"], comps["api"], comps["db"]
    assert (3, {"required": 2}) == (web["replicas"], web["redundancy"])  # PDB minAvailable
    assert {"required": 1} == api["redundancy"]  # 2 - ceil(50% of 2)
    assert ["zone-a", "zone-b", "zone-c"] == web["placement"]  # spread constraint
    assert ["zone-a", "zone-b", "zone-c"] == db["placement"]  # anti-affinity by zone
    assert ["zone-a"] == api["placement"]  # nothing keeps its replicas apart
    assert "datastore" == db["kind"]
    assert 10.0 == web["detect"] and 30.0 == api["detect"]  # probe period x threshold
    assert {"api": "hard"} == web["depends_on"]  # API_URL names the api Service
    assert {"db": "hard"} == api["depends_on"]  # via the orders-db Service
    assert {"web": {"entry": "web"}} == imported.architecture["journeys"]  # the Ingress
    assert any("api: no zone spread" in a for a in imported.assumptions)
    assert ["eu-west-1b"] == comps["batch"]["placement"]  # pinned by nodeSelector
    assert "eu-west-1b" in imported.architecture["domains"]
    ArchitectureSpec.model_validate(imported.architecture)


def test_cli_assesses_an_import_and_lists_assumptions(tmp_path: Path) -> None:
    out = tmp_path / "reliability.yaml"
    result = CliRunner().invoke(
        main, ["assess", "--from", str(FIXTURES / "k8s"), "--emit-model", str(out), "--report-only"]
    )
    assert 0 == result.exit_code, result.output
    assert "Assumptions (imported model)" in result.output
    assert "imported from kubernetes" in result.output
    # The emitted model loads as a file and gives the same figure.
    arch, _ = load_architecture(out)
    assert "# Assumptions to check and refine:" in out.read_text("utf-8")
    data = CliRunner().invoke(
        main, ["assess", "--from", str(FIXTURES / "compose.yaml"), "--json", "--report-only"]
    )
    report = json.loads(data.stdout)
    assert report["assumptions"] and report["journeys"][0]["name"] == "web"
    again = CliRunner().invoke(main, ["assess", str(out), "--json", "--report-only"])
    k8s = CliRunner().invoke(
        main, ["assess", "--from", str(FIXTURES / "k8s"), "--json", "--report-only"]
    )
    assert json.loads(again.stdout)["journeys"][0]["availability"] == pytest.approx(
        json.loads(k8s.stdout)["journeys"][0]["availability"], abs=1e-15
    )
    assert set(arch.components) == {"web", "api", "db", "batch"}


def test_neither_compose_nor_kubernetes_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.yaml"
    bad.write_text("title: not a deployment\nitems: [1, 2]\n", "utf-8")
    with pytest.raises(SpecError) as info:
        import_architecture(bad)
    assert 1 == info.value.line and "neither a Docker Compose file" in info.value.message
    result = CliRunner().invoke(main, ["assess", "--from", str(bad)])
    assert 2 == result.exit_code
    assert f"{bad}:1" in result.output and "Traceback" not in result.output
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  web: nginx\n", "utf-8")
    with pytest.raises(SpecError) as info:
        import_architecture(compose)
    assert (2, "services.web") == (info.value.line, info.value.field)


def test_file_and_from_are_exclusive(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["assess"])
    assert 2 == result.exit_code and "--from" in result.output
    result = CliRunner().invoke(
        main, ["assess", "x.yaml", "--from", str(FIXTURES / "compose.yaml")]
    )
    assert 2 == result.exit_code


def test_malformed_manifests_are_one_line_errors(tmp_path: Path) -> None:
    k8s = tmp_path / "app.yaml"
    k8s.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: three\n",
        "utf-8",
    )
    with pytest.raises(SpecError) as info:
        import_architecture(k8s)
    assert ("spec.replicas", 5) == (info.value.field, info.value.line)
    k8s.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n"
        "    spec:\n      containers:\n        - readinessProbe: {periodSeconds: soon}\n",
        "utf-8",
    )
    result = CliRunner().invoke(main, ["assess", "--from", str(k8s)])
    assert 2 == result.exit_code and "Traceback" not in result.output
    assert "cannot read a field" in result.output
