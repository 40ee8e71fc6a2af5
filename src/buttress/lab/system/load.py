"""Load ``reliability.yaml`` for ``buttress lab PATH`` and cross-check its ``experiments:``
section against the rest (services, request kinds, SLO names): errors name file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from buttress.errors import ButtressError
from buttress.lab.errors import LabError
from buttress.spec import load_spec

from .spec import ExperimentsSpec, instance_names

if TYPE_CHECKING:
    from buttress.spec import ReliabilitySpec

__all__ = ["LoadedLab", "load_lab", "targets"]

Err = Callable[[tuple[str | int, ...], str], ButtressError]
"""``err(location, message)``: the error for a location under ``experiments:``."""


@dataclass(frozen=True)
class LoadedLab:
    """A checked lab: the spec, its ``experiments:`` section, the file and the app directory."""

    spec: ReliabilitySpec
    experiments: ExperimentsSpec
    file: Path
    app_dir: Path


def load_lab(path: str | Path) -> LoadedLab:
    """Load ``path`` (a directory holding ``reliability.yaml``, or the file) and cross-check its
    ``experiments:`` section; every problem raises :class:`~buttress.errors.SpecError` or
    :class:`~buttress.lab.errors.LabError` naming the file."""
    p = Path(path)
    file = p / "reliability.yaml" if p.is_dir() else p
    if not file.exists():
        raise LabError(f"{path}: no such file or directory (expected a reliability.yaml)")
    spec = load_spec(file)
    exp = spec.experiments
    if exp is None:
        raise LabError(f"{file}: no 'experiments:' section, so there is no system to run")
    doc = spec.document
    assert doc is not None

    def err(loc: tuple[str | int, ...], message: str) -> ButtressError:
        return doc.error(("experiments", *loc), message)

    _check_system(exp, err)
    _check_plan(exp, err)
    slo_names = {s.name for s in spec.slos}
    for name in exp.hypotheses.slos:
        if name not in slo_names:
            raise err(("hypotheses", "slos", name), f"no SLO named {name!r} in slos:")
    return LoadedLab(spec, exp, file, file.parent.resolve())


def _check_system(exp: ExperimentsSpec, err: Err) -> None:
    services = exp.system
    for name, svc in services.items():
        for i, dep in enumerate(svc.depends_on):
            if dep not in services:
                raise err(("system", name, "depends_on", i), f"unknown service {dep!r}")
            if dep == name:
                raise err(("system", name, "depends_on", i), "a service cannot depend on itself")
    if exp.load.entry not in services:
        raise err(("load", "entry"), f"unknown service {exp.load.entry!r}")
    fr = exp.load.final_read
    if fr is not None and fr.service not in services:
        raise err(("load", "final_read", "service"), f"unknown service {fr.service!r}")
    if (
        any(r.order for r in exp.load.requests.values())
        and fr is None
        and (exp.hypotheses.nothing_lost)
    ):
        raise err(("load",), "requests place orders: add final_read: so they can be checked")


def _check_plan(exp: ExperimentsSpec, err: Err) -> None:
    services = exp.system
    reachable = targets(exp)
    seen: set[str] = set()
    for i, f in enumerate(exp.plan):
        if f.name in seen:
            raise err(("plan", i, "name"), f"two faults named {f.name!r}")
        seen.add(f.name)
        if f.kind == "burst":
            if f.target not in exp.load.requests:
                known = ", ".join(sorted(exp.load.requests))
                raise err(("plan", i, "target"), f"unknown request kind {f.target!r} ({known})")
        elif f.kind == "kill":
            instances = {n for s, v in services.items() for n in instance_names(s, v)}
            if f.target not in instances:
                raise err(
                    ("plan", i, "target"),
                    f"unknown instance {f.target!r} (known: {', '.join(sorted(instances))})",
                )
        elif f.target not in reachable:
            known = ", ".join(sorted(reachable)) or "none: no service has dependents"
            raise err(
                ("plan", i, "target"),
                f"{f.target!r} is not behind the fault proxy (known: {known})",
            )
        if f.at + f.duration > exp.load.duration:
            raise err(("plan", i, "duration"), "the fault ends after the run (load.duration)")


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
