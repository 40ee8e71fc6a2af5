"""Installed versions of Buttress and of the tools a journal names, read from package metadata.

Buttress's own version comes from :mod:`buttress.version`, the one place it is written.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from buttress.version import __version__

__all__ = ["buttress_version", "dist_version"]


@functools.cache
def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def buttress_version() -> str:
    """This package's version."""
    return __version__
