"""Integrations: glue between Buttress policies and web frameworks, clients and servers.

Each module imports only what it integrates with, lazily where the dependency is optional.

* :mod:`buttress.integrations.shedding`: ASGI middleware for priority load shedding (no dependency).
"""

from __future__ import annotations

from .shedding import DEFAULT_HEADER, LoadSheddingMiddleware

__all__ = ["DEFAULT_HEADER", "LoadSheddingMiddleware"]
