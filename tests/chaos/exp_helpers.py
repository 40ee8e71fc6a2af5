"""Functions the test experiments call through the python provider (importable in subprocesses
too)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def touch(path: str, text: str = "x") -> str:
    Path(path).write_text(text)
    return text


def append(path: str, line: str) -> None:
    with Path(path).open("a") as fh:
        fh.write(line + "\n")


def exists(path: str) -> bool:
    return Path(path).exists()


def boom(message: str = "the action failed", value: Any = None) -> None:
    """Always raises (``value``: what a tolerance probe is given, ignored)."""
    raise RuntimeError(message)


def give(value: Any) -> Any:
    return value


def echo_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def nap(seconds: float, marker: str | None = None) -> None:
    if marker:
        Path(marker).write_text("started")
    time.sleep(seconds)


def positive(value: Any) -> bool:
    return bool(value) and value > 0


def uses_configuration(configuration: dict[str, Any]) -> Any:
    return configuration["greeting"]
