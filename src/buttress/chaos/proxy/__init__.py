"""The TCP/HTTP fault proxy (asyncio) and its toxiproxy-compatible control API.

See :mod:`buttress.chaos.proxy.toxics` for the fault catalogue, :mod:`.link` for how bytes move,
:mod:`.api` for the control API.  Standard library only.
"""

from __future__ import annotations

from .api import VERSION, ControlAPI, ProxyThread, serve_forever
from .link import SPLICE_AVAILABLE
from .server import Proxy, ProxyServer
from .toxics import TOXIC_TYPES, ApiError, Toxic, make_toxic

__all__ = [
    "SPLICE_AVAILABLE",
    "TOXIC_TYPES",
    "VERSION",
    "ApiError",
    "ControlAPI",
    "Proxy",
    "ProxyServer",
    "ProxyThread",
    "Toxic",
    "make_toxic",
    "serve_forever",
]
