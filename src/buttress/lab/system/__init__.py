"""``buttress lab PATH``: run a real system under load and faults, twice, and compare.

* :mod:`.spec`: the ``experiments:`` section of ``reliability.yaml`` (system, load, plan,
  hypotheses);
* :mod:`.supervisor`: starts the services and the fault proxy as processes, stops them all;
* :mod:`.driver`: the open-loop load driver and its history of orders;
* :mod:`.plan`: applies and removes the faults of the plan;
* :mod:`.run`: one run and the whole lab (assessment, both runs, hypotheses);
* :mod:`.report`: the side-by-side table and the self-contained HTML report.

Importing this package needs only pydantic (the spec model); running the lab needs the
``http`` and ``slo`` extras (httpx, uvicorn, starlette, numpy).
"""

from __future__ import annotations

# The spec package first: its document model imports .spec below, which needs spec.types.
import buttress.spec  # noqa: F401

from .spec import (
    ExperimentsSpec,
    FaultSpec,
    HypothesesSpec,
    LoadSpec,
    RequestSpec,
    ServiceSpec,
    SLOExpectation,
    instance_names,
)

__all__ = [
    "ExperimentsSpec",
    "FaultSpec",
    "HypothesesSpec",
    "LoadSpec",
    "RequestSpec",
    "SLOExpectation",
    "ServiceSpec",
    "instance_names",
]
