"""The lab's one error type, shared by the simulator (:mod:`buttress.lab.sim`) and the real-system
lab (:mod:`buttress.lab.system`)."""

from __future__ import annotations

from buttress.errors import ButtressError

__all__ = ["LabError"]


class LabError(ButtressError):
    """A lab run was asked for something that does not exist or cannot run."""
