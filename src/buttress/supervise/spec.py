"""The ``supervision:`` section of ``reliability.yaml``: a supervision tree, declared.

.. code-block:: yaml

    supervision:
      name: shop
      strategy: rest_for_one        # one_for_one | one_for_all | rest_for_one
      intensity: 5                  # restarts allowed ...
      period: 30s                   # ... within this window, then escalate
      children:
        - name: db
          command: [python, db.py]
          ready: {tcp: 5433}
        - name: api
          command: [python, api.py]
          depends_on: [db]
          ready: {notify: true}     # READY=1 on NOTIFY_SOCKET (sd_notify)
          watchdog: 2s              # WATCHDOG=1 at least every 2 s
          grace: 10s
        - name: workers             # a nested supervisor
          strategy: one_for_one
          children:
            - {name: mailer, command: [python, mailer.py], restart: transient}

Every child takes the options of :class:`~buttress.supervise.options.ChildOptions` (``restart``,
``backoff_initial``, ``backoff_factor``, ``backoff_cap``, ``reset_after``, ``ready_timeout``,
``grace``, ``watchdog``); a child with ``children:`` is a supervisor and also takes ``strategy``,
``intensity`` and ``period``.  Cycles in ``depends_on``, names that are not siblings, duplicate
names and options out of bounds are refused with the file, line, column and field.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from buttress.errors import ConfigError
from buttress.spec.options import spec_model
from buttress.spec.sections import register_section
from buttress.spec.types import Duration
from buttress.spec.validation import located

from .core import CycleError, start_order
from .options import STRATEGIES, ChildOptions, SupervisorOptions
from .process import ProcessChild
from .ready import HealthReady, NotifyReady, Readiness, TcpReady
from .supervisor import Supervisor

__all__ = [
    "ChildSpec",
    "ReadySpec",
    "SupervisionSpec",
    "build_supervisor",
    "missing_programs",
    "walk",
]


class ReadySpec(BaseModel):
    """When a child is ready: exactly one of ``notify``, ``tcp``, ``http``."""

    model_config = ConfigDict(extra="forbid")

    notify: bool = Field(False, description="READY=1 on NOTIFY_SOCKET (systemd's Type=notify).")
    tcp: int | None = Field(None, ge=1, le=65535, description="A port that accepts connections.")
    host: str = Field("127.0.0.1", description="The host of `tcp`.")
    http: str | None = Field(None, description="A health URL answering 2xx (/health/ready).")

    @model_validator(mode="after")
    def _one(self) -> ReadySpec:
        given = [k for k in ("notify", "tcp", "http") if getattr(self, k)]
        if len(given) != 1:
            raise located((), "give exactly one of notify: true, tcp: PORT or http: URL")
        if self.http is not None:
            try:
                HealthReady(self.http)
            except ConfigError as e:
                raise located(("http",), e.reason) from None
        return self

    def readiness(self) -> Readiness:
        if self.notify:
            return NotifyReady()
        if self.tcp is not None:
            return TcpReady(self.tcp, self.host)
        assert self.http is not None
        return HealthReady(self.http)


_ChildBase = spec_model(ChildOptions, "ChildOptionsSpec")
_SupervisorBase = spec_model(SupervisorOptions, "SupervisorOptionsSpec")

_Intensity = Annotated[int, Strict(), Field(gt=0)]


def _check_children(children: list[ChildSpec], where: tuple[str | int, ...]) -> None:
    """Unique names, siblings in ``depends_on``, no cycle: :func:`located` errors."""
    seen: dict[str, int] = {}
    for i, c in enumerate(children):
        if c.name in seen:
            raise located((*where, i, "name"), f"duplicate child name {c.name!r}")
        seen[c.name] = i
    for i, c in enumerate(children):
        for j, dep in enumerate(c.depends_on):
            if dep not in seen:
                known = ", ".join(sorted(seen))
                raise located(
                    (*where, i, "depends_on", j), f"unknown child {dep!r} (siblings: {known})"
                )
    try:
        start_order([c.name for c in children], {c.name: c.depends_on for c in children})
    except CycleError as e:
        first = seen[e.cycle[0]]
        raise located((*where, first, "depends_on"), str(e)) from None


class ChildSpec(_ChildBase):  # type: ignore[misc,valid-type]
    """One child: a process (``command:``) or a nested supervisor (``children:``)."""

    name: str = Field(min_length=1, description="The child's name among its siblings.")
    command: list[str] | None = Field(None, min_length=1, description="Program and arguments.")
    ready: ReadySpec | None = Field(None, description="When it is ready (default: once started).")
    liveness: ReadySpec | None = Field(
        None, description="A tcp or http check; failing for liveness_timeout, the child is killed."
    )
    depends_on: list[str] = Field(
        default_factory=list, description="Siblings that must be ready before it starts."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment added.")
    cwd: str | None = Field(None, description="Working directory (relative to the file).")
    strategy: Literal[STRATEGIES] | None = Field(None, description="A nested supervisor's.")  # type: ignore[valid-type]
    intensity: _Intensity | None = Field(None, description="A nested supervisor's.")
    period: Duration | None = Field(None, gt=0, description="A nested supervisor's.")
    children: list[ChildSpec] | None = Field(None, min_length=1, description="Its children.")

    @model_validator(mode="after")
    def _shape(self) -> ChildSpec:
        if (self.command is None) == (self.children is None):
            raise located((), f"child {self.name!r}: give exactly one of command or children")
        if self.liveness is not None and self.liveness.notify:
            raise located(("liveness", "notify"), "liveness is a tcp or http check")
        if self.children is None:
            for key in ("strategy", "intensity", "period"):
                if getattr(self, key) is not None:
                    raise located((key,), f"only a supervisor (a child with children:) has {key}")
        else:
            for key in ("ready", "liveness"):
                if getattr(self, key) is not None:
                    raise located((key,), f"a supervisor has no {key} check of its own")
            _check_children(self.children, ("children",))
        return self

    def supervisor_options(self) -> dict[str, Any]:
        given = {k: getattr(self, k) for k in ("strategy", "intensity", "period")}
        return {k: v for k, v in given.items() if v is not None}


class SupervisionSpec(_SupervisorBase):  # type: ignore[misc,valid-type]
    """The ``supervision:`` section: the top supervisor."""

    name: str = Field("supervisor", min_length=1, description="The top supervisor's name.")
    children: list[ChildSpec] = Field(min_length=1, description="What it supervises.")

    @model_validator(mode="after")
    def _tree(self) -> SupervisionSpec:
        _check_children(self.children, ("children",))
        return self


def walk(
    children: list[ChildSpec], path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], ChildSpec]]:
    """Every child of the tree, depth first, with the names of the supervisors above it."""
    out: list[tuple[tuple[str, ...], ChildSpec]] = []
    for c in children:
        out.append((path, c))
        if c.children is not None:
            out.extend(walk(c.children, (*path, c.name)))
    return out


def missing_programs(spec: Any, base_dir: str | Path) -> list[tuple[tuple[str | int, ...], str]]:
    """The commands whose program cannot be found here (on ``PATH``, or relative to the child's
    working directory), each with its location in the file."""
    section = getattr(spec, "supervision", spec)
    base = Path(base_dir)
    out: list[tuple[tuple[str | int, ...], str]] = []

    def visit(children: list[ChildSpec], where: tuple[str | int, ...]) -> None:
        for i, c in enumerate(children):
            if c.children is not None:
                visit(c.children, (*where, i, "children"))
                continue
            assert c.command is not None
            program = c.command[0]
            cwd = base / c.cwd if c.cwd else base
            found = (cwd / program).is_file() if "/" in program else shutil.which(program)
            if not found:
                out.append(((*where, i, "command", 0), program))

    visit(section.children, ("supervision", "children"))
    return out


def build_supervisor(
    spec: Any, *, base_dir: str | Path | None = None, on_change: Callable[[], None] | None = None
) -> Supervisor:
    """The :class:`Supervisor` a :class:`SupervisionSpec` (or a whole ``ReliabilitySpec``)
    declares; relative ``cwd`` values are taken from ``base_dir`` (default: the directory of the
    file the spec came from, else the current one)."""
    section = getattr(spec, "supervision", spec)
    if not isinstance(section, SupervisionSpec):
        raise ConfigError("spec", type(spec).__name__, "has no supervision: section")
    if base_dir is None:
        doc = getattr(spec, "document", None)
        file = getattr(doc, "file", None)
        base_dir = Path(file).parent if file and Path(file).exists() else Path.cwd()
    base = Path(base_dir)

    def build(c: ChildSpec) -> Any:
        options = c.to_options().as_kwargs()
        if c.children is not None:
            return Supervisor(
                c.name,
                [build(x) for x in c.children],
                child_options=ChildOptions(**options),
                depends_on=c.depends_on,
                on_change=on_change,
                **c.supervisor_options(),
            )
        assert c.command is not None
        cwd = str(base / c.cwd) if c.cwd is not None else str(base)
        ready = c.ready.readiness() if c.ready is not None else None
        live = c.liveness.readiness() if c.liveness is not None else None
        assert not isinstance(live, NotifyReady)
        return ProcessChild(
            c.name,
            c.command,
            ready=ready,
            liveness=live,
            depends_on=c.depends_on,
            env=c.env,
            cwd=cwd,
            **options,
        )

    top = section.to_options().as_kwargs()
    return Supervisor(
        section.name, [build(c) for c in section.children], on_change=on_change, **top
    )


register_section(
    "supervision",
    SupervisionSpec,
    description="A supervision tree of processes: restarts, readiness, watchdogs (see"
    " docs/supervise.md).",
)
