"""From ``state:`` in ``reliability.yaml`` (:class:`~buttress.spec.policies.StateSpec`) to a
:class:`~buttress.state.base.StateStore`.

.. code-block:: yaml

    state:                        # top level: the default for every pipeline
      store: redis
      url: redis://127.0.0.1:6379/0   # or a cluster node with cluster: true, or
                                      # sentinels: [10.0.0.1:26379, ...] and master: mymaster
      on_unavailable: local       # or fail_open / fail_closed, or per policy kind:
                                  #   {circuit_breaker: local, rate_limiter: fail_closed}
    policies:
      payments:
        state: {store: memory}    # a pipeline may choose its own
        circuit_breaker: {}

Keys are namespaced by ``service`` (default: the file's ``service:``, else ``default``), the
pipeline and the policy key (scope ``"<pipeline>/<key>"``), so two pipelines never share state by
accident and every replica of one service shares it on purpose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from buttress.clock import SYSTEM_CLOCK, Clock

from .base import StateStore
from .memory import MemoryState

if TYPE_CHECKING:
    # For the annotation only: buttress.spec builds pipelines on top of this package (it calls
    # build_state), so this package must not import it at run time.
    from buttress.spec.policies import StateSpec

__all__ = ["build_state"]


def build_state(
    spec: StateSpec | None, *, service: str | None, clock: Clock = SYSTEM_CLOCK
) -> StateStore:
    """The :class:`~buttress.state.base.StateStore` ``spec`` declares (memory when ``None``).

    Raises :class:`~buttress.errors.ConfigError` (a URL redis-py cannot parse) or
    :class:`~buttress.errors.MissingExtra` (redis-py not installed).
    """
    if spec is None or spec.store == "memory":
        return MemoryState()
    from .redis import RedisState

    modes = spec.on_unavailable
    return RedisState(
        spec.url,
        cluster=spec.cluster,
        sentinels=spec.sentinels,
        master=spec.master,
        service=spec.service or service or "default",
        prefix=spec.prefix,
        timeout=spec.timeout,
        retry_interval=spec.retry_interval,
        ttl=spec.ttl,
        on_unavailable=modes if isinstance(modes, str) else {str(k): v for k, v in modes.items()},
        local_share=spec.local_share,
        clock=clock,
    )
