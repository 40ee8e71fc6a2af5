"""``buttress lab PATH``: run a real system under load and faults, twice, and compare.

* :mod:`.spec`: the ``experiments:`` section of ``reliability.yaml`` (system, load, plan,
  hypotheses);
* :mod:`.supervisor`: starts the services and the fault proxy as processes, stops them all;
* :mod:`.driver`: the open-loop load driver and its history of orders;
* :mod:`.plan`: applies and removes the faults of the plan;
* :mod:`.load`: loads ``reliability.yaml`` and cross-checks the section against the rest;
* :mod:`.run`: one run and the whole lab (both runs, then the report);
* :mod:`.figures`: what a run measured, the hypotheses and the assessment;
* :mod:`.report`: the side-by-side table and the self-contained HTML report.

Importing this package needs only pydantic (the spec model); running the lab needs the
``http`` and ``slo`` extras (httpx, uvicorn, starlette, numpy).
"""
