"""A first ``architecture:`` model from a Docker Compose file or a folder of Kubernetes manifests.

``buttress assess --from compose.yaml`` (or ``--from k8s/``) reads what the deployment says and
guesses the rest, listing every guess as an *assumption* in the report so the user knows which
figures to refine (``--emit-model OUT`` writes the model to start from).

Docker Compose (a mapping with ``services:``)
    Each service is a component: ``deploy.replicas`` (default 1), ``depends_on`` as hard
    dependencies, a ``healthcheck`` as the detection time (``interval x retries``), a ``restart``
    policy as a short MTTR (a restart, 2 minutes; none: an hour, by hand).  Images of known
    datastores (postgres, mysql, mongo, redis, ...) make datastores, of brokers (kafka, rabbitmq,
    nats) queues.  Services publishing ``ports`` are the journeys' entries.

Kubernetes (documents with ``apiVersion`` and ``kind``; a file or every ``.yaml``/``.yml`` of a
folder)
    Deployments, StatefulSets (datastores) and DaemonSets are components with ``spec.replicas``.
    A readiness or liveness probe gives the detection time (``periodSeconds x
    failureThreshold``).  A PodDisruptionBudget whose selector matches the pods gives ``required``
    (``minAvailable``, or ``replicas - maxUnavailable``; percentages of the replicas rounded up as
    Kubernetes does).  A topology spread constraint (or pod anti-affinity) on
    ``topology.kubernetes.io/zone`` spreads the replicas over three zones of one region (over
    the zones a node selector or required node affinity names, by their names, when it does);
    pinned to one zone, they are placed there; otherwise in one zone, since nothing keeps them
    apart.  A container
    environment value naming another workload's Service (``db:5432``, ``http://api``) is a hard
    dependency.  Ingress backends are the journeys' entries (else LoadBalancer and NodePort
    Services).

Unknown figures (unit availability 99.9%, MTTR, zones) are the defaults, flagged as assumptions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from buttress.errors import SpecError
from buttress.spec.source import Document, load_yaml_documents
from buttress.spec.types import parse_duration

__all__ = ["Imported", "import_architecture", "model_yaml"]

DATASTORES = ("postgres", "mysql", "mariadb", "mongo", "redis", "cassandra", "elasticsearch")
QUEUES = ("kafka", "rabbitmq", "nats", "pulsar", "activemq")
ZONE_KEY = "topology.kubernetes.io/zone"
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass
class Imported:
    """The model built (an ``architecture:`` mapping) and the assumptions made building it."""

    source: str
    kind: str  # "compose" | "kubernetes"
    architecture: dict[str, Any]
    assumptions: list[str] = field(default_factory=list)


def import_architecture(path: str | Path) -> Imported:
    """Build a first model from the Compose file or Kubernetes manifests at ``path``.

    Raises :class:`~buttress.errors.SpecError` (file, line, field) when ``path`` is neither."""
    p = Path(path)
    try:
        if p.is_dir():
            files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not files:
                raise SpecError("no .yaml or .yml manifests in this folder", file=str(p))
            return _kubernetes(str(p), [d for f in files for d in load_yaml_documents(f)])
        docs = load_yaml_documents(p)
        first = docs[0] if docs else Document(str(p), None)
        if len(docs) == 1 and isinstance(first.data, dict) and "services" in first.data:
            return _compose(first)
        if docs and all(isinstance(d.data, dict) and "kind" in d.data for d in docs):
            return _kubernetes(str(p), docs)
    except SpecError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        # A field of an unexpected shape deep in a manifest: one line, not a traceback.
        raise SpecError(f"cannot read a field of this deployment: {e}", file=str(p)) from None
    raise SpecError(
        "neither a Docker Compose file (a mapping with services:) nor Kubernetes manifests "
        "(documents with apiVersion: and kind:)",
        file=str(p),
        line=1,
    )


def _kind_of(image: str) -> str:
    name = image.lower()
    if any(d in name for d in DATASTORES):
        return "datastore"
    if any(q in name for q in QUEUES):
        return "queue"
    return "service"


def _seconds(value: Any, default: float) -> float:
    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


def _compose(doc: Document) -> Imported:
    data = doc.data
    services = data["services"]
    if not isinstance(services, dict) or not services:
        raise doc.error(("services",), "services: must be a mapping of service names")
    out = Imported(doc.file, "compose", {"components": {}, "journeys": {}})
    comps: dict[str, Any] = out.architecture["components"]
    for name, svc in services.items():
        if not isinstance(svc, dict):
            raise doc.error(("services", name), "a service must be a mapping")
        comp: dict[str, Any] = {"kind": _kind_of(str(svc.get("image", name)))}
        deploy = svc.get("deploy") or {}
        replicas = deploy.get("replicas") if isinstance(deploy, dict) else None
        if isinstance(replicas, int) and replicas >= 1:
            comp["replicas"] = replicas
        deps = svc.get("depends_on") or []
        names = list(deps) if isinstance(deps, dict | list) else []
        comp["depends_on"] = {str(d): "hard" for d in names if str(d) in services}
        check = svc.get("healthcheck")
        if isinstance(check, dict) and not check.get("disable"):
            every = _seconds(check.get("interval"), 30.0)
            comp["detect"] = every * int(check.get("retries", 3))
        else:
            out.assumptions.append(f"{name}: no healthcheck; failures detected in 5m (default)")
        restart = str(svc.get("restart", "no"))
        if restart in ("always", "unless-stopped", "on-failure"):
            comp["mttr"] = max(120.0, comp.get("detect", 0.0) + 60.0)
            why = f"restart: {restart}"
        else:
            comp["mttr"] = 3600.0
            why = "no restart policy: restarted by hand"
        comp["availability"] = 0.999
        out.assumptions.append(
            f"{name}: unit availability 99.9% and MTTR {comp['mttr'] / 60:.0f}m ({why}) assumed"
        )
        if svc.get("ports"):
            out.architecture["journeys"][name] = {"entry": name}
        comps[str(name)] = comp
    if not out.architecture["journeys"]:
        del out.architecture["journeys"]
    return out


# -- Kubernetes ----------------------------------------------------------------------------------


@dataclass
class _Workload:
    name: str
    kind: str
    replicas: int
    labels: dict[str, str]
    pod: dict[str, Any]
    doc: Document


def _matches(selector: Any, labels: dict[str, str]) -> bool:
    if not isinstance(selector, dict):
        return False
    wanted = selector.get("matchLabels", selector) if "matchLabels" in selector else selector
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _probe_detect(pod: dict[str, Any]) -> float | None:
    best: float | None = None
    for c in pod.get("containers") or []:
        for key in ("readinessProbe", "livenessProbe"):
            probe = c.get(key) if isinstance(c, dict) else None
            if isinstance(probe, dict):
                t = float(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))
                best = t if best is None else min(best, t)
    return best


def _spread_by_zone(pod: dict[str, Any]) -> bool:
    for c in pod.get("topologySpreadConstraints") or []:
        if isinstance(c, dict) and c.get("topologyKey") == ZONE_KEY:
            return True
    anti = (
        ((pod.get("affinity") or {}).get("podAntiAffinity") or {}) if isinstance(pod, dict) else {}
    )
    terms = [
        *(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []),
        *(
            t.get("podAffinityTerm", {})
            for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []
        ),
    ]
    return any(isinstance(t, dict) and t.get("topologyKey") == ZONE_KEY for t in terms)


def _pinned_zones(pod: dict[str, Any]) -> list[str]:
    """Zones the pods are pinned to by ``nodeSelector`` or a required node affinity on
    ``topology.kubernetes.io/zone`` (their real names), else ``[]``."""
    selector = pod.get("nodeSelector") or {}
    if isinstance(selector, dict) and isinstance(selector.get(ZONE_KEY), str):
        return [selector[ZONE_KEY]]
    node = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in node.get("nodeSelectorTerms") or []:
        for expr in (term or {}).get("matchExpressions") or []:
            if expr.get("key") == ZONE_KEY and expr.get("operator") == "In":
                return [str(v) for v in expr.get("values") or []]
    return []


def _required(pdb: dict[str, Any], replicas: int) -> int:
    spec = pdb.get("spec") or {}

    def count(v: Any) -> int:
        if isinstance(v, str) and v.endswith("%"):
            return math.ceil(replicas * float(v[:-1]) / 100)
        return int(v)

    if "minAvailable" in spec:
        need = count(spec["minAvailable"])
    else:
        need = replicas - count(spec.get("maxUnavailable", 1))
    return max(1, min(replicas, need))


def _workloads(docs: list[Document]) -> list[_Workload]:
    out = []
    for doc in docs:
        d = doc.data
        kind = d.get("kind")
        if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        meta = d.get("metadata") or {}
        spec = d.get("spec") or {}
        template = spec.get("template") or {}
        name = meta.get("name")
        if not isinstance(name, str):
            raise doc.error(("metadata",), f"a {kind} needs metadata.name")
        # A DaemonSet runs on every node: three nodes assumed (flagged below).
        replicas = spec.get("replicas", 1 if kind != "DaemonSet" else 3)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise doc.error(("spec", "replicas"), f"replicas must be a count, got {replicas!r}")
        labels = (template.get("metadata") or {}).get("labels") or {}
        out.append(_Workload(name, kind, max(1, replicas), labels, template.get("spec") or {}, doc))
    return out


def _kubernetes(source: str, docs: list[Document]) -> Imported:
    for doc in docs:
        if not isinstance(doc.data, dict) or "kind" not in doc.data:
            raise doc.error((), "a Kubernetes manifest needs apiVersion: and kind:")
    loads = _workloads(docs)
    if not loads:
        raise SpecError(
            "no Deployment, StatefulSet or DaemonSet among these manifests", file=source, line=1
        )
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(str(doc.data["kind"]), []).append(doc.data)
    # Service name -> workload it selects.
    service_of: dict[str, str] = {}
    exposed: list[str] = []
    for svc in by_kind.get("Service", []):
        sel = (svc.get("spec") or {}).get("selector") or {}
        for w in loads:
            if sel and all(w.labels.get(k) == v for k, v in sel.items()):
                sname = (svc.get("metadata") or {}).get("name", w.name)
                service_of[str(sname)] = w.name
                if (svc.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort"):
                    exposed.append(w.name)
    out = Imported(source, "kubernetes", {"domains": {}, "components": {}})
    arch = out.architecture
    spread_any = False
    named: set[str] = set()
    for w in loads:
        comp: dict[str, Any] = {
            "kind": "datastore" if w.kind == "StatefulSet" else "service",
            "replicas": w.replicas,
            "availability": 0.999,
        }
        detect = _probe_detect(w.pod)
        if detect is not None:
            comp["detect"] = detect
        else:
            out.assumptions.append(f"{w.name}: no probes; failures detected in 5m (default)")
        for pdb in by_kind.get("PodDisruptionBudget", []):
            if _matches((pdb.get("spec") or {}).get("selector"), w.labels) and w.replicas > 1:
                comp["redundancy"] = {"required": _required(pdb, w.replicas)}
        pinned = _pinned_zones(w.pod)
        if pinned and (len(pinned) == 1 or _spread_by_zone(w.pod)):
            comp["placement"] = pinned[: w.replicas]
            named.update(pinned)
        elif _spread_by_zone(w.pod):
            spread_any = True
            comp["placement"] = list(ZONES[: min(3, w.replicas)])
        else:
            comp["placement"] = [ZONES[0]]
            if w.replicas > 1:
                out.assumptions.append(
                    f"{w.name}: no zone spread constraint, so its {w.replicas} replicas are "
                    f"modelled in one zone (add topologySpreadConstraints on {ZONE_KEY})"
                )
        deps = _env_deps(w, service_of)
        if deps:
            comp["depends_on"] = dict.fromkeys(deps, "hard")
            out.assumptions.append(
                f"{w.name}: hard dependencies {', '.join(deps)} read from its environment"
            )
        arch["components"][w.name] = comp
        out.assumptions.append(f"{w.name}: unit availability 99.9% and MTTR 1h assumed")
        if w.kind == "DaemonSet":
            out.assumptions.append(f"{w.name}: a DaemonSet, modelled as 3 replicas (3 nodes)")
    arch["domains"] = {"region": {"kind": "region", "availability": 0.9999}}
    used = {z for c in arch["components"].values() for z in c.get("placement", [])}
    zones = [*(ZONES if spread_any else ZONES[:1]), *sorted(named)]
    for z in dict.fromkeys(zones):
        if z in used or z in ZONES[:1]:
            arch["domains"][z] = {"kind": "zone", "parent": "region", "availability": 0.9995}
    out.assumptions.append("zones: 99.95% each, in one region at 99.99% (assumed)")
    entries = _ingress_entries(by_kind.get("Ingress", []), service_of) or exposed
    if entries:
        arch["journeys"] = {e: {"entry": e} for e in dict.fromkeys(entries)}
    return out


def _env_deps(w: _Workload, service_of: dict[str, str]) -> list[str]:
    text = " ".join(
        str(e.get("value", ""))
        for c in w.pod.get("containers") or []
        if isinstance(c, dict)
        for e in c.get("env") or []
        if isinstance(e, dict)
    )
    tokens = set(re.findall(r"[a-z0-9][a-z0-9-]*", text.lower()))
    return sorted(
        {target for sname, target in service_of.items() if sname in tokens and target != w.name}
    )


def _ingress_entries(ingresses: list[dict[str, Any]], service_of: dict[str, str]) -> list[str]:
    out = []
    for ing in ingresses:
        spec = ing.get("spec") or {}
        backends = [spec.get("defaultBackend")]
        for rule in spec.get("rules") or []:
            for p in ((rule or {}).get("http") or {}).get("paths") or []:
                backends.append((p or {}).get("backend"))
        for b in backends:
            name = ((b or {}).get("service") or {}).get("name") if isinstance(b, dict) else None
            if name in service_of:
                out.append(service_of[name])
    return out


def model_yaml(imported: Imported) -> str:
    """The imported model as a ``reliability.yaml`` to refine, its assumptions as comments."""
    import yaml

    head = [f"# First model imported from {imported.source} ({imported.kind}) by buttress."]
    head += ["# Assumptions to check and refine:"]
    head += [f"#   - {a}" for a in imported.assumptions]
    body = yaml.safe_dump({"architecture": imported.architecture}, sort_keys=False)
    return "\n".join(head) + "\n" + body
