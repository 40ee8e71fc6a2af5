"""``buttress slo generate``: the rule file and one promtool test file per SLO, written only once
everything has been built (a problem anywhere leaves the output directory untouched)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .promtests import UnsupportedQuery, test_file
from .rules import BUTTRESS, Naming, rules_for, to_yaml
from .spec import SLOSpec

__all__ = ["Generated", "build_outputs", "write_outputs"]


@dataclass
class Generated:
    """Files to write (name -> text) and notes for SLOs left out of the rules or the tests."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_outputs(
    slos: list[SLOSpec], *, with_tests: bool = True, naming: Naming = BUTTRESS
) -> Generated:
    """Build (in memory) ``<slo>.rules.yaml`` and ``<slo>.test.yaml`` for each SLO.

    One rule file per SLO, so that each test file loads only the rules it tests (load them all with
    ``rule_files: [".../*.rules.yaml"]``).
    """
    out = Generated()
    for slo in slos:
        out.notes.extend(slo.warnings())
        if not slo.sli.has_prometheus:
            out.notes.append(
                f"slo {slo.name!r}: no Prometheus queries (recorded events only); "
                "use `buttress slo status` for it"
            )
            continue
        group = rules_for(slo, naming=naming)
        rule_file = f"{slo.name}.rules.yaml"
        out.files[rule_file] = to_yaml({"groups": [group]})
        if with_tests:
            try:
                tf = test_file(slo, group, rule_file, out.notes, naming)
            except UnsupportedQuery as e:
                out.notes.append(f"slo {slo.name!r}: no promtool test generated: {e}")
                continue
            out.files[f"{slo.name}.test.yaml"] = to_yaml(tf)
    return out


def write_outputs(gen: Generated, out_dir: str | Path) -> list[Path]:
    """Write every file of ``gen`` into ``out_dir`` (each atomically: temp file, then rename)."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in sorted(gen.files.items()):
        target = d / fname
        fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{fname}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
        written.append(target)
    return written
