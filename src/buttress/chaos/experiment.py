"""Experiments in Chaos Toolkit's format, run by ``buttress chaos run``.

An experiment (YAML or JSON) has a ``title``, a ``description``, a ``steady-state-hypothesis``
(probes with tolerances, checked before and after the method), a ``method`` (actions and probes, in
order, some in the ``background``), ``rollbacks``, ``configuration`` and ``secrets`` (values, or
``{type: env, key: NAME[, default: ...]}``).  Providers: ``python`` (``module``, ``func``,
``arguments``), ``http`` (``url``, ``method``, ``headers``, ``arguments``, ``timeout``,
``expected_status``), ``process`` (``path``, ``arguments``, ``timeout``) and ``buttress`` (``func``
from :mod:`buttress.chaos.ctk`: the proxy, failpoints, SLO burn).

What Buttress adds to Chaos Toolkit's semantics:

* **rollbacks always run**: after success, after a failed or deviated run, after an abort and after
  Ctrl-C / SIGTERM (a second Ctrl-C while they run does not stop them); each is recorded;
* **continuous probes** (``continuous-probes:``, each with a ``tolerance`` and an ``interval``,
  default 1 s) run during the method; the first whose tolerance fails aborts the method (status
  ``aborted``) and the rollbacks run.  A declared SLO's burn rate (``func: slo_burn_rate``:
  ``reliability.yaml``, the SLI store, the SLO, an alert window) with the tolerance
  ``{type: burn-rate, max: 2}`` stops the run when the budget burns faster than 2x (the live
  ``func: slo_burn`` probe samples a URL instead);
* **outputs** of earlier activities can be referenced in later arguments: ``${outputs.NAME}`` or
  ``${outputs.NAME.key.sub}`` (a string that is exactly one reference keeps the value's type);
  ``${KEY}`` refers to configuration and secrets, as in Chaos Toolkit;
* ``--dry-run`` walks the plan and writes the journal without calling any provider.

Tolerances: ``true``/``false``, an int (an HTTP or process status, or the value), a string, a list
(the value or status is in it), ``{type: range, range: [lo, hi], target?}``,
``{type: regex, pattern, target?}`` and ``{type: probe, ...}`` (a probe given the output as
``value``; met when it returns a truthy value; not met when it raises, the exception recorded as
``tolerance_exception``) and ``{type: burn-rate, max: X}`` (met while the output is a number
<= X: an SLO burn rate from ``slo_burn_rate``).  ``target`` is a dotted path into the output.

Statuses as in Chaos Toolkit: ``completed`` (the hypothesis held), ``failed`` (it did not, before or
after: ``deviated`` is true when it broke after the method), ``aborted`` (a continuous probe),
``interrupted`` (a signal).  A failed action does not fail the run by itself, as in Chaos Toolkit.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from buttress.chaos.journal import Journal, iso
from buttress.errors import ButtressError
from buttress.spec.source import Document, load_yaml, load_yaml_text, validate
from buttress.spec.types import Duration

__all__ = [
    "Activity",
    "Experiment",
    "Loaded",
    "Runner",
    "load_experiment",
    "load_experiment_text",
    "run_experiment",
    "tolerance_met",
]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PythonProvider(_M):
    type: Literal["python"]
    module: str
    func: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)


class HttpProvider(_M):
    type: Literal["http"]
    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    arguments: Any = None
    timeout: float | list[float] = 30.0
    expected_status: int | None = None
    verify_tls: bool = True
    secrets: list[str] = Field(default_factory=list)


class ProcessProvider(_M):
    type: Literal["process"]
    path: str
    arguments: str | list[str] = Field(default_factory=list)
    timeout: float | None = None
    secrets: list[str] = Field(default_factory=list)


class ButtressProvider(_M):
    type: Literal["buttress"]
    func: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("func")
    @classmethod
    def _known(cls, v: str) -> str:
        from buttress.chaos.ctk import FUNCTIONS

        if v not in FUNCTIONS:
            raise ValueError(
                f"unknown buttress function {v!r}; expected one of: {', '.join(FUNCTIONS)}"
            )
        return v


def _provider_kind(v: Any) -> str | None:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    # Tag names with brackets are dropped from error locations by buttress.spec.source.
    return f"provider[{kind}]" if kind in ("python", "http", "process", "buttress") else None


Provider = Annotated[
    Annotated[PythonProvider, Tag("provider[python]")]
    | Annotated[HttpProvider, Tag("provider[http]")]
    | Annotated[ProcessProvider, Tag("provider[process]")]
    | Annotated[ButtressProvider, Tag("provider[buttress]")],
    Discriminator(
        _provider_kind,
        custom_error_type="provider_type",
        custom_error_message="provider type must be one of: python, http, process, buttress",
    ),
]


class Pauses(_M):
    before: Duration = 0.0
    after: Duration = 0.0


class Activity(_M):
    """An action or a probe."""

    type: Literal["action", "probe"]
    name: str = Field(min_length=1)
    provider: Provider
    tolerance: Any = None
    pauses: Pauses | None = None
    background: bool = False
    controls: Any = None
    interval: Duration | None = None


class Ref(_M):
    """``{ref: NAME}``: run the activity of that name declared earlier."""

    ref: str


def _activity_kind(v: Any) -> str:
    # Tag names with brackets are dropped from error locations by buttress.spec.source.
    return "step[ref]" if isinstance(v, dict) and "ref" in v else "step[activity]"


Step = Annotated[
    Annotated[Activity, Tag("step[activity]")] | Annotated[Ref, Tag("step[ref]")],
    Discriminator(_activity_kind),
]


class Hypothesis(_M):
    title: str
    probes: list[Step] = Field(default_factory=list)
    controls: Any = None


class Experiment(_M):
    """The experiment file, in Chaos Toolkit's format plus ``continuous-probes``."""

    version: str | None = None
    title: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    contributions: dict[str, Any] | None = None
    configuration: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steady_state_hypothesis: Hypothesis | None = Field(None, alias="steady-state-hypothesis")
    method: list[Step] = Field(min_length=1)
    rollbacks: list[Step] = Field(default_factory=list)
    continuous_probes: list[Activity] = Field(default_factory=list, alias="continuous-probes")
    extensions: list[Any] = Field(default_factory=list)
    controls: Any = None
    runtime: Any = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) else v


