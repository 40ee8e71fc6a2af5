"""Failpoints: named points in code that do nothing until configured.

Put ``buttress.failpoint("payments.charge")`` (or ``await buttress.failpoint_async(...)``) where a
fault should be able to strike, then switch it on at run time with :func:`configure`, over HTTP with
:func:`serve_control`, or before start-up through the environment::

    BUTTRESS_FAILPOINTS='payments.charge=30%3*raise(ConnectionError)->sleep(200);db.write=return(0)'

**Cost when off**: one module-level dictionary lookup that misses (measured by
``benchmarks/bench_chaos.py``; tens of nanoseconds, well under 100 ns).

Grammar (after FreeBSD's fail(9)), one *spec* per failpoint::

    spec  := term ( "->" term )*
    term  := [ pct "%" ] [ count "*" ] action [ "(" arg ( "," arg )* ")" ]
    pct   := a number in [0, 100], decimals allowed       (default 100)
    count := an integer >= 1                               (default: unlimited)

    off                     do nothing (useful as the last term)
    return(value)           failpoint() returns value (int, float, true/false/null, "string", word);
                            return() returns True
    raise(Name[, "msg"])    raise the exception class Name (built-in, or a dotted path into a module
                            that is already imported; see "Imports" below) with msg (default:
                            "failpoint NAME"); see "What raise takes" below
    sleep(ms)               sleep ms milliseconds (finite, >= 0), then go on
    print("msg")            log msg at WARNING on the ``buttress.failpoints`` logger
    pause                   block until the failpoint is reconfigured or disabled

Evaluation on each pass: the terms are tried left to right; a term whose count is used up is
skipped; a term whose percentage draw fails passes to the next term; the first term that *fires*
spends one of its count, performs its action and ends the evaluation.  When no term fires, nothing
happens.  So ``30%3*raise(ConnectionError)->sleep(200)`` raises on 30% of passes until it has raised
3 times and sleeps 200 ms on every other pass.  ``0%`` never fires and ``100%`` always does: the
draw is ``random() < pct/100`` with ``random()`` in [0, 1).

Errors in a spec name the failpoint and the position in the string.

**Imports.** A spec can arrive from outside (the environment, the HTTP control), so it never makes
the process import a module: ``raise(pkg.mod.Error)`` resolves only against modules already in
``sys.modules``, unless the module is on the allow-list set with :func:`allow_imports` or
``$BUTTRESS_FAILPOINTS_IMPORTS`` (comma-separated; a module allows its submodules).

**What raise takes.** A failpoint raises ``Name(msg)``, so ``Name`` must be an exception class
that can be built from one message: checked when the spec is parsed, so
``raise(UnicodeDecodeError)`` or ``raise(json.JSONDecodeError)`` (which need more arguments) are
refused with the position, not turned into a ``TypeError`` at the failpoint.  ``SystemExit`` and
``KeyboardInterrupt`` (and their subclasses) end the process rather than fail a call, so they are
refused unless explicitly allowed:
``configure(name, spec, allow_exit=True)`` for one failpoint, or process-wide
``$BUTTRESS_FAILPOINTS_ALLOW_EXIT=1`` (read at import, and by :func:`load_env`) or
:func:`allow_exit_exceptions`.

**The environment never breaks the import.** ``import buttress`` reads ``$BUTTRESS_FAILPOINTS``;
a malformed entry is skipped and reported once (a WARNING on the ``buttress.failpoints.env``
logger and a one-line :class:`FailpointEnvWarning` naming its position) while the valid entries
are configured.  ``load_env(strict=True)`` raises instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from buttress.errors import ConfigError

from .failpoint_spec import (
    ENV_ALLOW_EXIT,
    ENV_IMPORTS,
    FailpointSyntaxError,
    Term,
    allow_exit_exceptions,
    allow_imports,
    env_flag,
    parse,
    resolve_exception,
)

__all__ = [
    "ENV_ALLOW_EXIT",
    "ENV_IMPORTS",
    "ENV_VAR",
    "Failpoint",
    "allow_exit_exceptions",
    "FailpointEnvWarning",
    "FailpointSyntaxError",
    "Term",
    "active",
    "allow_imports",
    "clear",
    "configure",
    "configured",
    "disable",
    "failpoint",
    "failpoint_async",
    "get",
    "load_env",
    "parse",
    "parse_env",
    "resolve_exception",
    "serve_control",
]

ENV_VAR = "BUTTRESS_FAILPOINTS"
"""Environment variable read at import: ``name=spec`` pairs separated by ``;``."""

ENV_HTTP = "BUTTRESS_FAILPOINTS_HTTP"
"""When set to ``host:port``, :func:`serve_control` is started at import on that address."""

_log = logging.getLogger("buttress.failpoints")
# Problems in the environment are logged here; the NullHandler keeps logging's last-resort handler
# quiet, so a process without logging set up shows each problem once (as a warning), not twice.
_env_log = logging.getLogger("buttress.failpoints.env")
_env_log.addHandler(logging.NullHandler())

# The one structure the disabled fast path touches: name -> Failpoint, only for configured points.
_ACTIVE: dict[str, Failpoint] = {}
_lock = threading.Lock()


class FailpointEnvWarning(UserWarning):
    """A ``$BUTTRESS_FAILPOINTS`` entry was skipped (shown once per entry, naming the position)."""


class Failpoint:
    """A configured failpoint: a parsed spec (or a callable) and its counters.

    ``passes`` counts evaluations; ``fired`` counts passes on which a term fired.
    """

    __slots__ = (
        "_lock",
        "_released",
        "action",
        "fired",
        "name",
        "passes",
        "random",
        "spec",
        "terms",
    )

    def __init__(
        self,
        name: str,
        spec: str | Callable[[], Any],
        *,
        rng: random.Random | None = None,
        allow_exit: bool | None = None,
    ) -> None:
        self.name = name
        self.random = rng or random.Random()
        self.action: Callable[[], Any] | None = None
        if callable(spec):
            self.spec = getattr(spec, "__qualname__", repr(spec))
            self.terms: list[Term] = []
            self.action = spec
        else:
            self.spec = spec
            self.terms = parse(spec, name, allow_exit=allow_exit)
        self.passes = 0
        self.fired = 0
        self._lock = threading.Lock()
        self._released = threading.Event()

    def __repr__(self) -> str:
        return f"Failpoint({self.name!r}, {self.spec!r}, passes={self.passes}, fired={self.fired})"

    def _choose(self) -> Term | None:
        with self._lock:
            self.passes += 1
            for term in self.terms:
                if term.remaining is not None and term.remaining <= 0:
                    continue
                if term.pct < 100.0 and not self.random.random() * 100.0 < term.pct:
                    continue
                if term.remaining is not None:
                    term.remaining -= 1
                self.fired += 1
                return term
        return None

    def _count_callable_pass(self) -> None:
        with self._lock:
            self.passes += 1
            self.fired += 1

    def _decide(self) -> tuple[str, Any]:
        """This pass, decided: ``("value", v)`` (return ``v``: None when no term fires),
        ``("sleep", seconds)`` or ``("pause", None)``.  The actions that need no waiting are done
        here (``raise``, ``print``); the caller waits in its own way."""
        term = self._choose()
        if term is None:
            return "value", None
        act = term.action
        if act == "raise":
            raise term.args[0](*term.args[1:])
        if act == "print":
            _log.warning("%s", term.args[0])
        if act == "return":
            return "value", term.args[0]
        if act in ("sleep", "pause"):
            return act, term.args[0] if act == "sleep" else None
        return "value", None

    def evaluate(self) -> Any:
        """One pass, sync: perform the firing term's action; the value for ``return``, else None."""
        if self.action is not None:
            self._count_callable_pass()
            return self.action()
        kind, arg = self._decide()
        if kind == "sleep":
            time.sleep(arg)
        elif kind == "pause":
            self._released.wait()
        return arg if kind == "value" else None

    async def evaluate_async(self) -> Any:
        """One pass in asyncio: like :meth:`evaluate`, but sleeps and pauses do not block the
        loop."""
        if self.action is not None:
            self._count_callable_pass()
            out = self.action()
            if asyncio.iscoroutine(out):
                out = await out
            return out
        kind, arg = self._decide()
        if kind == "sleep":
            await asyncio.sleep(arg)
        elif kind == "pause":
            while not self._released.is_set():
                await asyncio.sleep(0.005)
        return arg if kind == "value" else None

    def release(self) -> None:
        """Let every pass blocked in ``pause`` go on (done when the point is replaced or
        disabled)."""
        self._released.set()


