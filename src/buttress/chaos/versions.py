"""Installed versions of Buttress and of the tools a journal names, read from package metadata.

Chaos modules ask here rather than importing ``buttress.__version__``: the root package imports
``buttress.chaos``, so reading the root from inside chaos would be an import cycle.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

__all__ = ["buttress_version", "dist_version"]


@functools.cache
def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def buttress_version() -> str:
    """This package's version (``0.0.0+unknown`` when run from a tree that is not installed)."""
    return dist_version("buttress") or "0.0.0+unknown"
