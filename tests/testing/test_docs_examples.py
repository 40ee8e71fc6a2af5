"""The docs pages stay true: their examples run, their YAML validates, their tables match the code.

* every ```` ```python ```` block of every page runs as it is (in a fresh namespace, with the
  system clock's waits switched off so default-clock examples do not sleep, in a scratch directory
  holding a copy of ``examples/`` and the SLO example as ``reliability.yaml``, so files the
  examples read are there and files they write go nowhere); blocks that begin with
  ``# test_<name>.py`` are pytest files and run in a separate pytest session through ``pytester``;
* ```` ```yaml ```` blocks with a ``policies:`` section load and build into pipelines;
* the event-name table of ``telemetry.md`` lists exactly the events the core emits;
* ``index.md`` links every page, including the ones other areas write.
"""

from __future__ import annotations

import dataclasses
import gc
import re
import shutil
from pathlib import Path

import pytest

import buttress.events
from buttress.events import Event
from buttress.testing import set_testing

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = [
    "index.md",
    "retry.md",
    "budgets.md",
    "deadlines.md",
    "fallback.md",
    "pipelines.md",
    "telemetry.md",
    "testing.md",
]
OTHER_PAGES = [
    "circuit-breaker.md",
    "bulkhead.md",
    "rate-limiter.md",
    "hedging.md",
    "adaptive-concurrency.md",
    "load-shedding.md",
    "slo.md",
    "assess.md",
    "chaos.md",
    "lab.md",
]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
EXAMPLES = DOCS.parent / "examples"


def blocks(language: str, pages: list[str] = PAGES) -> list[tuple[str, int, str]]:
    out = []
    for page in pages:
        for i, m in enumerate(FENCE.finditer((DOCS / page).read_text())):
            if m.group(1) == language:
                out.append((page, i, m.group(2)))
    return out


ALL_PAGES = sorted(p.name for p in DOCS.glob("*.md"))
PYTHON = blocks("python", ALL_PAGES)
SCRIPTS = [b for b in PYTHON if not b[2].startswith("# test_")]
PYTEST_FILES = [b for b in PYTHON if b[2].startswith("# test_")]
YAML = [b for b in blocks("yaml") if b[2].startswith("policies:")]


def ident(block: tuple[str, int, str]) -> str:
    return f"{block[0]}#{block[1]}"


def test_every_page_has_runnable_examples() -> None:
    pages = {page for page, _, _ in PYTHON}
    assert set(PAGES) <= pages
    assert 50 <= len(SCRIPTS)
    assert 2 <= len(PYTEST_FILES)
    assert 4 <= len(YAML)


def _active_emitters() -> set[int]:
    # Collect first: an earlier test on this worker may leave a pipeline with a listener in a
    # reference cycle, still registered (and active) until the collector runs.
    gc.collect()
    return {id(em) for em in list(buttress.events._emitters) if em.active}


def test_every_python_block_of_every_page_is_run() -> None:
    fenced = sum(
        m.group(1) == "python"
        for page in DOCS.glob("*.md")
        for m in FENCE.finditer(page.read_text())
    )
    assert fenced == len(SCRIPTS) + len(PYTEST_FILES)


@pytest.mark.parametrize("block", SCRIPTS, ids=ident)
def test_python_example_runs(
    block: tuple[str, int, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page, i, code = block
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    shutil.copy(EXAMPLES / "slo" / "reliability.yaml", tmp_path / "reliability.yaml")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page[:-3]}_{i}"}
    before = _active_emitters()
    with set_testing(True):
        exec(compile(code, f"docs/{page} block {i}", "exec"), namespace)
    assert not _active_emitters() - before, "the example left a listener installed"


@pytest.mark.parametrize("block", PYTEST_FILES, ids=ident)
def test_pytest_example_passes(block: tuple[str, int, str], pytester: pytest.Pytester) -> None:
    _page, _i, code = block
    first = code.splitlines()[0]
    name = first.removeprefix("# ").removesuffix(".py")
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(**{name: code})
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    n_tests = len(re.findall(r"^(?:async )?def test_", code, re.M))
    result.assert_outcomes(passed=n_tests)


@pytest.mark.parametrize("block", YAML, ids=ident)
def test_yaml_example_builds(block: tuple[str, int, str]) -> None:
    from buttress.spec import build_pipelines, load_spec_text

    page, _i, text = block
    spec = load_spec_text(text, f"docs/{page}")
    pipelines = build_pipelines(spec)
    assert set(spec.policies) == set(pipelines)


def core_event_names() -> set[str]:
    classes = [
        obj
        for obj in vars(buttress.events).values()
        if isinstance(obj, type)
        and issubclass(obj, Event)
        and obj.kind != Event.kind  # the root and EventFamily name no event
        and dataclasses.is_dataclass(obj)
    ]
    return {f"buttress_{c.policy_type}_{c.kind}" for c in classes}


def test_event_table_lists_exactly_the_core_events() -> None:
    text = (DOCS / "telemetry.md").read_text()
    section = text.split("## Event names", 1)[1].split("\n## ", 1)[0]
    in_table = set(re.findall(r"^\| `(buttress_[a-z_]+)`", section, re.M))
    assert core_event_names() == in_table


def test_policy_pages_name_only_real_events() -> None:
    names = core_event_names()
    for page in ("retry.md", "deadlines.md", "fallback.md", "pipelines.md"):
        rows = set(re.findall(r"^\| `(buttress_[a-z_]+)`", (DOCS / page).read_text(), re.M))
        assert rows, page
        assert set() == rows - names, page


def test_index_links_every_page() -> None:
    links = set(re.findall(r"\]\(([a-z-]+\.md)\)", (DOCS / "index.md").read_text()))
    on_disk = {p.name for p in DOCS.glob("*.md")} - {"index.md"}
    assert on_disk == links
    assert set(PAGES[1:]) | set(OTHER_PAGES) <= links
    for page in PAGES:
        assert (DOCS / page).is_file(), page
