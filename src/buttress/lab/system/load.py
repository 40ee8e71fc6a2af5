"""Load ``reliability.yaml`` for ``buttress lab PATH`` and cross-check its ``experiments:``
section against the rest (services, request kinds, SLO names): errors name file, line and field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from buttress.lab.errors import LabError
from buttress.spec import load_spec

from .spec import ExperimentsSpec, instance_names

if TYPE_CHECKING:
    from buttress.spec import ReliabilitySpec

__all__ = ["LoadedLab", "load_lab", "targets"]

"""``err(location, message)``: the error for a location under ``experiments:``."""


@dataclass(frozen=True)
class LoadedLab:
    """A checked lab: the spec, its ``experiments:`` section, the file and the app directory."""

    spec: ReliabilitySpec
    experiments: ExperimentsSpec
    file: Path
    app_dir: Path


def load_lab(path: str | Path) -> LoadedLab:
    """Load ``path`` (a directory holding ``reliability.yaml``, or the file) with its
    ``experiments:`` section, cross-checked by the spec's validators; every problem raises
    :class:`~buttress.errors.SpecError` or :class:`~buttress.lab.errors.LabError` naming the
    file."""
    p = Path(path)
    file = p / "reliability.yaml" if p.is_dir() else p
    if not file.exists():
        raise LabError(f"{path}: no such file or directory (expected a reliability.yaml)")
    spec = load_spec(file)
    exp = spec.experiments
    if exp is None:
        raise LabError(f"{file}: no 'experiments:' section, so there is no system to run")
    # The experiments: model has already checked the system, the plan and the hypotheses'
    # SLOs against the rest of the file (buttress spec validate makes the same checks).
    return LoadedLab(spec, exp, file, file.parent.resolve())


def targets(exp: ExperimentsSpec) -> dict[str, list[str]]:
    """Fault targets reachable through the proxy: each depended-on instance and service."""
    out: dict[str, list[str]] = {}
    for name, svc in exp.system.items():
        if any(name in s.depends_on for s in exp.system.values()):
            names = instance_names(name, svc)
            out[name] = names
            for n in names:
                out[n] = [n]
    return out