def failpoint(name: str, _get: Callable[[str], Failpoint | None] = _ACTIVE.get) -> Any:
    """A failpoint: does nothing (returns None) unless ``name`` is configured.

    When configured, performs the action of the first term that fires (see the module docstring) and
    returns the ``return(...)`` value, if any.  (``_get`` is bound at definition for speed; do not
    pass it.)
    """
    fp = _get(name)
    if fp is None:
        return None
    return fp.evaluate()


async def failpoint_async(name: str, _get: Callable[[str], Failpoint | None] = _ACTIVE.get) -> Any:
    """The asyncio form of :func:`failpoint`: ``sleep`` and ``pause`` suspend the task only."""
    fp = _get(name)
    if fp is None:
        return None
    return await fp.evaluate_async()


def configure(
    name: str,
    spec: str | Callable[[], Any],
    *,
    seed: int | None = None,
    allow_exit: bool | None = None,
) -> Failpoint:
    """Switch failpoint ``name`` on with ``spec`` (a string in the grammar, or a callable run on
    each pass).  Replaces (and releases) a previous configuration.  ``seed`` makes the draws
    repeatable.  ``allow_exit=True`` lets ``raise(SystemExit)`` and ``raise(KeyboardInterrupt)``
    through for this failpoint (None: the process-wide setting, off unless
    ``$BUTTRESS_FAILPOINTS_ALLOW_EXIT`` is set)."""
    if not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a failpoint needs a non-empty name")
    fp = Failpoint(
        name, spec, rng=random.Random(seed) if seed is not None else None, allow_exit=allow_exit
    )
    with _lock:
        old = _ACTIVE.get(name)
        _ACTIVE[name] = fp
    if old is not None:
        old.release()
    return fp


