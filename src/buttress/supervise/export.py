"""The ``supervision:`` tree as systemd units or Kubernetes manifests.

**systemd.**  One ``.service`` per process and one ``.target`` per supervisor, the top one
``WantedBy=multi-user.target``.  The mapping:

=================== ==================================================================
``restart``         ``Restart=always`` (permanent), ``on-failure`` (transient), ``no`` (temporary)
``backoff_initial`` ``RestartSec=`` (``RestartSteps=``/``RestartMaxDelaySec=`` need systemd 254)
``intensity``       ``StartLimitBurst=`` intensity + 1 (OTP's N restarts are N + 1 starts)
``period``          ``StartLimitIntervalSec=``
``ready``           ``Type=notify`` for ``notify``; ``Type=exec`` otherwise
``watchdog``        ``WatchdogSec=``
``grace``           ``TimeoutStopSec=`` (SIGTERM, then SIGKILL)
``ready_timeout``   ``TimeoutStartSec=``
``depends_on``      ``Requires=`` and ``After=``
strategy            ``rest_for_one`` and ``one_for_all``: ``PartOf=`` the sibling started before,
                    so stopping or restarting a child (systemctl) stops or restarts the ones after
                    it
=================== ==================================================================

systemd has no ``one_for_all``: nothing makes a unit's failure restart the siblings started
before it.  TCP and HTTP readiness have no systemd equivalent (units start ``Type=exec``).

**Kubernetes.**  A Deployment per permanent process (a Job per transient or temporary one: a
Deployment can only restart always), with a PodDisruptionBudget per Deployment.  Probes: an
``http`` readiness on a Buttress health endpoint (``.../health/ready``) gives the readiness probe
and, from the same health groups, the liveness (``/health/live``) and startup
(``/health/started``) probes; ``tcp`` gives TCP probes.  The startup probe allows
``ready_timeout``; ``terminationGracePeriodSeconds`` is the child's ``grace``, or the ``health:``
section's drain (delay + grace) when that is longer.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .options import SupervisorOptions
from .spec import ChildSpec, SupervisionSpec, walk

__all__ = ["kubernetes_manifests", "systemd_units"]


def _unit_name(path: tuple[str, ...], name: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9:_.\\-]", "_", p) for p in (*path, name))


def _seconds(value: float) -> str:
    """systemd time span: whole milliseconds, with a unit."""
    ms = round(value * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _quote(word: str) -> str:
    """One ExecStart= word: specifiers (``%``) and variables (``$``) doubled, quoted if needed."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not re.search(r"[\s\"'\\;]", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _executable(command: list[str]) -> list[str]:
    program = command[0]
    if not program.startswith("/"):
        program = shutil.which(program) or program
    return [program, *command[1:]]


def systemd_units(section: SupervisionSpec, base_dir: Path) -> dict[str, str]:
    """File name to contents: the units of the whole tree."""
    units: dict[str, str] = {}
    _supervisor_units(
        units,
        (),
        section.name,
        children=section.children,
        options=section.to_options(),
        base_dir=base_dir,
    )
    top = f"{section.name}.target"
    units[top] += "\n[Install]\nWantedBy=multi-user.target\n"
    return units


def _sibling_unit(path: tuple[str, ...], sibling: ChildSpec) -> str:
    suffix = ".target" if sibling.children is not None else ".service"
    return _unit_name(path, sibling.name) + suffix


def _supervisor_units(
    units: dict[str, str],
    path: tuple[str, ...],
    name: str,
    *,
    children: list[ChildSpec],
    options: SupervisorOptions,
    base_dir: Path,
    parent_lines: list[str] | tuple[str, ...] = (),
) -> None:
    own = (*path, name)
    target = _unit_name(path, name) + ".target"
    head = [f"Description=Supervisor {'/'.join(own)}", *parent_lines]
    head.append("Wants=" + " ".join(_sibling_unit(own, c) for c in children))
    units[target] = "\n".join(["[Unit]", *_unique(head), ""])
    siblings = {c.name: c for c in children}
    for i, c in enumerate(children):
        previous = _sibling_unit(own, children[i - 1]) if i else None
        if c.children is not None:
            sub = SupervisorOptions(**c.supervisor_options())
            parent = [f"PartOf={target}", *_ordering(own, c, siblings)]
            _supervisor_units(
                units,
                own,
                c.name,
                children=c.children,
                options=sub,
                base_dir=base_dir,
                parent_lines=parent,
            )
            continue
        lines = ["[Unit]", f"Description={'/'.join((*own, c.name))}", f"PartOf={target}"]
        lines += _ordering(own, c, siblings)
        if previous and options.strategy in ("rest_for_one", "one_for_all"):
            lines += [f"PartOf={previous}", f"After={previous}"]
        lines += [
            f"StartLimitIntervalSec={_seconds(options.period)}",
            f"StartLimitBurst={options.intensity + 1}",
            "",
            "[Service]",
            f"Type={'notify' if c.ready is not None and c.ready.notify else 'exec'}",
            "ExecStart=" + " ".join(_quote(w) for w in _executable(list(c.command or []))),
            f"WorkingDirectory={(base_dir / c.cwd) if c.cwd else base_dir}",
            "Restart="
            + {"permanent": "always", "transient": "on-failure", "temporary": "no"}[c.restart],
            f"RestartSec={_seconds(c.backoff_initial)}",
            f"TimeoutStartSec={_seconds(c.ready_timeout)}",
            f"TimeoutStopSec={_seconds(c.grace)}",
        ]
        if c.watchdog > 0:
            lines.append(f"WatchdogSec={_seconds(c.watchdog)}")
        for key, value in sorted(c.env.items()):
            lines.append("Environment=" + _quote(f"{key}={value}"))
        lines += ["", "[Install]", f"WantedBy={target}", ""]
        units[_unit_name(own, c.name) + ".service"] = "\n".join(_unique(lines))


def _ordering(own: tuple[str, ...], c: ChildSpec, siblings: dict[str, ChildSpec]) -> list[str]:
    """Requires= and After= for ``c``'s ``depends_on``."""
    lines = []
    for dep in c.depends_on:
        unit = _sibling_unit(own, siblings[dep])
        lines += [f"Requires={unit}", f"After={unit}"]
    return lines


def _unique(lines: list[str]) -> list[str]:
    """``lines`` without repeated settings (empty lines and section headers kept)."""
    seen: set[str] = set()
    out = []
    for line in lines:
        if "=" in line and line in seen:
            continue
        seen.add(line)
        out.append(line)
    return out


def _dns_name(path: tuple[str, ...], name: str) -> str:
    text = re.sub(r"[^a-z0-9-]", "-", "-".join((*path, name)).lower()).strip("-")
    return text[:63].rstrip("-") or "child"


def _action(check: Any) -> dict[str, Any]:
    """A probe's action from a ``ready:``/``liveness:`` check (tcp or http)."""
    if check.tcp is not None:
        return {"tcpSocket": {"port": check.tcp}}
    url = urlsplit(check.http)
    return {"httpGet": {"path": url.path or "/", "port": url.port or 80}}


def _probes(c: ChildSpec) -> dict[str, Any]:
    """readinessProbe, livenessProbe, startupProbe for the container, from ``ready:``."""
    own_liveness: dict[str, Any] = {}
    if c.liveness is not None:  # the child's own liveness check
        own_liveness = {
            **_action(c.liveness),
            "periodSeconds": max(1, math.ceil(c.liveness_period)),
            "failureThreshold": max(1, math.ceil(c.liveness_timeout / c.liveness_period)),
        }
    if c.ready is None or c.ready.notify:
        return {"livenessProbe": own_liveness} if own_liveness else {}
    action = _action(c.ready)
    paths = None
    if "httpGet" in action and action["httpGet"]["path"].endswith("/ready"):
        paths = (action["httpGet"]["path"], action["httpGet"]["port"])
    period = 5
    startup = {**action, "periodSeconds": 1, "failureThreshold": max(1, math.ceil(c.ready_timeout))}
    probes: dict[str, Any] = {
        "readinessProbe": {**action, "periodSeconds": period},
        "startupProbe": startup,
    }
    if own_liveness:
        probes["livenessProbe"] = own_liveness
    elif paths is not None:  # a Buttress health endpoint: its liveness and startup groups
        base, port = paths[0][: -len("/ready")], paths[1]
        probes["livenessProbe"] = {
            "httpGet": {"path": f"{base}/live", "port": port},
            "periodSeconds": period,
        }
        startup["httpGet"] = {"path": f"{base}/started", "port": port}
    return probes


def kubernetes_manifests(
    section: SupervisionSpec,
    *,
    image: str,
    namespace: str | None = None,
    drain_seconds: float = 0.0,
) -> list[dict[str, Any]]:
    """The manifests (as plain data) for every process of the tree."""
    out: list[dict[str, Any]] = []
    for path, c in walk(section.children, (section.name,)):
        if c.children is not None:
            continue
        name = _dns_name(path, c.name)
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": section.name}
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if namespace:
            meta["namespace"] = namespace
        container: dict[str, Any] = {
            "name": re.sub(r"[^a-z0-9-]", "-", c.name.lower()).strip("-")[:63] or "main",
            "image": image,
            "command": list(c.command or []),
            **_probes(c),
        }
        if c.env:
            container["env"] = [{"name": k, "value": v} for k, v in sorted(c.env.items())]
        grace = max(c.grace, drain_seconds)
        pod: dict[str, Any] = {
            "terminationGracePeriodSeconds": max(1, math.ceil(grace)),
            "containers": [container],
        }
        template = {"metadata": {"labels": labels}, "spec": pod}
        if c.restart == "permanent":
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": meta,
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": labels},
                        "template": template,
                    },
                }
            )
            out.append(
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": meta,
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
                }
            )
        else:
            pod["restartPolicy"] = "OnFailure" if c.restart == "transient" else "Never"
            limit = section.intensity if c.restart == "transient" else 0
            out.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": meta,
                    "spec": {"backoffLimit": limit, "template": template},
                }
            )
    return out
