"""Chaos Toolkit extension: actions and probes for the Buttress proxy, failpoints and SLO burn.

Use from any Chaos Toolkit experiment (``chaos run``) with a python provider::

    {"type": "action", "name": "slow-db",
     "provider": {"type": "python", "module": "buttress.chaos.ctk", "func": "add_toxic",
                  "arguments": {"proxy": "db", "type": "latency", "attributes": {"latency": 300}}}}

or, in ``buttress chaos run``, with the shorter ``{"type": "buttress", "func": "add_toxic", ...}``.

The proxy's control API address comes from the ``api_url`` argument, else the experiment's
configuration key ``buttress_proxy_url``, else ``$BUTTRESS_PROXY_URL``, else toxiproxy's default
``http://127.0.0.1:8474``, so these functions also drive a real toxiproxy.  Failpoints in another
process are reached through its failpoint control endpoint (``failpoints_url``,
``buttress_failpoints_url``, ``$BUTTRESS_FAILPOINTS_URL``; see
:func:`buttress.chaos.failpoints.serve_control`); without one they act on this process.

``discover()`` lists the activities for ``chaos discover``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

from buttress.chaos import failpoints
from buttress.chaos.versions import buttress_version
from buttress.errors import ButtressError, MissingExtra

if TYPE_CHECKING:
    from buttress.chaos.client import Client

__all__ = [
    "add_toxic",
    "burn_rate_at_most",
    "configure_failpoint",
    "create_proxy",
    "delete_proxy",
    "disable_failpoint",
    "disable_proxy",
    "discover",
    "enable_proxy",
    "failpoint_hits",
    "list_toxics",
    "proxy_exists",
    "remove_toxic",
    "reset_proxies",
    "slo_burn",
    "slo_burn_rate",
    "update_toxic",
]

DEFAULT_API = "http://127.0.0.1:8474"
Configuration = dict[str, Any] | None


def _httpx() -> ModuleType:
    """httpx, imported when a function needs it: the names stay importable (``chaos validate``
    checks them) on an install without the chaos extra."""
    try:
        import httpx
    except ImportError:
        raise MissingExtra("the chaos experiment functions", "chaos", "httpx") from None
    return httpx


def _api(api_url: str | None, configuration: Configuration) -> Client:
    from buttress.chaos.client import Client

    url = (
        api_url
        or (configuration or {}).get("buttress_proxy_url")
        or os.environ.get("BUTTRESS_PROXY_URL")
        or DEFAULT_API
    )
    return Client(str(url))


# -- proxy actions -----------------------------------------------------------


def create_proxy(
    *,
    name: str,
    upstream: str,
    listen: str = "127.0.0.1:0",
    enabled: bool = True,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Create a proxy ``name`` listening on ``listen`` and forwarding to ``upstream``."""
    with _api(api_url, configuration) as api:
        p = api.create(name, upstream, listen=listen, enabled=enabled)
        return {"name": p.name, "listen": p.listen, "upstream": p.upstream, "enabled": p.enabled}


def delete_proxy(
    name: str, api_url: str | None = None, configuration: Configuration = None
) -> None:
    """Delete proxy ``name``."""
    with _api(api_url, configuration) as api:
        api.get(name).destroy()