def disable(name: str) -> bool:
    """Switch failpoint ``name`` off; True if it was on."""
    with _lock:
        old = _ACTIVE.pop(name, None)
    if old is not None:
        old.release()
    return old is not None


def clear() -> None:
    """Switch every failpoint off."""
    with _lock:
        olds = list(_ACTIVE.values())
        _ACTIVE.clear()
    for fp in olds:
        fp.release()


def get(name: str) -> Failpoint | None:
    """The configured failpoint ``name`` (with its counters), or None."""
    return _ACTIVE.get(name)


def active() -> dict[str, str]:
    """Configured failpoints: name -> spec."""
    with _lock:
        return {k: v.spec for k, v in _ACTIVE.items()}


@contextmanager
def configured(
    name: str,
    spec: str | Callable[[], Any],
    *,
    seed: int | None = None,
    allow_exit: bool | None = None,
) -> Iterator[Failpoint]:
    """Configure ``name`` for the block; restore what was there before on exit (always)."""
    with _lock:
        previous = _ACTIVE.get(name)
    fp = configure(name, spec, seed=seed, allow_exit=allow_exit)
    try:
        yield fp
    finally:
        with _lock:
            if _ACTIVE.get(name) is fp:
                if previous is None:
                    del _ACTIVE[name]
                else:
                    _ACTIVE[name] = previous
        fp.release()


def _env_entries(
    text: str, allow_exit: bool | None = None
) -> tuple[dict[str, str], list[FailpointSyntaxError]]:
    """Every ``name=spec`` entry of ``text``: the valid ones, and an error (positioned in ``text``)
    for each invalid one."""
    out: dict[str, str] = {}
    problems: list[FailpointSyntaxError] = []
    pos = 0
    for part in text.split(";"):
        start = pos
        pos += len(part) + 1
        if not part.strip():
            continue
        name, eq, spec = part.partition("=")
        if not eq or not name.strip():
            problems.append(
                FailpointSyntaxError(
                    ENV_VAR, text, start, "expected 'name=spec' (pairs separated by ';')"
                )
            )
            continue
        try:
            parse(spec, name.strip(), allow_exit=allow_exit)
        except FailpointSyntaxError as e:
            problems.append(
                FailpointSyntaxError(
                    name.strip(), text, start + len(name) + 1 + e.position, e.detail
                )
            )
            continue
        out[name.strip()] = spec.strip()
    return out, problems


def parse_env(text: str) -> dict[str, str]:
    """``name=spec;name=spec`` to a dict, checking every spec; raises
    :class:`FailpointSyntaxError` for the first bad entry, naming its position in ``text``."""
    found, problems = _env_entries(text)
    if problems:
        raise problems[0]
    return found


def _report_env(problem: ConfigError, position: int | None) -> None:
    """Tell about a skipped environment entry: a log record and a one-line warning."""
    if isinstance(problem, FailpointSyntaxError):
        entry = problem.spec.split(";")
        start = 0
        text = problem.spec
        for part in entry:
            if start + len(part) >= problem.position:
                text = part.strip()
                break
            start += len(part) + 1
        message = (
            f"skipped failpoint entry {text!r}: at position {problem.position + 1}: "
            f"{problem.detail}"
        )
        var = ENV_VAR
    else:
        message = f"ignored: {problem.reason} (got {problem.value!r})"
        var = str(problem.parameter)
    _env_log.warning("$%s: %s", var, message)
    try:
        # An explicit "file" and line make the standard warning display a single line:
        # "$BUTTRESS_FAILPOINTS:17: FailpointEnvWarning: skipped failpoint entry ...".
        warnings.warn_explicit(
            message, FailpointEnvWarning, f"${var}", (position or 0) + 1, module=__name__
        )
    except Exception:
        # -W error turns the warning into an exception: it was logged, and import must not fail.
        pass


