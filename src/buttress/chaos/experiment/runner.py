"""Running a loaded experiment: the hypothesis before and after, the method with continuous probes,
and rollbacks that always run."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import shlex
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from buttress.chaos.journal import Journal, iso
from buttress.errors import ButtressError

from .load import load_experiment
from .model import (
    REFERENCE,
    Activity,
    ButtressProvider,
    HttpProvider,
    Loaded,
    ProcessProvider,
    PythonProvider,
    Ref,
)
from .tolerance import tolerance_met

__all__ = ["Runner", "run_experiment"]


class _Abort(Exception):
    pass


def _resolve_value(key: str, value: Any, where: str) -> Any:
    if isinstance(value, dict) and value.get("type") == "env":
        name = value["key"]
        if name in os.environ:
            return os.environ[name]
        if "default" in value:
            return value["default"]
        raise ButtressError(f"{where}.{key}: environment variable {name!r} is not set")
    return value


class Runner:
    """Runs one loaded experiment; see :func:`run_experiment`.

    :param log: where progress lines go (default: nowhere).
    :param dry: walk the plan, call no provider.
    """

    def __init__(
        self, loaded: Loaded, *, dry: bool = False, log: Callable[[str], None] | None = None
    ) -> None:
        self.loaded = loaded
        self.exp = loaded.experiment
        self.dry = dry
        self.log = log or (lambda _msg: None)
        self.journal = Journal(loaded.raw, dry=dry)
        self.outputs: dict[str, Any] = {}
        self.declared: dict[str, Activity] = {}
        self.abort = threading.Event()
        self._stop_watch = threading.Event()
        self.configuration: dict[str, Any] = {}
        self.secrets: dict[str, dict[str, Any]] = {}

    # values ----------------------------------------------------------------------

    def _load_values(self) -> None:
        self.configuration = {
            k: _resolve_value(k, v, "configuration") for k, v in self.exp.configuration.items()
        }
        self.secrets = {
            scope: {k: _resolve_value(k, v, f"secrets.{scope}") for k, v in values.items()}
            for scope, values in self.exp.secrets.items()
        }

    def _lookup(self, ref: str) -> Any:
        parts = ref.split(".")
        if parts[0] == "outputs":
            if parts[1] not in self.outputs:
                raise ButtressError(f"${{{ref}}}: activity {parts[1]!r} has produced no output yet")
            value: Any = self.outputs[parts[1]]
            for part in parts[2:]:
                if isinstance(value, dict) and part in value:
                    value = value[part]
                elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                    value = value[int(part)]
                else:
                    raise ButtressError(f"${{{ref}}}: no {part!r} in the output")
            return value
        if parts[0] in self.configuration:
            return self.configuration[parts[0]]
        for scope in self.secrets.values():
            if parts[0] in scope:
                return scope[parts[0]]
        raise ButtressError(f"${{{ref}}}: no configuration or secret key {parts[0]!r}")

    def substitute(self, value: Any) -> Any:
        """Replace ``${...}`` references in strings, recursively."""
        if isinstance(value, str):
            whole = REFERENCE.fullmatch(value)
            if whole:
                return self._lookup(whole.group(1))
            return REFERENCE.sub(lambda m: str(self._lookup(m.group(1))), value)
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        return value

    # providers
    # ----------------------------------------------------------------------------------------

    def _secrets_for(self, scopes: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in scopes:
            out.update(self.secrets.get(s, {}))
        return out

    def _call_function(
        self, fn: Callable[..., Any], args: dict[str, Any], scopes: list[str]
    ) -> Any:
        params = inspect.signature(fn).parameters
        if "configuration" in params:
            args = {**args, "configuration": dict(self.configuration)}
        if "secrets" in params:
            args = {**args, "secrets": self._secrets_for(scopes)}
        return fn(**args)

    def call(self, act: Activity, extra: dict[str, Any] | None = None) -> Any:
        """Run ``act``'s provider and return its output (raises on failure)."""
        p = act.provider
        if isinstance(p, PythonProvider):
            module = importlib.import_module(p.module)
            fn = getattr(module, p.func, None)
            if not callable(fn):
                raise ButtressError(f"{p.module} has no function {p.func!r}")
            args = self.substitute(p.arguments)
            return self._call_function(fn, {**args, **(extra or {})}, p.secrets)
        if isinstance(p, ButtressProvider):
            from buttress.chaos.ctk import FUNCTIONS

            args = self.substitute(p.arguments)
            return self._call_function(FUNCTIONS[p.func], {**args, **(extra or {})}, [])
        if isinstance(p, HttpProvider):
            return self._http(p)
        return self._process(p)

    def _http(self, p: HttpProvider) -> dict[str, Any]:
        import httpx

        url = str(self.substitute(p.url))
        headers = {k: str(v) for k, v in self.substitute(p.headers).items()}
        args = self.substitute(p.arguments)
        timeout = p.timeout if isinstance(p.timeout, int | float) else tuple(p.timeout)[-1]
        kw: dict[str, Any] = {}
        if args is not None:
            if p.method.upper() in ("GET", "HEAD", "DELETE"):
                kw["params"] = args
            elif isinstance(args, str):
                kw["content"] = args
            else:
                kw["json"] = args
        with httpx.Client(timeout=timeout, verify=p.verify_tls) as http:
            r = http.request(p.method.upper(), url, headers=headers, **kw)
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        out = {"status": r.status_code, "headers": dict(r.headers), "body": body}
        if p.expected_status is not None and r.status_code != p.expected_status:
            raise ButtressError(f"{url} answered {r.status_code}, expected {p.expected_status}")
        return out

    def _process(self, p: ProcessProvider) -> dict[str, Any]:
        args = self.substitute(p.arguments)
        argv = [str(self.substitute(p.path))]
        argv += shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=p.timeout, check=False)
        return {"status": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    # activities
    # ---------------------------------------------------------------------------------------

    def _resolve(self, step: Activity | Ref) -> Activity:
        if isinstance(step, Ref):
            return self.declared[step.ref]
        self.declared.setdefault(step.name, step)
        return step

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and not self.dry and self.abort.wait(seconds):
            raise _Abort

    def run_activity(self, step: Activity | Ref, *, check_abort: bool = True) -> dict[str, Any]:
        """Run one activity (with its pauses); its journal record."""
        act = self._resolve(step)
        if check_abort and self.abort.is_set():
            raise _Abort
        if act.pauses is not None:
            self._pause(act.pauses.before) if check_abort else time.sleep(act.pauses.before)
        record: dict[str, Any] = {"activity": act.model_dump(by_alias=True, exclude_none=True)}
        t0 = time.time()
        record["start"] = iso(t0)
        if self.dry:
            record.update(status="skipped", output=None)
            self.log(f"  [dry] {act.type} {act.name!r} ({act.provider.type})")
        else:
            try:
                output = self.call(act)
            except Exception as e:
                record.update(
                    status="failed",
                    output=None,
                    exception=traceback.format_exception_only(type(e), e),
                )
                self.log(f"  {act.type} {act.name!r}: failed: {e}")
            else:
                record.update(status="succeeded", output=output)
                self.outputs[act.name] = output
                self.log(f"  {act.type} {act.name!r}: ok")
            if act.tolerance is not None and act.type == "probe":
                try:
                    met = record["status"] == "succeeded" and tolerance_met(
                        act.tolerance, record["output"], self._tolerance_probe
                    )
                except Exception as e:
                    # A tolerance that cannot be judged is not met; the run goes on to its end
                    # (and its rollbacks), with the reason in the journal.
                    met = False
                    record["tolerance_exception"] = traceback.format_exception_only(type(e), e)
                    self.log(f"  probe {act.name!r}: tolerance check failed: {e}")
                record["tolerance_met"] = met
                if not met:
                    self.log(f"  probe {act.name!r}: tolerance {act.tolerance!r} not met")
        t1 = time.time()
        record["end"] = iso(t1)
        record["duration"] = t1 - t0
        if act.pauses is not None:
            self._pause(act.pauses.after) if check_abort else time.sleep(act.pauses.after)
        return record

    def _tolerance_probe(self, probe: Activity, value: Any) -> Any:
        return self.call(probe, {"value": value})

    def hypothesis(self, phase: str) -> dict[str, Any] | None:
        ssh = self.exp.steady_state_hypothesis
        if ssh is None:
            return None
        self.log(f"steady state ({phase}): {ssh.title}")
        probes = [self.run_activity(p, check_abort=False) for p in ssh.probes]
        met = all(r.get("tolerance_met", r["status"] == "skipped") for r in probes)
        return {"steady_state_met": met, "probes": probes}

    # continuous probes
    # ----------------------------------------------------------------------------------

    def _watch(self) -> None:
        try:
            self._watch_loop()
        except Exception as e:  # a watcher that cannot watch stops the run rather than go blind
            self.journal.abort_reason = f"continuous probes failed: {type(e).__name__}: {e}"
            self.abort.set()

    def _watch_loop(self) -> None:
        probes = self.exp.continuous_probes
        due = [time.monotonic()] * len(probes)
        while not self._stop_watch.is_set():
            now = time.monotonic()
            for i, probe in enumerate(probes):
                if now < due[i]:
                    continue
                due[i] = now + (probe.interval or 1.0)
                rec = self.run_activity(probe, check_abort=False)
                self.journal.during.append(rec)
                if not rec.get("tolerance_met", True):
                    tol = probe.tolerance
                    if isinstance(tol, dict) and tol.get("type") == "burn-rate":
                        self.journal.abort_reason = (
                            f"continuous probe {probe.name!r}: SLO burn rate "
                            f"{rec.get('output')!r} is above {tol['max']!r}"
                        )
                    else:
                        self.journal.abort_reason = (
                            f"continuous probe {probe.name!r}: tolerance {tol!r} not met"
                        )
                    self.abort.set()
                    return
            wait = min(due) - time.monotonic()
            self._stop_watch.wait(max(0.005, wait))

    # the run ----------------------------------------------------------------------

    def run(self) -> Journal:
        """Run the experiment; rollbacks always run.  Returns the journal (also on interruption)."""
        j = self.journal
        watcher: threading.Thread | None = None
        background: list[threading.Thread] = []
        try:
            self._load_values()
            self.log(f"experiment: {self.exp.title}")
            j.before = self.hypothesis("before")
            if j.before is not None and not j.before["steady_state_met"]:
                j.status = "failed"
                j.abort_reason = "the steady state was not met before the method"
                return j
            if self.exp.continuous_probes and not self.dry:
                watcher = threading.Thread(target=self._watch, name="buttress-probes", daemon=True)
                watcher.start()
            self.log("method")
            try:
                for step in self.exp.method:
                    act = self._resolve(step)
                    if act.background and not self.dry:
                        t = threading.Thread(target=self._background, args=(act,), daemon=True)
                        t.start()
                        background.append(t)
                        continue
                    j.run.append(self.run_activity(step))
                for t in background:
                    while t.is_alive():
                        t.join(0.05)
                        if self.abort.is_set():
                            raise _Abort
                if self.abort.is_set():
                    raise _Abort
            except _Abort:
                j.status = "aborted"
                j.deviated = True
                self.log(f"aborted: {j.abort_reason}")
                return j
            finally:
                self._stop_watch.set()
                if watcher is not None:
                    watcher.join(5)
            j.after = self.hypothesis("after")
            if j.after is not None and not j.after["steady_state_met"]:
                j.status = "failed"
                j.deviated = True
                j.abort_reason = "the steady state deviated after the method"
            return j
        except KeyboardInterrupt:
            j.status = "interrupted"
            j.abort_reason = "interrupted by a signal"
            self.log("interrupted")
            return j
        except ButtressError as e:
            j.status = "failed"
            j.abort_reason = str(e)
            self.log(f"failed: {e}")
            return j
        except Exception as e:  # unforeseen: still a journal, still the rollbacks
            j.status = "failed"
            j.abort_reason = f"internal error: {type(e).__name__}: {e}"
            self.log(f"failed: {j.abort_reason}")
            return j
        finally:
            # Shielded from here, not only once the rollbacks start: a second Ctrl-C that lands
            # while the first is being handled must not skip them either.
            with _rollback_shield(self.log):
                self._stop_watch.set()
                self.abort.set()  # background activities stop at their next pause
                self._rollbacks()
            j.ended = time.time()

    def _background(self, act: Activity) -> None:
        with contextlib.suppress(_Abort):
            self.journal.run.append(self.run_activity(act))

    def _rollbacks(self) -> None:
        if not self.exp.rollbacks:
            return
        self.log("rollbacks")
        with _rollback_shield(self.log):
            for step in self.exp.rollbacks:
                try:
                    record = self.run_activity(step, check_abort=False)
                except Exception as e:  # one rollback's failure never skips the next
                    record = {
                        "activity": {"name": getattr(step, "name", getattr(step, "ref", "?"))},
                        "status": "failed",
                        "output": None,
                        "exception": traceback.format_exception_only(type(e), e),
                    }
                    self.log(f"  rollback failed: {e}")
                self.journal.rollbacks.append(record)


@contextlib.contextmanager
def _rollback_shield(log: Callable[[str], None]) -> Iterator[None]:
    """While rollbacks run, Ctrl-C and SIGTERM only say so: the rollbacks finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: object) -> None:
        log(f"signal {signum} received: rollbacks are running and will finish")

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, note)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_experiment(
    path: str | Path,
    *,
    journal_path: str | Path | None = "journal.json",
    dry: bool = False,
    log: Callable[[str], None] | None = None,
) -> Journal:
    """Load, check and run the experiment at ``path``; write the journal to ``journal_path``."""
    loaded = load_experiment(path)
    runner = Runner(loaded, dry=dry, log=log)
    try:
        runner.run()
    finally:
        if journal_path is not None:
            runner.journal.write(journal_path)
    return runner.journal
