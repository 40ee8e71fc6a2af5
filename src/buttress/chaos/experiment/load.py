"""Loading an experiment: validation with file, line and field, then the checks a schema cannot
express (references, tolerances, names)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from buttress.spec.source import Document, load_yaml, load_yaml_text
from buttress.spec.validation import validate

from .model import REFERENCE, Activity, Experiment, Loaded, Ref

__all__ = ["load_experiment", "load_experiment_text"]


_TOL_TYPES = ("range", "regex", "probe", "burn-rate")


def _check_tolerance(doc: Document, loc: tuple[str | int, ...], tol: Any) -> None:
    if tol is None or isinstance(tol, bool | int | float | str | list):
        return
    if not isinstance(tol, dict):
        raise doc.error(
            loc, f"a tolerance must be a bool, number, string, list or mapping, got {tol!r}"
        )
    kind = tol.get("type")
    if kind not in _TOL_TYPES:
        raise doc.error(
            (*loc, "type"),
            f"unknown tolerance type {kind!r}; expected one of: {', '.join(_TOL_TYPES)}",
        )
    if kind == "range":
        rng = tol.get("range")
        if not (
            isinstance(rng, list)
            and len(rng) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in rng)
            and rng[0] <= rng[1]
        ):
            raise doc.error(
                (*loc, "range"), "a range tolerance needs range: [low, high], low <= high"
            )
    if kind == "regex":
        pattern = tol.get("pattern")
        if not isinstance(pattern, str):
            raise doc.error((*loc, "pattern"), "a regex tolerance needs a pattern string")
        try:
            re.compile(pattern)
        except re.error as e:
            raise doc.error((*loc, "pattern"), f"not a valid regular expression: {e}") from None
    if kind == "probe":
        validate(Activity, doc, loc)
    if kind == "burn-rate":
        limit = tol.get("max")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 0:
            raise doc.error(
                (*loc, "max"), "a burn-rate tolerance needs max: a number >= 0 (e.g. 2)"
            )


def _semantic_checks(exp: Experiment, doc: Document) -> None:
    """What the models cannot see: references, tolerances, roles."""
    known: set[str] = set()
    declared: dict[str, Activity] = {}
    config_keys = set(exp.configuration) | {k for scope in exp.secrets.values() for k in scope}

    def check_refs(value: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(value, str):
            for m in REFERENCE.finditer(value):
                parts = m.group(1).split(".")
                if parts[0] == "outputs":
                    if len(parts) < 2 or parts[1] not in known:
                        raise doc.error(
                            loc,
                            f"${{{m.group(1)}}} refers to the output of {'.'.join(parts[1:2])!r}, "
                            "which is not an earlier activity",
                        )
                elif parts[0] not in config_keys:
                    raise doc.error(
                        loc, f"${{{m.group(1)}}}: no configuration or secret key {parts[0]!r}"
                    )
        elif isinstance(value, dict):
            for k, v in value.items():
                check_refs(v, (*loc, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                check_refs(v, (*loc, i))

    def visit(steps: list[Activity | Ref], base: tuple[str | int, ...], role: str) -> None:
        for i, step in enumerate(steps):
            loc = (*base, i)
            if isinstance(step, Ref):
                if step.ref not in declared:
                    raise doc.error((*loc, "ref"), f"no earlier activity named {step.ref!r}")
                act = declared[step.ref]
            else:
                act = step
                declared.setdefault(act.name, act)
                check_refs(act.provider.model_dump(), (*loc, "provider"))
                _check_tolerance(doc, (*loc, "tolerance"), act.tolerance)
            if role == "hypothesis" and act.type != "probe":
                raise doc.error((*loc, "type"), "the steady-state hypothesis holds probes only")
            if role == "hypothesis" and act.tolerance is None:
                raise doc.error(loc, f"probe {act.name!r} in the hypothesis needs a tolerance")
            if role == "rollbacks" and act.type != "action":
                raise doc.error((*loc, "type"), "rollbacks are actions")
            known.add(act.name)

    ssh = exp.steady_state_hypothesis
    if ssh is not None:
        visit(ssh.probes, ("steady-state-hypothesis", "probes"), "hypothesis")
    for i, probe in enumerate(exp.continuous_probes):
        loc: tuple[str | int, ...] = ("continuous-probes", i)
        if probe.type != "probe":
            raise doc.error((*loc, "type"), "continuous probes are probes")
        if probe.tolerance is None:
            raise doc.error(loc, f"continuous probe {probe.name!r} needs a tolerance")
        _check_tolerance(doc, (*loc, "tolerance"), probe.tolerance)
        check_refs(probe.provider.model_dump(), (*loc, "provider"))
    visit(exp.method, ("method",), "method")
    visit(exp.rollbacks, ("rollbacks",), "rollbacks")
    for key, value in exp.configuration.items():
        if isinstance(value, dict) and value.get("type") == "env" and "key" not in value:
            raise doc.error(("configuration", key), "an env value needs key: NAME")


def _finish(doc: Document) -> Loaded:
    doc.refuse_empty("an experiment: a mapping with title, method, ...")
    if not isinstance(doc.data, dict):
        raise doc.error((), "an experiment must be a mapping with title, method, ...")
    exp = validate(Experiment, doc)
    _semantic_checks(exp, doc)
    return Loaded(exp, doc.data, doc)


def load_experiment(path: str | Path) -> Loaded:
    """Load and check an experiment file (YAML or JSON); raises
    :class:`~buttress.errors.SpecError` with the file, line, column and field of the first
    problem."""
    return _finish(load_yaml(path))


def load_experiment_text(text: str, file: str = "<experiment>") -> Loaded:
    return _finish(load_yaml_text(text, file))