def load_env(environ: Mapping[str, str] | None = None, *, strict: bool = False) -> dict[str, str]:
    """Configure the failpoints named in ``$BUTTRESS_FAILPOINTS`` (and start the HTTP control if
    ``$BUTTRESS_FAILPOINTS_HTTP`` is set).  Returns what was configured.

    ``strict=False`` (the default, and what ``import buttress`` does): a malformed entry is
    skipped and reported once -- a WARNING on the ``buttress.failpoints.env`` logger and a
    :class:`FailpointEnvWarning` naming its position -- while the valid entries are configured.
    ``strict=True``: raise :class:`FailpointSyntaxError` for the first malformed entry before
    configuring any (or :class:`ConfigError` for a bad ``$BUTTRESS_FAILPOINTS_HTTP``).
    """
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR, "")
    # The flag allows; its absence leaves the process-wide setting (allow_exit_exceptions).
    allow_exit = True if env_flag(env.get(ENV_ALLOW_EXIT)) else None
    found, problems = _env_entries(text, allow_exit) if text.strip() else ({}, [])
    if problems and strict:
        raise problems[0]
    server: tuple[str, int] | None = None
    addr = env.get(ENV_HTTP, "")
    if addr:
        host, sep, port = addr.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            bad = ConfigError(ENV_HTTP, addr, "expected host:port, e.g. 127.0.0.1:7070")
            if strict:
                raise bad
            _report_env(bad, None)
        else:
            server = (host or "127.0.0.1", int(port))
    for problem in problems:
        _report_env(problem, problem.position)
    for name, spec in found.items():
        configure(name, spec, allow_exit=allow_exit)
    if server is not None:
        try:
            serve_control(*server)
        except OSError as e:
            bad = ConfigError(ENV_HTTP, addr, f"cannot serve there: {e.strerror or e}")
            if strict:
                raise bad from None
            _report_env(bad, None)
    return found


def _load_env_at_import() -> None:
    """``import buttress`` never fails because of the environment: problems are reported."""
    allow_exit_exceptions(env_flag(os.environ.get(ENV_ALLOW_EXIT)))
    try:
        allow_imports(os.environ.get(ENV_IMPORTS, "").split(","))
    except ConfigError as e:
        _report_env(ConfigError(ENV_IMPORTS, e.value, e.reason), None)
    try:
        load_env()
    except Exception as e:  # anything unforeseen: report it, never break the import
        _report_env(ConfigError(ENV_VAR, os.environ.get(ENV_VAR, ""), f"not loaded: {e}"), None)


# -- HTTP control, for failpoints in another process -------------------------


class _Handler(BaseHTTPRequestHandler):
    server_version = "buttress-failpoints"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("control: " + format, *args)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _name(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if path.startswith("/failpoints/") and len(path) > len("/failpoints/"):
            return unquote(path[len("/failpoints/") :])
        return None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/failpoints", "/failpoints/"):
            with _lock:
                body = {
                    k: {"spec": v.spec, "passes": v.passes, "fired": v.fired}
                    for k, v in _ACTIVE.items()
                }
            self._send(200, body)
            return
        name = self._name()
        fp = _ACTIVE.get(name) if name else None
        if fp is None:
            self._send(404, {"error": f"failpoint {name!r} is not configured", "status": 404})
            return
        self._send(200, {"name": name, "spec": fp.spec, "passes": fp.passes, "fired": fp.fired})

    def do_PUT(self) -> None:
        name = self._name()
        if name is None:
            self._send(404, {"error": "use PUT /failpoints/{name}", "status": 404})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= 65536:
            self._send(400, {"error": "Content-Length must be 0..65536", "status": 400})
            return
        spec = self.rfile.read(length).decode("utf-8", "replace").strip()
        try:
            configure(name, spec)
        except ConfigError as e:
            self._send(400, {"error": str(e), "status": 400})
            return
        self._send(200, {"name": name, "spec": spec})

    do_POST = do_PUT

    def do_DELETE(self) -> None:
        name = self._name()
        if name is None or not disable(name):
            self._send(404, {"error": f"failpoint {name!r} is not configured", "status": 404})
            return
        self.send_response(204)
        self.end_headers()


def serve_control(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """Serve the failpoints of this process over HTTP, in a daemon thread.

    ``GET /failpoints`` lists them; ``PUT /failpoints/{name}`` with the spec as the body configures
    one (400 with a JSON error when the spec is malformed); ``DELETE /failpoints/{name}`` disables
    it.  Returns the server (``server.server_address`` has the port; ``shutdown()`` stops it).
    """
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, name="buttress-failpoints", daemon=True)
    t.start()
    return server


_load_env_at_import()