class Loaded:
    """A validated experiment with its raw data (for the journal) and its document (for errors)."""

    def __init__(self, experiment: Experiment, raw: dict[str, Any], doc: Document) -> None:
        self.experiment = experiment
        self.raw = raw
        self.doc = doc


_REF = re.compile(r"\$\{([A-Za-z_][\w.\-]*)\}")
_TOL_TYPES = ("range", "regex", "probe", "burn-rate")


def _check_tolerance(doc: Document, loc: tuple[str | int, ...], tol: Any) -> None:
    if tol is None or isinstance(tol, bool | int | float | str | list):
        return
    if not isinstance(tol, dict):
        raise doc.error(
            loc, f"a tolerance must be a bool, number, string, list or mapping, got {tol!r}"
        )
    kind = tol.get("type")
    if kind not in _TOL_TYPES:
        raise doc.error(
            (*loc, "type"),
            f"unknown tolerance type {kind!r}; expected one of: {', '.join(_TOL_TYPES)}",
        )
    if kind == "range":
        rng = tol.get("range")
        if not (
            isinstance(rng, list)
            and len(rng) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in rng)
            and rng[0] <= rng[1]
        ):
            raise doc.error(
                (*loc, "range"), "a range tolerance needs range: [low, high], low <= high"
            )
    if kind == "regex":
        pattern = tol.get("pattern")
        if not isinstance(pattern, str):
            raise doc.error((*loc, "pattern"), "a regex tolerance needs a pattern string")
        try:
            re.compile(pattern)
        except re.error as e:
            raise doc.error((*loc, "pattern"), f"not a valid regular expression: {e}") from None
    if kind == "probe":
        validate(Activity, doc, loc)
    if kind == "burn-rate":
        limit = tol.get("max")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit >= 0:
            raise doc.error(
                (*loc, "max"), "a burn-rate tolerance needs max: a number >= 0 (e.g. 2)"
            )


