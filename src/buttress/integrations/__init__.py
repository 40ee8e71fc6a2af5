"""Integrations: glue between Buttress policies and web frameworks, clients and servers.

Each module imports only what it integrates with, lazily where the dependency is optional.

* :mod:`buttress.integrations.shedding`: ASGI middleware for priority load shedding (no dependency).
* :mod:`buttress.integrations.http`: httpx transports over an endpoint pool, with retries and the
  deadline header (``buttress[http]``; import the module itself).
* :mod:`buttress.integrations.asgi`: ASGI resilience middleware (deadline, policies, SLI recording).
"""

from __future__ import annotations

from .shedding import DEFAULT_HEADER, LoadSheddingMiddleware

__all__ = ["DEFAULT_HEADER", "LoadSheddingMiddleware"]