def add_toxic(
    *,
    proxy: str,
    type: str,
    name: str | None = None,
    stream: str = "downstream",
    toxicity: float = 1.0,
    attributes: dict[str, Any] | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Add a toxic to ``proxy``; returns the toxic as the API reports it."""
    with _api(api_url, configuration) as api:
        return api.get(proxy).add_toxic(
            type, name=name, stream=stream, toxicity=toxicity, **(attributes or {})
        )


def update_toxic(
    *,
    proxy: str,
    name: str,
    toxicity: float | None = None,
    attributes: dict[str, Any] | None = None,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Change a toxic's toxicity or attributes."""
    with _api(api_url, configuration) as api:
        return api.get(proxy).update_toxic(name, toxicity=toxicity, **(attributes or {}))


def remove_toxic(
    *,
    proxy: str,
    name: str,
    missing_ok: bool = True,
    api_url: str | None = None,
    configuration: Configuration = None,
) -> bool:
    """Remove a toxic; with ``missing_ok`` (default, for rollbacks) a missing one is not an error.

    Returns True if a toxic was removed."""
    from buttress.chaos.client import ProxyAPIError

    with _api(api_url, configuration) as api:
        try:
            api.get(proxy).remove_toxic(name)
        except ProxyAPIError as e:
            if missing_ok and e.status == 404:
                return False
            raise
        return True


def list_toxics(
    proxy: str, api_url: str | None = None, configuration: Configuration = None
) -> list[dict[str, Any]]:
    """The toxics of ``proxy`` (a probe)."""
    with _api(api_url, configuration) as api:
        return api.get(proxy).toxics()


def proxy_exists(
    name: str, api_url: str | None = None, configuration: Configuration = None
) -> bool:
    """Does proxy ``name`` exist (a probe)?"""
    with _api(api_url, configuration) as api:
        return name in api.proxies()


def disable_proxy(
    name: str, api_url: str | None = None, configuration: Configuration = None
) -> None:
    """Take proxy ``name`` down: it stops listening and drops its connections."""
    with _api(api_url, configuration) as api:
        api.get(name).disable()


def enable_proxy(
    name: str, api_url: str | None = None, configuration: Configuration = None
) -> None:
    """Bring proxy ``name`` back up."""
    with _api(api_url, configuration) as api:
        api.get(name).enable()


def reset_proxies(api_url: str | None = None, configuration: Configuration = None) -> None:
    """Enable every proxy and remove every toxic (the catch-all rollback)."""
    with _api(api_url, configuration) as api:
        api.reset()


# -- failpoints --------------------------------------------------------------


def _fp_url(failpoints_url: str | None, configuration: Configuration) -> str | None:
    return (
        failpoints_url
        or (configuration or {}).get("buttress_failpoints_url")
        or os.environ.get("BUTTRESS_FAILPOINTS_URL")
        or None
    )


def configure_failpoint(
    *, name: str, spec: str, failpoints_url: str | None = None, configuration: Configuration = None
) -> dict[str, Any]:
    """Configure failpoint ``name`` with ``spec`` (fail(9)-style, e.g.
    ``"30%raise(TimeoutError)"``)."""
    url = _fp_url(failpoints_url, configuration)
    if url is None:
        failpoints.configure(name, spec)
        return {"name": name, "spec": spec}
    resp = _httpx().put(f"{url.rstrip('/')}/failpoints/{name}", content=spec.encode(), timeout=5)
    if resp.status_code >= 400:
        raise ButtressError(f"failpoint {name!r}: {resp.json().get('error', resp.text)}")
    out: dict[str, Any] = resp.json()
    return out


def disable_failpoint(
    name: str, failpoints_url: str | None = None, configuration: Configuration = None
) -> bool:
    """Switch failpoint ``name`` off; True if it was on."""
    url = _fp_url(failpoints_url, configuration)
    if url is None:
        return failpoints.disable(name)
    resp = _httpx().delete(f"{url.rstrip('/')}/failpoints/{name}", timeout=5)
    return bool(resp.status_code == 204)


def failpoint_hits(
    name: str, failpoints_url: str | None = None, configuration: Configuration = None
) -> int:
    """How many times failpoint ``name`` fired (a probe); 0 when it is not configured."""
    url = _fp_url(failpoints_url, configuration)
    if url is None:
        fp = failpoints.get(name)
        return fp.fired if fp is not None else 0
    resp = _httpx().get(f"{url.rstrip('/')}/failpoints/{name}", timeout=5)
    if resp.status_code == 404:
        return 0
    return int(resp.json()["fired"])


# -- SLO burn ----------------------------------------------------------------


def slo_burn(
    *,
    url: str,
    objective: float = 0.99,
    samples: int = 20,
    timeout: float = 1.0,
    method: str = "GET",
    latency_threshold: float | None = None,
    interval: float = 0.0,
) -> float:
    """Burn rate of an SLO measured live: send ``samples`` requests to ``url``.

    A request is *bad* when it fails, answers 5xx, or (with ``latency_threshold``, seconds) takes
    longer than that.  ``burn = error_ratio / (1 - objective)`` (so 1.0 spends the error budget
    exactly over the SLO period; 14.4 would spend a 30-day budget in 2 days).  Uses
    :func:`buttress.slo.math.burn_rate` when the ``buttress.slo`` package is importable.

    Use it as a probe with a tolerance such as ``{"type": "range", "range": [0, 2]}``.
    """
    if not 0 < objective < 1:
        raise ButtressError(f"slo_burn: objective must be in (0, 1), got {objective!r}")
    if samples < 1:
        raise ButtressError(f"slo_burn: samples must be >= 1, got {samples!r}")
    bad = 0
    httpx = _httpx()
    with httpx.Client(timeout=timeout) as http:
        for i in range(samples):
            t0 = time.perf_counter()
            try:
                r = http.request(method, url)
                failed = r.status_code >= 500
            except httpx.HTTPError:
                failed = True
            if latency_threshold is not None and time.perf_counter() - t0 > latency_threshold:
                failed = True
            bad += failed
            if interval and i + 1 < samples:
                time.sleep(interval)
    error_ratio = bad / samples
    budget = 1.0 - objective
    if importlib.util.find_spec("buttress.slo") is not None:
        from buttress.slo.math import burn_rate

        return float(burn_rate(error_ratio, budget))
    return error_ratio / budget


def slo_burn_rate(
    *, spec: str, store: str, slo: str, window: str | float = "1h", at: str | float | None = None
) -> float:
    """Burn rate of a *declared* SLO over one of its alert windows, from the SLI store.

    Reads the SLOs of ``spec`` (``reliability.yaml``, OpenSLO or sloth, as
    :func:`buttress.slo.load.load_slos` does), opens the SQLite store ``store`` (an
    :class:`buttress.slo.store.SLIStore`, as the SLI recorder fills it) and asks the evaluator
    (:func:`buttress.slo.evaluator.evaluate`) for the status of SLO ``slo`` at ``at`` (epoch
    seconds or ISO 8601 with an offset; default now, which counts the minute in progress).
    Returns its burn rate over ``window`` (a duration: ``"5m"``, ``"1h"``, seconds)::

        burn = (bad / total over the window) / (1 - objective)

    so 1.0 spends the budget exactly over the SLO period and 14.4 spends 30 days' budget in 2.
    ``window`` must be one the evaluator computes for this SLO: 5m and the long and short windows
    of its alert tiers (5m, 30m, 1h, 2h, 6h, 1d, 3d with the default tiers).  A window without
    events burned nothing: 0.0.  Errors (no such file, SLO or window) raise
    :class:`~buttress.errors.ButtressError` naming what exists.

    As a continuous probe in ``buttress chaos run``, pair it with the tolerance
    ``{type: burn-rate, max: X}`` to abort the run when the SLO burns faster than X.
    """
    from pathlib import Path

    from buttress.slo.evaluator import evaluate
    from buttress.slo.load import load_slos
    from buttress.slo.spec import format_duration
    from buttress.slo.store import SLIStore
    from buttress.spec.types import parse_duration

    try:
        seconds = parse_duration(window)
    except ValueError as e:
        raise ButtressError(f"slo_burn_rate: window: {e}") from None
    when: float | None
    if at is None or isinstance(at, int | float):
        when = None if at is None else float(at)
    else:
        from datetime import datetime

        try:
            stamp = datetime.fromisoformat(str(at))
        except ValueError:
            stamp = None
        if stamp is None or stamp.tzinfo is None:
            raise ButtressError(
                f"slo_burn_rate: at={at!r}: use epoch seconds or ISO 8601 with an offset"
            )
        when = stamp.timestamp()
    slos = load_slos(spec)
    chosen = [s for s in slos if s.name == slo]
    if not chosen:
        names = ", ".join(s.name for s in slos) or "none"
        raise ButtressError(f"slo_burn_rate: no SLO named {slo!r} in {spec} (SLOs: {names})")
    if not Path(store).is_file():
        raise ButtressError(f"slo_burn_rate: store {store}: no such file (record some events)")
    with SLIStore(store) as sli_store:
        (status,) = evaluate(chosen, sli_store, when)
    key = format_duration(seconds)
    if key not in status.burn_rates:
        have = ", ".join(status.burn_rates)
        raise ButtressError(
            f"slo_burn_rate: SLO {slo!r} has no {key} window; its alert windows are: {have}"
        )
    burn = status.burn_rates[key]
    return 0.0 if burn is None else float(burn)


def burn_rate_at_most(value: Any = None, *, limit: float) -> bool:
    """A tolerance for Chaos Toolkit (``{"type": "probe", ...}``): is the burn rate ``value``
    (the output of :func:`slo_burn_rate`, passed in by Chaos Toolkit) a number <= ``limit``?"""
    return isinstance(value, int | float) and not isinstance(value, bool) and value <= limit


# -- discovery ---------------------------------------------------------------

_ACTIONS = (
    create_proxy,
    delete_proxy,
    add_toxic,
    update_toxic,
    remove_toxic,
    disable_proxy,
    enable_proxy,
    reset_proxies,
    configure_failpoint,
    disable_failpoint,
)
_PROBES = (list_toxics, proxy_exists, failpoint_hits, slo_burn, slo_burn_rate, burn_rate_at_most)
FUNCTIONS = {f.__name__: f for f in (*_ACTIONS, *_PROBES)}


def _describe(fn: Any, kind: str) -> dict[str, Any]:
    sig = inspect.signature(fn)
    args = []
    for p in sig.parameters.values():
        if p.name == "configuration":
            continue
        arg: dict[str, Any] = {"name": p.name, "type": str(p.annotation)}
        if p.default is not inspect.Parameter.empty:
            arg["default"] = p.default
        args.append(arg)
    return {
        "type": kind,
        "name": fn.__name__,
        "mod": __name__,
        "doc": inspect.getdoc(fn) or "",
        "arguments": args,
    }


def discover(discover_system: bool = True) -> dict[str, Any]:
    """What ``chaos discover`` reports: this extension's actions and probes."""
    activities = [_describe(f, "action") for f in _ACTIONS] + [
        _describe(f, "probe") for f in _PROBES
    ]
    return {
        "extension": {"name": "buttress", "version": buttress_version()},
        "activities": activities,
        "system": None,
    }
