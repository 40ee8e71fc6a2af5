"""The failpoint spec language: ``[pct%][count*]action[(args)]`` terms joined by ``->``, parsed
into :class:`Term` values with errors that point at the position; and the exception names
``raise(...)`` may use (see :mod:`buttress.chaos.failpoints` for the runtime)."""

from __future__ import annotations

import builtins
import importlib
import math
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from buttress.errors import ConfigError

__all__ = [
    "ACTIONS",
    "ENV_IMPORTS",
    "FailpointSyntaxError",
    "Term",
    "ENV_ALLOW_EXIT",
    "allow_exit_exceptions",
    "allow_imports",
    "parse",
    "resolve_exception",
]

ENV_IMPORTS = "BUTTRESS_FAILPOINTS_IMPORTS"
"""Comma-separated modules ``raise(module.Error)`` may import (see :func:`allow_imports`)."""

# Modules (and their submodules) that raise(module.Error) may import; empty: import nothing.
_IMPORTS_ALLOWED: tuple[str, ...] = ()

ENV_ALLOW_EXIT = "BUTTRESS_FAILPOINTS_ALLOW_EXIT"
"""Set to ``1`` (or true/yes/on) to let ``raise(SystemExit)`` and ``raise(KeyboardInterrupt)``
through (see :func:`allow_exit_exceptions`)."""

# The exceptions that end a process rather than fail a call: refused unless allowed.
_EXIT_EXCEPTIONS: tuple[type[BaseException], ...] = (SystemExit, KeyboardInterrupt)
_EXIT_ALLOWED = False


