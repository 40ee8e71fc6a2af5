"""OpenSLO v1: read SLO, SLI, AlertPolicy, AlertCondition, Service and DataSource objects; write
them.

Mapping (OpenSLO -> Buttress):

- ``SLO.spec.objectives[i].target`` (or ``targetPercent``) -> ``objective`` (percent); an SLO with
  several objectives becomes one Buttress SLO per objective (``<name>-<displayName or i>``).
- ``ratioMetric`` good/bad/total ``metricSource.spec.query`` -> the ratio SLI's queries; ``raw``
  with ``rawType: failure`` -> ``error_ratio`` (``success`` -> ``1 - (query)``).  Queries should use
  the ``{{.window}}`` placeholder; a counter query without it is wrapped as
  ``rate((query)[{{.window}}:])``.
- ``timeWindow``: rolling ``duration`` -> ``window``; calendar ``1w``/``1M``/``1Q`` with
  ``timeZone`` -> a calendar window.
- ``budgetingMethod: Timeslices``/``RatioTimeslices`` with ``timeSliceWindow``/``timeSliceTarget``
  -> a window SLI.
- each ``AlertCondition`` (``kind: burnrate``, ``op: gt|gte``) -> a tier: ``threshold`` -> burn
  rate, ``lookbackWindow`` -> long window, severity; the short window is read from the annotation
  ``buttress.dev/short-window`` (default: 1/12 of the long window, the Workbook's ratio).
- Fields OpenSLO has no place for travel in ``metadata.annotations`` under ``buttress.dev/``.
"""

from __future__ import annotations

from .read import slos_from_openslo
from .write import slos_to_openslo

__all__ = ["slos_from_openslo", "slos_to_openslo"]
