"""What the lab reads back from the services after the load: the entry service's final read
(every order it holds, and those still pending), the effects each dependency applied, and the
attempts the entry service made per dependency.  Each is a ``GET`` to a service's first instance,
at ``ports[instance]``, as the lab file's ``load:`` section names it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from buttress.chaos.checker import History

from .load import LoadedLab

__all__ = ["read_attempts", "read_effects", "read_final"]


def _get(port: int, path: str) -> Any:
    with httpx.Client(timeout=10.0) as c:
        r = c.get(f"http://127.0.0.1:{port}{path}")
        r.raise_for_status()
        return r.json()


def read_final(
    lab: LoadedLab, ports: Mapping[str, int], instances: Mapping[str, list[str]], history: History
) -> set[str]:
    """Hand the final read's answer to ``history``; the ids still pending, where the service
    tells them (none otherwise, and without a final read)."""
    fr = lab.experiments.load.final_read
    if fr is None:
        return set()
    answer = _get(ports[instances[fr.service][0]], fr.path)
    history.final_read(answer[fr.field])
    if fr.pending_field is None:
        return set()
    return {str(i) for i in answer.get(fr.pending_field) or []}


def read_effects(
    lab: LoadedLab, ports: Mapping[str, int], instances: Mapping[str, list[str]]
) -> dict[str, dict[str, int]]:
    """``{effect: {id: times applied}}`` for each effect the lab file names."""
    out: dict[str, dict[str, int]] = {}
    for effect in lab.experiments.load.effects:
        answer = _get(ports[instances[effect.service][0]], effect.path)
        out[effect.name] = {str(k): int(v) for k, v in answer[effect.field].items()}
    return out


def read_attempts(
    lab: LoadedLab,
    ports: Mapping[str, int],
    instances: Mapping[str, list[str]],
    log: Callable[[str], None],
) -> dict[str, dict[int, int]] | None:
    """``{dependency: {second: attempts}}`` from the entry service; ``None`` without an attempts
    read, and (with a message) when the service cannot answer."""
    ar = lab.experiments.load.attempts_read
    if ar is None:
        return None
    try:
        answer = _get(ports[instances[ar.service][0]], ar.path)
    except httpx.HTTPError as e:
        # An entry service still jammed by a fault (no timeouts: the off run after a hang)
        # cannot tell its attempts: the run goes on without the load figures.
        log(f"attempts not read from {ar.service}: {e!r}")
        return None
    return {dep: {int(t): int(n) for t, n in per.items()} for dep, per in answer.items()}
