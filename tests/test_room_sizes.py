"""Rooms of a readable size (issue 13): no module of ``buttress`` over 600 lines, and no function
over 80 lines where long functions had grown (the lab, the promtool test generator, the OpenSLO
reader, the fault proxy's server, the experiment runner)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "buttress"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
SHORT_FUNCTIONS = (
    "lab",
    "slo/promtests.py",
    "slo/openslo",
    "chaos/proxy/server.py",
    "chaos/experiment",
)


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_module_over_600_lines() -> None:
    long = {
        str(p.relative_to(SRC)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines (split along a seam): {long}"


def test_no_long_functions_where_they_had_grown() -> None:
    long = []
    for p in _modules():
        rel = p.relative_to(SRC).as_posix()
        if not rel.startswith(SHORT_FUNCTIONS):
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_rule_sees_the_tree() -> None:
    # A path mistake would make both tests above pass on nothing.
    assert len(_modules()) > 200
    assert any(p.relative_to(SRC).as_posix().startswith("lab/system/") for p in _modules())
