"""Experiments in Chaos Toolkit's format, run by ``buttress chaos run``.

An experiment (YAML or JSON) has a ``title``, a ``description``, a ``steady-state-hypothesis``
(probes with tolerances, checked before and after the method), a ``method`` (actions and probes, in
order, some in the ``background``), ``rollbacks``, ``configuration`` and ``secrets`` (values, or
``{type: env, key: NAME[, default: ...]}``).  Providers: ``python`` (``module``, ``func``,
``arguments``), ``http`` (``url``, ``method``, ``headers``, ``arguments``, ``timeout``,
``expected_status``), ``process`` (``path``, ``arguments``, ``timeout``) and ``buttress`` (``func``
from :mod:`buttress.chaos.ctk`: the proxy, failpoints, SLO burn).

What Buttress adds to Chaos Toolkit's semantics:

* **rollbacks always run**: after success, after a failed or deviated run, after an abort and after
  Ctrl-C / SIGTERM (a second Ctrl-C while they run does not stop them); each is recorded;
* **continuous probes** (``continuous-probes:``, each with a ``tolerance`` and an ``interval``,
  default 1 s) run during the method; the first whose tolerance fails aborts the method (status
  ``aborted``) and the rollbacks run.  A declared SLO's burn rate (``func: slo_burn_rate``:
  ``reliability.yaml``, the SLI store, the SLO, an alert window) with the tolerance
  ``{type: burn-rate, max: 2}`` stops the run when the budget burns faster than 2x (the live
  ``func: slo_burn`` probe samples a URL instead);
* **outputs** of earlier activities can be referenced in later arguments: ``${outputs.NAME}`` or
  ``${outputs.NAME.key.sub}`` (a string that is exactly one reference keeps the value's type);
  ``${KEY}`` refers to configuration and secrets, as in Chaos Toolkit;
* ``--dry-run`` walks the plan and writes the journal without calling any provider.

Tolerances: ``true``/``false``, an int (an HTTP or process status, or the value), a string, a list
(the value or status is in it), ``{type: range, range: [lo, hi], target?}``,
``{type: regex, pattern, target?}`` and ``{type: probe, ...}`` (a probe given the output as
``value``; met when it returns a truthy value; not met when it raises, the exception recorded as
``tolerance_exception``) and ``{type: burn-rate, max: X}`` (met while the output is a number
<= X: an SLO burn rate from ``slo_burn_rate``).  ``target`` is a dotted path into the output.

Statuses as in Chaos Toolkit: ``completed`` (the hypothesis held), ``failed`` (it did not, before or
after: ``deviated`` is true when it broke after the method), ``aborted`` (a continuous probe),
``interrupted`` (a signal).  A failed action does not fail the run by itself, as in Chaos Toolkit.
"""

from __future__ import annotations

from .load import load_experiment, load_experiment_text
from .model import Activity, Experiment, Loaded
from .runner import Runner, run_experiment
from .tolerance import tolerance_met

__all__ = [
    "Activity",
    "Experiment",
    "Loaded",
    "Runner",
    "load_experiment",
    "load_experiment_text",
    "run_experiment",
    "tolerance_met",
]