def env_flag(value: str | None) -> bool:
    """An environment flag: ``1``, ``true``, ``yes`` or ``on`` (any case) is set."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def allow_exit_exceptions(allowed: bool) -> bool:
    """Let ``raise(SystemExit)`` and ``raise(KeyboardInterrupt)`` (and their subclasses) be
    configured process-wide; returns the previous setting.

    Off by default: a spec may arrive from outside (the environment, the HTTP control), and these
    two end the process instead of failing one call.  At import the setting is read from
    ``$BUTTRESS_FAILPOINTS_ALLOW_EXIT``; ``configure(..., allow_exit=True)`` allows them for one
    failpoint only.
    """
    global _EXIT_ALLOWED
    previous, _EXIT_ALLOWED = _EXIT_ALLOWED, bool(allowed)
    return previous


def check_raisable(
    cls: type[BaseException], args: tuple[str, ...], *, allow_exit: bool | None = None
) -> None:
    """``ValueError`` unless ``cls`` can be raised as a failpoint raises it: built from one
    message, and not an exit exception unless allowed."""
    allowed = _EXIT_ALLOWED if allow_exit is None else allow_exit
    if issubclass(cls, _EXIT_EXCEPTIONS) and not allowed:
        raise ValueError(
            f"{cls.__name__} ends the process; allow it with ${ENV_ALLOW_EXIT}=1 or "
            f"configure(..., allow_exit=True)"
        )
    try:
        made = cls(*args)
    except Exception as e:
        raise ValueError(
            f"{cls.__name__} cannot be built from one message ({type(e).__name__}: {e}); "
            f"raise takes exception classes such as ConnectionError or TimeoutError"
        ) from None
    if not isinstance(made, cls):
        raise ValueError(f"{cls.__name__}(message) does not build a {cls.__name__}")


ACTIONS = ("off", "return", "raise", "sleep", "print", "pause")


class FailpointSyntaxError(ConfigError):
    """A failpoint spec could not be read; ``position`` is the 0-based offset in ``spec``."""

    def __init__(self, name: str, spec: str, position: int, reason: str) -> None:
        self.name = name
        self.spec = spec
        self.position = position
        self.detail = reason
        pointer = f"\n    {spec}\n    {' ' * position}^"
        super().__init__(
            f"failpoint {name!r}", spec, f"at position {position + 1}: {reason}{pointer}"
        )


@dataclass(slots=True)
class Term:
    """One term of a spec: fires with probability ``pct``/100 at most ``count`` times."""

    pct: float
    count: int | None
    action: str
    args: tuple[Any, ...]
    text: str
    remaining: int | None = None

    def __post_init__(self) -> None:
        self.remaining = self.count


def _parse_value(raw: str) -> Any:
    s = raw.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "none"):
        return None
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def _unquoted(spec: str, start: int, end: int, stops: str) -> tuple[list[int], bool]:
    """The positions in spec[start:end] of the characters of ``stops`` that stand outside single
    or double quotes, and whether a quote is still open at ``end``."""
    found: list[int] = []
    quote = ""
    for i in range(start, end):
        c = spec[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in stops:
            found.append(i)
    return found, bool(quote)


def _split_args(name: str, spec: str, start: int, end: int) -> list[tuple[str, int]]:
    """Split spec[start:end] on commas outside quotes; (text, position) pairs."""
    commas, open_quote = _unquoted(spec, start, end, ",")
    if open_quote:
        raise FailpointSyntaxError(name, spec, end, "unterminated quoted string")
    out: list[tuple[str, int]] = []
    cur_start = start
    for i in commas:
        out.append((spec[cur_start:i], cur_start))
        cur_start = i + 1
    tail = spec[cur_start:end]
    if tail.strip() or out:
        out.append((tail, cur_start))
    return out


def _number(spec: str, i: int) -> tuple[str, int]:
    j = i
    while j < len(spec) and (spec[j].isdigit() or spec[j] == "."):
        j += 1
    return spec[i:j], j


def parse(spec: str, name: str = "<failpoint>", *, allow_exit: bool | None = None) -> list[Term]:
    """Parse a spec into terms; raise :class:`FailpointSyntaxError` naming the position.

    ``allow_exit``: may ``raise(...)`` name ``SystemExit`` or ``KeyboardInterrupt``? (None: the
    process-wide setting, see :func:`allow_exit_exceptions`)."""
    if not isinstance(spec, str):
        raise ConfigError(f"failpoint {name!r}", spec, "a spec must be a string")
    terms: list[Term] = []
    n = len(spec)
    i = 0
    while True:
        while i < n and spec[i] == " ":
            i += 1
        if i >= n:
            raise FailpointSyntaxError(
                name, spec, i, "expected a term such as 'return(1)' or 'off'"
            )
        term_start = i
        pct = 100.0
        count: int | None = None
        num, j = _number(spec, i)
        if num and j < n and spec[j] == "%":
            try:
                pct = float(num)
            except ValueError:
                raise FailpointSyntaxError(name, spec, i, f"{num!r} is not a number") from None
            if not 0 <= pct <= 100:
                raise FailpointSyntaxError(
                    name, spec, i, f"a percentage must be in [0, 100], got {num}"
                )
            i = j + 1
            num, j = _number(spec, i)
        if num and j < n and spec[j] == "*":
            if not num.isdigit() or int(num) < 1:
                raise FailpointSyntaxError(
                    name, spec, i, f"a count must be an integer >= 1, got {num}"
                )
            count = int(num)
            i = j + 1
        elif num:
            raise FailpointSyntaxError(
                name, spec, j, "expected '%' after a percentage or '*' after a count"
            )
        j = i
        while j < n and (spec[j].isalpha() or spec[j] == "_"):
            j += 1
        action = spec[i:j]
        if action not in ACTIONS:
            raise FailpointSyntaxError(
                name,
                spec,
                i,
                f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}"
                if action
                else f"expected an action ({', '.join(ACTIONS)})",
            )
        args: list[tuple[str, int]] = []
        i = j
        if i < n and spec[i] == "(":
            close = _find_close(name, spec, i)
            args = _split_args(name, spec, i + 1, close)
            i = close + 1
        term = _make_term(name, spec, pct, count, action, args, spec[term_start:i], allow_exit)
        terms.append(term)
        while i < n and spec[i] == " ":
            i += 1
        if i >= n:
            return terms
        if spec.startswith("->", i):
            i += 2
            continue
        raise FailpointSyntaxError(name, spec, i, "expected '->' between terms or the end")


def _find_close(name: str, spec: str, open_at: int) -> int:
    closing, _ = _unquoted(spec, open_at + 1, len(spec), ")")
    if not closing:
        raise FailpointSyntaxError(name, spec, open_at, "'(' is never closed")
    return closing[0]


def allow_imports(modules: Iterable[str]) -> tuple[str, ...]:
    """Let ``raise(module.Error)`` import ``modules`` (each also allows its submodules).

    By default a failpoint never imports anything: ``raise(Name)`` takes a built-in exception and
    ``raise(pkg.mod.Error)`` one from a module that is *already imported* (in ``sys.modules``), so a
    spec (which may arrive over HTTP) cannot run a module's import-time code.  Replaces the list
    (an empty one restores the default) and returns the previous list.  At import the list is read
    from ``$BUTTRESS_FAILPOINTS_IMPORTS`` (comma-separated).
    """
    global _IMPORTS_ALLOWED
    cleaned = tuple(m.strip() for m in modules if m.strip())
    for m in cleaned:
        if not all(part.isidentifier() for part in m.split(".")):
            raise ConfigError("modules", m, "expected a dotted module name such as 'myapp.errors'")
    previous, _IMPORTS_ALLOWED = _IMPORTS_ALLOWED, cleaned
    return previous


def _import_allowed(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _IMPORTS_ALLOWED)


def resolve_exception(name: str) -> type[BaseException]:
    """``ConnectionError`` or ``package.module.Error`` to the class; ``ValueError`` if it is none.

    A dotted name is looked up in ``sys.modules``; a module that is not imported yet is imported
    only when :func:`allow_imports` (or ``$BUTTRESS_FAILPOINTS_IMPORTS``) lists it.
    """
    obj: Any
    if "." not in name:
        obj = getattr(builtins, name, None)
    else:
        module, _, attr = name.rpartition(".")
        mod = sys.modules.get(module)
        if mod is None:
            if not _import_allowed(module):
                raise ValueError(
                    f"module {module!r} is not imported, and failpoints import only the modules "
                    f"allowed by ${ENV_IMPORTS} or buttress.chaos.failpoints.allow_imports()"
                )
            try:
                mod = importlib.import_module(module)
            except Exception as e:
                raise ValueError(f"cannot import {module!r}: {e}") from None
        obj = getattr(mod, attr, None)
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise ValueError(f"{name!r} is not an exception class (built-in name or dotted path)")
    return obj


# The longest sleep both time.sleep and asyncio accept on every platform (threading.TIMEOUT_MAX
# is the smallest of the limits), in milliseconds.
_MAX_SLEEP_MS = min(threading.TIMEOUT_MAX, 1e9) * 1000.0


def _make_term(  # noqa: PLR0917 - internal
    name: str,
    spec: str,
    pct: float,
    count: int | None,
    action: str,
    args: list[tuple[str, int]],
    text: str,
    allow_exit: bool | None = None,
) -> Term:
    values: list[Any] = []
    if action == "raise":
        if not args or not args[0][0].strip():
            raise FailpointSyntaxError(
                name, spec, spec.find("(", spec.find(text)) + 1, "raise needs an exception name"
            )
        if len(args) > 2:
            raise FailpointSyntaxError(name, spec, args[2][1], "raise takes a name and a message")
        ename, epos = args[0][0].strip(), args[0][1]
        # One message always: the one given, else one naming the failpoint.
        message = str(_parse_value(args[1][0])) if len(args) == 2 else f"failpoint {name}"
        try:
            cls = resolve_exception(ename)
            check_raisable(cls, (message,), allow_exit=allow_exit)
        except ValueError as e:
            raise FailpointSyntaxError(name, spec, epos, str(e)) from None
        values += [cls, message]
    elif action == "sleep":
        if len(args) != 1:
            where = args[1][1] if len(args) > 1 else spec.find("sleep", spec.find(text)) + 5
            raise FailpointSyntaxError(name, spec, where, "sleep takes one argument: milliseconds")
        ms = _parse_value(args[0][0])
        if (
            isinstance(ms, bool)
            or not isinstance(ms, int | float)
            or not math.isfinite(ms)
            or not 0 <= ms <= _MAX_SLEEP_MS
        ):
            raise FailpointSyntaxError(
                name,
                spec,
                args[0][1],
                f"sleep needs a finite number of milliseconds from 0 to {_MAX_SLEEP_MS:.3g}, "
                f"got {args[0][0].strip()!r}",
            )
        values.append(float(ms) / 1000.0)
    elif action == "return":
        if len(args) > 1:
            raise FailpointSyntaxError(name, spec, args[1][1], "return takes at most one value")
        values.append(_parse_value(args[0][0]) if args else True)
    elif action == "print":
        values.append(", ".join(str(_parse_value(a)) for a, _ in args) or f"failpoint {name}")
    elif args:  # off, pause
        raise FailpointSyntaxError(name, spec, args[0][1], f"{action} takes no arguments")
    return Term(pct, count, action, tuple(values), text)
