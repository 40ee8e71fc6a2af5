"""``buttress lab``: two labs under one command.

* :mod:`buttress.lab.sim`: the *simulated* lab.  ``buttress lab`` runs a registered scenario
  (default ``retry-storm``; also ``slow-dependency`` and ``shared-breaker``) on simulated time and
  prints one row per strategy.
* :mod:`buttress.lab.system`: the *real-system* lab.  ``buttress lab PATH`` starts the services
  PATH/reliability.yaml describes as processes, runs a fault plan against them twice (policies on,
  then off) and compares.

Both share :class:`~buttress.lab.errors.LabError`.  This package imports neither lab: import
the simulator's names from :mod:`buttress.lab.sim` (``from buttress.lab.sim import RetryStorm``).
"""
