"""The docs' parameter tables are generated from the options types and stay so.

``scripts/gen_docs.py --check`` must find every ``<!-- options: X -->`` table up to date, and every
options type of :mod:`buttress.policies` must have a table on some page.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import buttress.policies
from buttress.options import Options

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gen_docs.py"
DOCS = ROOT / "docs"


def policy_options_types() -> set[str]:
    """The names of the options types defined in :mod:`buttress.policies` (aliases folded)."""
    names: set[str] = set()
    for info in pkgutil.iter_modules(buttress.policies.__path__):
        module = importlib.import_module(f"buttress.policies.{info.name}")
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Options)
                and obj is not Options
                and obj.__module__ == module.__name__
            ):
                names.add(obj.__name__)
    return names


def marked_types() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOCS.glob("*.md"))
    return {line.split()[2] for line in text.splitlines() if line.startswith("<!-- options: ")}


def test_generated_tables_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_options_type_has_a_table() -> None:
    types = policy_options_types()
    assert len(types) >= 15, types  # the discovery itself works
    assert set() == types - marked_types()


def test_check_names_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "bulkhead.md"
    page.write_text(
        "# Bulkhead\n\n<!-- options: BulkheadOptions -->\nold table\n<!-- /options -->\n",
        encoding="utf-8",
    )
    cmd = [sys.executable, str(SCRIPT), "--docs", str(tmp_path)]
    stale = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert "bulkhead.md" in stale.stderr
    assert "old table" in page.read_text(encoding="utf-8")  # --check writes nothing

    assert subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    text = page.read_text(encoding="utf-8")
    assert "| `max_concurrent` | `10` | `>= 1` | yes |" in text
    fresh = subprocess.run([*cmd, "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr


def test_unknown_options_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.md").write_text("<!-- options: NoSuchOptions -->\n<!-- /options -->\n")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--docs", str(tmp_path), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "x.md:1" in done.stderr and "NoSuchOptions" in done.stderr
