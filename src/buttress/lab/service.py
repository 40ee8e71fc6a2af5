"""The service side of ``buttress lab PATH``: what the lab tells each process it starts.

The lab starts every instance of the system's services with these variables (set in
:mod:`buttress.lab.system.run` from the names below, so the two sides cannot drift apart):

==========================  ======================================================================
``BUTTRESS_LAB_SPEC``       the reliability.yaml the service reads its policies and SLOs from
``BUTTRESS_LAB_POLICIES``   the run: ``on`` (Buttress's policies), ``off`` (plain calls) or
                            ``typical`` (what a team writes with the popular libraries)
``BUTTRESS_LAB_UPSTREAMS``  JSON ``{service: [base URL of each instance, through the fault proxy]}``
``BUTTRESS_LAB_STORE``      the SQLite store SLIs and policy states go to
``BUTTRESS_LAB_DATA``       the instance's own data directory
``BUTTRESS_LAB_INSTANCE``   the instance's name (``payments-1``, ...)
``BUTTRESS_LAB_CONTROL``    the instance's fault control file (crash loop, leak)
``BUTTRESS_LAB_MODE_STATE`` the degraded-mode file remediation switches (runs with ``healing:``)
==========================  ======================================================================

A service reads them with :meth:`LabService.from_env`; an example's own settings subclass it.
Started by hand (no lab), a service gets defaults next to its code: ``reliability.yaml`` and a
``.data`` directory in the example's folder, the ``on`` run, no upstreams.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from buttress.spec.document import ReliabilitySpec

__all__ = [
    "CONTROL",
    "DATA",
    "INSTANCE",
    "MODE_STATE",
    "POLICIES",
    "SPEC",
    "STORE",
    "UPSTREAMS",
    "LabService",
]

SPEC = "BUTTRESS_LAB_SPEC"
POLICIES = "BUTTRESS_LAB_POLICIES"
UPSTREAMS = "BUTTRESS_LAB_UPSTREAMS"
STORE = "BUTTRESS_LAB_STORE"
DATA = "BUTTRESS_LAB_DATA"
INSTANCE = "BUTTRESS_LAB_INSTANCE"
CONTROL = "BUTTRESS_LAB_CONTROL"
MODE_STATE = "BUTTRESS_LAB_MODE_STATE"

S = TypeVar("S", bound="LabService")


@dataclass(frozen=True, kw_only=True)
class LabService:
    """One instance's view of the lab run it is part of (see the module's docs)."""

    spec_path: Path
    mode: str
    upstreams: dict[str, list[str]]
    store: str | None
    data: Path
    instance: str
    mode_file: str | None = None
    control: str | None = None

    @classmethod
    def from_env(
        cls: type[S],
        service: str,
        *,
        home: Path,
        modes: Sequence[str] = ("on", "off"),
        refused: str = "",
        data: Path | None = None,
        env: Mapping[str, str] = os.environ,
        **extra: Any,
    ) -> S:
        """The settings of an instance of ``service`` from ``env``.

        :param home: the example's folder (defaults: ``home/reliability.yaml``,
            ``home/.data``).
        :param modes: the runs this system supports; another stops the service with a message
            naming the variable, followed by ``refused`` in parentheses when given.
        :param data: the data directory when the lab gives none (default ``home/.data``).
        :param extra: further fields of a subclass.

        A bad value stops the process with a one-line message (``SystemExit``), which the lab
        shows with the service's last lines.
        """
        mode = env.get(POLICIES, "on").lower()
        if mode not in modes:
            why = f" ({refused})" if refused else ""
            raise SystemExit(f"{POLICIES} must be one of {', '.join(modes)}, not {mode!r}{why}")
        try:
            upstreams = json.loads(env.get(UPSTREAMS, "{}"))
        except json.JSONDecodeError as e:
            raise SystemExit(f"{UPSTREAMS} is not JSON: {e.msg}") from None
        if not isinstance(upstreams, dict):
            raise SystemExit(f"{UPSTREAMS} must be a JSON object of lists of URLs")
        folder = Path(env.get(DATA, data if data is not None else home / ".data"))
        folder.mkdir(parents=True, exist_ok=True)
        return cls(
            spec_path=Path(env.get(SPEC, home / "reliability.yaml")),
            mode=mode,
            upstreams={str(k): [str(u) for u in v] for k, v in upstreams.items()},
            store=env.get(STORE) or None,
            data=folder,
            instance=env.get(INSTANCE, service),
            mode_file=env.get(MODE_STATE) or None,
            control=env.get(CONTROL) or None,
            **extra,
        )

    @property
    def policies(self) -> bool:
        """Buttress's policies are on (the ``on`` run)."""
        return self.mode == "on"

    @cached_property
    def spec(self) -> ReliabilitySpec:
        """The run's reliability.yaml, loaded once."""
        from buttress.spec import load_spec

        return load_spec(self.spec_path)

    def upstream(self, service: str) -> list[str]:
        """The base URLs of ``service``'s instances; none stops the service with a message."""
        urls = self.upstreams.get(service)
        if not urls:
            raise SystemExit(f"no upstream for {service!r} in {UPSTREAMS}")
        return urls

    def url(self, service: str) -> str:
        """The base URL of ``service``'s first (or only) instance."""
        return self.upstream(service)[0]
