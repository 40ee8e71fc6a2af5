"""The lab's live status line: what a run is doing, while it does it."""

from __future__ import annotations

import math
import time
from typing import TextIO

__all__ = ["LiveProgress"]


class LiveProgress:
    """A live status line on ``stream``: redrawn in place on a terminal, one line every 5 s
    elsewhere."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self.stream = stream
        self.label = label
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = -math.inf

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write(f"\r\033[K{self.label} {text}")
            self.stream.flush()
        elif time.monotonic() - self._last >= 5.0:
            self._last = time.monotonic()
            self.stream.write(f"{self.label} {text}\n")
            self.stream.flush()

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(f"{self.label} {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