def _semantic_checks(exp: Experiment, doc: Document) -> None:
    """What the models cannot see: references, tolerances, roles."""
    known: set[str] = set()
    declared: dict[str, Activity] = {}
    config_keys = set(exp.configuration) | {k for scope in exp.secrets.values() for k in scope}

    def check_refs(value: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(value, str):
            for m in _REF.finditer(value):
                parts = m.group(1).split(".")
                if parts[0] == "outputs":
                    if len(parts) < 2 or parts[1] not in known:
                        raise doc.error(
                            loc,
                            f"${{{m.group(1)}}} refers to the output of {'.'.join(parts[1:2])!r}, "
                            "which is not an earlier activity",
                        )
                elif parts[0] not in config_keys:
                    raise doc.error(
                        loc, f"${{{m.group(1)}}}: no configuration or secret key {parts[0]!r}"
                    )
        elif isinstance(value, dict):
            for k, v in value.items():
                check_refs(v, (*loc, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                check_refs(v, (*loc, i))

    def visit(steps: list[Activity | Ref], base: tuple[str | int, ...], role: str) -> None:
        for i, step in enumerate(steps):
            loc = (*base, i)
            if isinstance(step, Ref):
                if step.ref not in declared:
                    raise doc.error((*loc, "ref"), f"no earlier activity named {step.ref!r}")
                act = declared[step.ref]
            else:
                act = step
                declared.setdefault(act.name, act)
                check_refs(act.provider.model_dump(), (*loc, "provider"))
                _check_tolerance(doc, (*loc, "tolerance"), act.tolerance)
            if role == "hypothesis" and act.type != "probe":
                raise doc.error((*loc, "type"), "the steady-state hypothesis holds probes only")
            if role == "hypothesis" and act.tolerance is None:
                raise doc.error(loc, f"probe {act.name!r} in the hypothesis needs a tolerance")
            if role == "rollbacks" and act.type != "action":
                raise doc.error((*loc, "type"), "rollbacks are actions")
            known.add(act.name)

    ssh = exp.steady_state_hypothesis
    if ssh is not None:
        visit(ssh.probes, ("steady-state-hypothesis", "probes"), "hypothesis")
    for i, probe in enumerate(exp.continuous_probes):
        loc: tuple[str | int, ...] = ("continuous-probes", i)
        if probe.type != "probe":
            raise doc.error((*loc, "type"), "continuous probes are probes")
        if probe.tolerance is None:
            raise doc.error(loc, f"continuous probe {probe.name!r} needs a tolerance")
        _check_tolerance(doc, (*loc, "tolerance"), probe.tolerance)
        check_refs(probe.provider.model_dump(), (*loc, "provider"))
    visit(exp.method, ("method",), "method")
    visit(exp.rollbacks, ("rollbacks",), "rollbacks")
    for key, value in exp.configuration.items():
        if isinstance(value, dict) and value.get("type") == "env" and "key" not in value:
            raise doc.error(("configuration", key), "an env value needs key: NAME")


def _finish(doc: Document) -> Loaded:
    if not isinstance(doc.data, dict):
        raise doc.error((), "an experiment must be a mapping with title, method, ...")
    exp = validate(Experiment, doc)
    _semantic_checks(exp, doc)
    return Loaded(exp, doc.data, doc)


def load_experiment(path: str | Path) -> Loaded:
    """Load and check an experiment file (YAML or JSON); raises
    :class:`~buttress.errors.SpecError` with the file, line, column and field of the first
    problem."""
    return _finish(load_yaml(path))


def load_experiment_text(text: str, file: str = "<experiment>") -> Loaded:
    return _finish(load_yaml_text(text, file))


# -- tolerances --------------------------------------------------------------


def _target(output: Any, target: str | None) -> Any:
    if target is None:
        if isinstance(output, dict) and "status" in output:
            return output["status"]
        return output
    value = output
    for part in target.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def tolerance_met(
    tolerance: Any, output: Any, run_probe: Callable[[Activity, Any], Any] | None = None
) -> bool:
    """Does ``output`` meet ``tolerance`` (see the module docstring)?"""
    if isinstance(tolerance, bool):
        return bool(output == tolerance)
    if isinstance(tolerance, int | float):
        return bool(_target(output, None) == tolerance)
    if isinstance(tolerance, str):
        if isinstance(output, dict) and "body" in output:
            return bool(output["body"] == tolerance)
        return bool(output == tolerance)
    if isinstance(tolerance, list):
        return _target(output, None) in tolerance
    if isinstance(tolerance, dict):
        kind = tolerance.get("type")
        value = _target(output, tolerance.get("target"))
        if kind == "range":
            lo, hi = tolerance["range"]
            return (
                isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi
            )
        if kind == "regex":
            return re.search(tolerance["pattern"], "" if value is None else str(value)) is not None
        if kind == "probe" and run_probe is not None:
            return bool(run_probe(Activity.model_validate(tolerance), output))
        if kind == "burn-rate":
            limit = tolerance["max"]
            return isinstance(value, int | float) and not isinstance(value, bool) and value <= limit
    return False


# -- running -----------------------------------------------------------------


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
        self,
        loaded: Loaded,
        *,
        dry: bool = False,
        log: Callable[[str], None] | None = None,
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
            whole = _REF.fullmatch(value)
            if whole:
                return self._lookup(whole.group(1))
            return _REF.sub(lambda m: str(self._lookup(m.group(1))), value)
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
