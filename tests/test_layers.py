"""The import graph inside ``buttress`` is a DAG: no module imports itself through others, and no
top-level subpackage (``buttress.spec``, ``buttress.slo``, ...; single modules such as
``buttress.pipeline`` count as their own node) depends on another that depends back on it.

Every runtime import counts, including imports inside functions; only imports under
``if TYPE_CHECKING:`` are exempt, because they never run.  ``import buttress.x.y`` and
``from buttress.x import y`` (``y`` a module) are edges to the module ``buttress.x.y`` (not to the
packages above it); ``from buttress.x import Name`` is an edge to ``buttress.x``, so
``from buttress import Name`` is an edge to the root package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "buttress"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node`` except those in ``if TYPE_CHECKING:`` bodies (their
    ``else:`` branches do run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                if isinstance(stmt, ast.Import | ast.ImportFrom):
                    yield stmt
                yield from _runtime_imports(stmt)
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _runtime_imports(child)


def _targets(module: str, is_package: bool, stmt: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(stmt, ast.Import):
        for alias in stmt.names:
            yield alias.name
        return
    if stmt.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (stmt.level - 1)]
        source = ".".join([*base, *([stmt.module] if stmt.module else [])])
    else:
        source = stmt.module or ""
    for alias in stmt.names:
        yield f"{source}.{alias.name}"  # a submodule, when there is one...
        yield source  # ...else a name in ``source``


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``buttress`` modules it imports at run time."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for stmt in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = list(_targets(name, is_package, stmt))
            if isinstance(stmt, ast.Import):
                edges.update(t for t in targets if t in modules)
                continue
            # pairs: (source.name, source); the submodule when it exists, else the source
            for sub, source in zip(targets[::2], targets[1::2], strict=True):
                if sub in modules:
                    edges.add(sub)
                elif source in modules:
                    edges.add(source)
        edges.discard(name)
        graph[name] = edges
    return graph


def subpackage(module: str) -> str:
    """``buttress.spec.source`` -> ``buttress.spec``; ``buttress`` (the root) stays itself."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        node = subpackage(module)
        out.setdefault(node, set()).update(subpackage(t) for t in targets)
    for node, targets in out.items():
        targets.discard(node)
    return out


def knots(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (each a set of nodes that all
    reach each other, so every cycle lies inside one), sorted (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return sorted(components)


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first node (breadth first, inside it)."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle in component {sorted(component)}")  # pragma: no cover


def _report(graph: dict[str, set[str]], found: list[list[str]]) -> str:
    """Per knot: a shortest cycle through it, then every node caught in it."""
    lines = ["import cycles:"]
    for knot in found:
        lines.append("  " + " -> ".join(_cycle_in(graph, set(knot))))
        lines.append(f"    ({len(knot)} caught in this knot: {', '.join(knot)})")
    return "\n".join(lines)


def test_the_graph_sees_lazy_imports_and_skips_type_checking_ones() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import buttress.clock\n"
        "if TYPE_CHECKING:\n"
        "    from buttress.pipeline import Pipeline\n"
        "else:\n"
        "    from buttress import errors\n"
        "def f():\n"
        "    from .events import Event\n"
    )
    found = [
        t
        for stmt in _runtime_imports(tree)
        for t in _targets("buttress.policies.retry", False, stmt)
    ]
    assert "buttress.pipeline" not in found
    assert {"buttress.clock", "buttress.errors", "buttress.policies.events"} <= set(found)


def test_no_cycle_among_modules() -> None:
    graph = import_graph()
    found = knots(graph)
    assert not found, _report(graph, found)


def test_no_cycle_among_subpackages() -> None:
    graph = package_graph(import_graph())
    found = knots(graph)
    assert not found, _report(graph, found)


def test_the_cycle_finder_finds_every_knot() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert knots(graph) == [["a", "b", "c"], ["e", "f"]]
    assert _cycle_in(graph, {"a", "b", "c"}) == ["a", "b", "c", "a"]
    assert knots({"a": {"b"}, "b": set()}) == []


def test_import_buttress_spec_loads_neither_chaos_nor_lab_nor_dashboard() -> None:
    code = (
        "import sys, buttress.spec\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('buttress'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(out.split())
    assert "buttress.spec" in loaded
    for heavy in ("buttress.chaos", "buttress.lab", "buttress.dashboard"):
        assert not {m for m in loaded if m == heavy or m.startswith(heavy + ".")}, heavy


def test_the_typed_root_model_declares_the_registered_sections() -> None:
    """``spec/document.py`` declares ``ReliabilitySpec`` for type checkers (under
    ``TYPE_CHECKING``); at run time the class is built from the registered sections.  Both must
    name the same sections."""
    from buttress.spec.document import ReliabilitySpecBase, spec_model

    tree = ast.parse((ROOT / PACKAGE / "spec" / "document.py").read_text(encoding="utf-8"))
    declared = {
        stmt.target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and node.name == "ReliabilitySpec"
        for stmt in node.body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }
    built = set(spec_model().model_fields) - set(ReliabilitySpecBase.model_fields)
    assert (
        declared
        == built
        == {"slos", "architecture", "health", "experiments", "supervision", "modes", "remediation"}
    )


def test_a_registered_section_joins_the_root_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel, ConfigDict

    from buttress.errors import SpecError
    from buttress.spec import ReliabilitySpecBase, load_spec_text, register_section, sections

    class Canary(BaseModel):
        model_config = ConfigDict(extra="forbid")
        share: float = 0.05

    # The built-in sections first: registered inside the patched copy, they would vanish with it
    # while their modules stay imported (a later test would find no health section).
    sections.load_builtin_sections()
    monkeypatch.setattr(sections, "_registered", dict(sections._registered))
    register_section("canary", Canary, description="How much traffic a canary gets.")
    register_section("canary", Canary, description="Registering again is harmless.")
    with pytest.raises(ValueError, match="already registered"):
        register_section("health", Canary, description="A key someone else owns.")

    spec = load_spec_text("service: shop\ncanary: {share: 0.1}\n")
    assert isinstance(spec, ReliabilitySpecBase)
    assert spec.canary == Canary(share=0.1)  # type: ignore[attr-defined]
    assert spec.slos == [] and spec.health is None
    with pytest.raises(SpecError, match="share"):
        load_spec_text("canary:\n  shares: 1\n")


def test_import_buttress_loads_the_policy_core_only() -> None:
    import subprocess
    import sys

    code = (
        "import sys, buttress\n"
        "[getattr(buttress, n) for n in buttress.__all__ if not n.startswith('failpoint')]\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('buttress'))))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'yaml', 'redis', 'httpx', 'numpy', 'starlette', 'click'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, third_party = out.stdout.splitlines() + [""] * (2 - len(out.stdout.splitlines()))
    allowed = ("buttress.policies",)
    for name in loaded.split():
        assert name.count(".") <= 1 or name.startswith(allowed), name
        assert not name.startswith(
            ("buttress.health", "buttress.state", "buttress.spec", "buttress.slo", "buttress.lab")
        ), name
    assert "" == third_party.strip()
