"""The tenants of a multi-tenant system: who was served, who noticed a fault, how fairly.

With ``experiments.hypotheses.tenants`` (model: :mod:`buttress.lab.system.tenancy`) each request
kind the system's placement names is a *tenant*; the placement (``{tenant: [instances]}``) is
read from the system once the run is over.  The tenants targeted by a ``noisy`` burst are the
noisy ones; the others are *well-behaved*.

**Windows.**  A fault's window is the lab's (:mod:`buttress.lab.system.run`): from its application
to its removal plus the client timeout, and at most until the next fault begins.  ``run`` is the
whole run.

**Per tenant and window**: ``sent`` (requests scheduled in the window), ``served`` (answered with a
status below 400 within the timeout), ``throttled`` (429: the tenant over its contract, good for
its SLO but not served), ``bad`` (no answer in time, a refused connection or a 5xx: what an SLO
counts against the tenant).

**Fairness** is Jain's index (R. Jain, D. Chiu and W. Hawe, *A Quantitative Measure of Fairness
and Discrimination for Resource Allocation in Shared Computer Systems*, DEC TR-301, 1984) of the
well-behaved tenants' served shares ``x_t = served_t / sent_t``:
``J = (sum x_t)^2 / (n * sum x_t^2)``, 1 when every tenant got the same share of its demand
served, ``k / n`` when ``k`` tenants got everything and the others nothing.  Normalising by each
tenant's demand compares tenants of different sizes (Jain's *normalised allocations*).

**Hypotheses.**

* *noisy* (runs of ``judged``): during each noisy burst, every other tenant has at most
  ``tolerance`` bad requests;
* *shard failures* (every run: a property of the placement, policies or not): during a fault that
  makes instance ``i`` fail, the tenants ``i`` does not serve have at most ``tolerance`` bad
  requests, and each tenant it serves at most its shard's share of its requests, ``p = 1 / s``
  with ``s`` the instances serving it, plus binomial noise: ``bad <= n p + 3 sqrt(n p (1 - p)) +
  1`` for ``n`` sent;
* *fairness* (runs of ``judged``): Jain's index at least ``fairness`` over the run and during
  each fault.

A hypothesis that failed in a run whose load driver was starved is inconclusive instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from buttress.failover.shuffle import overlap_odds

from .driver import unless_starved
from .spec import MODE_NAMES, instance_names

if TYPE_CHECKING:
    from .driver import Sample
    from .load import LoadedLab

__all__ = [
    "add_tenant_figures",
    "jain_index",
    "read_placement",
    "share_bound",
    "tenant_figures",
    "tenant_hypotheses",
    "tenant_rows",
    "tenant_sentences",
]


def jain_index(shares: Sequence[float]) -> float | None:
    """Jain's fairness index of ``shares`` (``None`` for none; 1.0 when all are 0)."""
    if not shares:
        return None
    square = sum(x * x for x in shares)
    if square == 0:
        return 1.0
    return sum(shares) ** 2 / (len(shares) * square)


def share_bound(sent: int, share: float) -> float:
    """The most bad requests of ``sent`` consistent with losing ``share`` of them: the mean plus
    three binomial standard deviations, plus one."""
    return sent * share + 3 * math.sqrt(sent * share * (1 - share)) + 1


def read_placement(
    lab: LoadedLab,
    ports: Mapping[str, int],
    instances: Mapping[str, list[str]],
    log: Callable[[str], None],
) -> dict[str, list[str]] | None:
    """``GET <placement service><path>`` (its first instance, at ``ports[instance]``) ->
    ``{tenant: [instances]}``; ``None`` without tenant hypotheses, and (with a message) when the
    service cannot tell."""
    spec = lab.experiments.hypotheses.tenants
    if spec is None:
        return None
    port = ports[instances[spec.placement.service][0]]
    try:
        with httpx.Client(timeout=10.0) as c:
            r = c.get(f"http://127.0.0.1:{port}{spec.placement.path}")
            r.raise_for_status()
            answer = r.json()[spec.placement.field]
        return {str(t): [str(i) for i in instances] for t, instances in answer.items()}
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
        log(f"placement not read from {spec.placement.service}: {e!r}")
        return None


def _windows(faults: Sequence[Mapping[str, Any]], timeout: float) -> dict[str, tuple[float, float]]:
    starts = sorted(float(f["applied_at"]) for f in faults if f.get("applied_at") is not None)
    out: dict[str, tuple[float, float]] = {"run": (0.0, math.inf)}
    for f in faults:
        if f.get("applied_at") is None:
            continue
        lo = float(f["applied_at"])
        end = f.get("removed_at")
        hi = (math.inf if end is None else float(end)) + timeout
        out[str(f["name"])] = (lo, min([hi, *(t for t in starts if t > lo)]))
    return out


def _counts(samples: Sequence[Sample], lo: float, hi: float) -> dict[str, int]:
    window = [s for s in samples if lo <= s.start < hi]
    return {
        "sent": len(window),
        "served": sum(1 for s in window if s.good and s.status < 400),
        "throttled": sum(1 for s in window if s.status == 429),
        "bad": sum(1 for s in window if not s.good),
    }


def tenant_figures(
    lab: LoadedLab,
    samples: Sequence[Sample],
    faults: Sequence[Mapping[str, Any]],
    placement: Mapping[str, list[str]],
) -> dict[str, Any]:
    """One run's tenant figures (see the module docstring)."""
    exp = lab.experiments
    spec = exp.hypotheses.tenants
    assert spec is not None
    plan = {f.name: f for f in exp.plan}
    tenants = [t for t in exp.load.requests if t in placement]
    noisy = {plan[n].target for n in spec.noisy}
    behaved = [t for t in tenants if t not in noisy]
    by_kind: dict[str, list[Sample]] = {t: [] for t in tenants}
    for s in samples:
        if s.kind in by_kind:
            by_kind[s.kind].append(s)
    windows = _windows(faults, exp.load.timeout)
    counts = {
        w: {t: _counts(by_kind[t], lo, hi) for t in tenants} for w, (lo, hi) in windows.items()
    }
    fairness = {
        w: jain_index([c[t]["served"] / c[t]["sent"] for t in behaved if c[t]["sent"]])
        for w, c in counts.items()
    }
    overlap = {
        n: {
            t: sorted(set(placement[t]) & set(placement[plan[n].target]))
            for t in tenants
            if t != plan[n].target and plan[n].target in placement
        }
        for n in spec.noisy
    }
    shards = {
        n: {
            "instance": plan[n].target,
            "serves": [t for t in tenants if plan[n].target in placement[t]],
        }
        for n in spec.shard_failures
    }
    used = {i for t in tenants for i in placement[t]}
    fleet = next(
        (
            len(names)
            for names in (instance_names(n, svc) for n, svc in exp.system.items())
            if used and used <= set(names)
        ),
        len(used),
    )
    return {
        "placement": {t: placement[t] for t in tenants},
        "fleet": fleet,
        "well_behaved": behaved,
        "noisy": {n: {"tenant": plan[n].target, "shares": overlap[n]} for n in spec.noisy},
        "shard_failures": shards,
        "counts": counts,
        "fairness": fairness,
    }


def add_tenant_figures(
    lab: LoadedLab,
    result: dict[str, Any],
    samples: Sequence[Sample],
    placement: Mapping[str, list[str]] | None,
) -> None:
    """``result["tenants"]``: :func:`tenant_figures` of a run (its ``faults`` already in
    ``result``); nothing without a placement."""
    if placement is not None:
        result["tenants"] = tenant_figures(lab, samples, result["faults"], placement)


def _bad_list(counts: Mapping[str, Mapping[str, int]], tenants: Sequence[str]) -> str:
    return ", ".join(f"{t} {counts[t]['bad']}/{counts[t]['sent']}" for t in tenants) or "none"


def tenant_hypotheses(
    lab: LoadedLab, runs: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The ``hypotheses.tenants`` checks, per run (nothing for a run without its figures)."""
    spec = lab.experiments.hypotheses.tenants
    if spec is None:
        return []
    out: list[dict[str, Any]] = []
    for mode, run in runs.items():
        fig = run.get("tenants")
        if fig is None:
            continue
        with_ = f"with {MODE_NAMES.get(mode, mode)}" if mode != "off" else "with policies off"
        for name, noisy in fig["noisy"].items():
            if mode not in spec.judged:
                continue
            counts = fig["counts"].get(name, {})
            others = [t for t in fig["placement"] if t != noisy["tenant"] and t in counts]
            worst = max((counts[t]["bad"] for t in others), default=0)
            h = {
                "hypothesis": f"no other tenant notices {name} ({noisy['tenant']}) {with_}",
                "mode": mode,
                "expected": f"at most {spec.tolerance} bad request(s) per other tenant",
                "observed": f"bad/sent: {_bad_list(counts, others)}",
                "passed": worst <= spec.tolerance,
            }
            out.append(unless_starved(h, {mode: run}))
        for name, failure in fig["shard_failures"].items():
            out.extend(
                _shard_hypotheses(
                    name, failure, fig, run, with_=with_, mode=mode, tolerance=spec.tolerance
                )
            )
        if spec.fairness is not None and mode in spec.judged:
            least = min((j for j in fig["fairness"].values() if j is not None), default=None)
            h = {
                "hypothesis": f"Jain's fairness index of the well-behaved tenants at least "
                f"{spec.fairness:g} over the run and during each fault {with_}",
                "mode": mode,
                "expected": f">= {spec.fairness:g}",
                "observed": ", ".join(
                    f"{w} {'-' if j is None else f'{j:.3f}'}" for w, j in fig["fairness"].items()
                ),
                "passed": least is None or least >= spec.fairness,
            }
            out.append(unless_starved(h, {mode: run}))
    return out


def _shard_hypotheses(
    name: str,
    failure: Mapping[str, Any],
    fig: Mapping[str, Any],
    run: Mapping[str, Any],
    *,
    with_: str,
    mode: str,
    tolerance: int,
) -> list[dict[str, Any]]:
    counts = fig["counts"].get(name, {})
    instance, serves = failure["instance"], failure["serves"]
    spared = [t for t in fig["placement"] if t not in serves and t in counts]
    worst = max((counts[t]["bad"] for t in spared), default=0)
    within = []
    for t in serves:
        if t not in counts:
            continue
        share = 1 / len(fig["placement"][t])
        c = counts[t]
        within.append(c["bad"] <= share_bound(c["sent"], share))
    shares = ", ".join(
        f"{t} {counts[t]['bad']}/{counts[t]['sent']} (share 1/{len(fig['placement'][t])})"
        for t in serves
        if t in counts
    )
    return [
        unless_starved(
            {
                "hypothesis": f"tenants {instance} does not serve untouched by {name} {with_}",
                "mode": mode,
                "expected": f"at most {tolerance} bad request(s) each",
                "observed": f"bad/sent: {_bad_list(counts, spared)}",
                "passed": worst <= tolerance,
            },
            {mode: run},
        ),
        unless_starved(
            {
                "hypothesis": f"tenants {instance} serves lose at most their shard's share "
                f"during {name} {with_}",
                "mode": mode,
                "expected": "bad <= sent / shard size + 3 sd + 1",
                "observed": f"bad/sent: {shares or 'no tenant on it'}",
                "passed": all(within),
            },
            {mode: run},
        ),
    ]


def tenant_rows(
    runs: Mapping[str, Mapping[str, Any]], modes: Sequence[str]
) -> list[tuple[str, ...]]:
    """Side-by-side rows: each well-behaved tenant's bad requests during each fault, what became
    of each noisy tenant's burst, and Jain's fairness index over the run and during each
    fault."""
    figs = [runs[m].get("tenants") for m in modes]
    if any(f is None for f in figs):
        return []
    first = figs[0]
    assert first is not None
    out: list[tuple[str, ...]] = []
    for w in first["counts"]:
        if w == "run":
            continue
        note = _near(first, w)
        for t in first["well_behaved"]:
            cells = [f"{f['counts'][w][t]['bad']} / {f['counts'][w][t]['sent']}" for f in figs if f]
            out.append((f"{t} bad / sent during {w}{note.get(t, '')}", *cells))
        noisy = first["noisy"].get(w)
        if noisy is not None:  # what became of the flood: served, throttled (429), failed
            t = noisy["tenant"]
            cells = [_fates(f["counts"][w][t]) for f in figs if f]
            out.append((f"{t} served / throttled / bad of sent during {w}", *cells))
    for w in first["fairness"]:
        label = "Jain's fairness index (well-behaved tenants)" if w == "run" else f"  during {w}"
        out.append((label, *(_jain(f["fairness"].get(w)) for f in figs if f)))
    return out


def _fates(c: Mapping[str, int]) -> str:
    return f"{c['served']} / {c['throttled']} / {c['bad']} of {c['sent']}"


def _jain(j: float | None) -> str:
    return "-" if j is None else f"{j:.3f}"


def _near(fig: Mapping[str, Any], window: str) -> dict[str, str]:
    """``{tenant: " (shares backend-4)"}`` for the tenants a fault's target concerns."""
    if window in fig["noisy"]:
        return {
            t: f" (shares {', '.join(s)})" for t, s in fig["noisy"][window]["shares"].items() if s
        }
    if window in fig["shard_failures"]:
        f = fig["shard_failures"][window]
        return dict.fromkeys(f["serves"], f" (on {f['instance']})")
    return {}


def tenant_sentences(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The placement, and each noisy tenant's neighbours against the shuffle-sharding odds."""
    fig = next((r["tenants"] for r in runs.values() if r.get("tenants")), None)
    if fig is None:
        return []
    placement: dict[str, list[str]] = fig["placement"]
    out = [
        "Placement: "
        + "; ".join(f"{t} on {' + '.join(instances)}" for t, instances in placement.items())
        + "."
    ]
    for name, noisy in fig["noisy"].items():
        size = len(placement.get(noisy["tenant"], []))
        shares: dict[str, list[str]] = noisy["shares"]
        if not size or any(len(v) != size for v in placement.values()):
            continue
        n = max(int(fig["fleet"]), size)  # every instance of the sharded service
        odds = overlap_odds(n, size)
        some = [t for t, s in shares.items() if 0 < len(s) < size]
        full = [t for t, s in shares.items() if len(s) == size]
        out.append(
            f"During {name}, {noisy['tenant']}'s shard ({' + '.join(placement[noisy['tenant']])}) "
            f"is shared in part by {', '.join(some) or 'no tenant'} and entirely by "
            f"{', '.join(full) or 'no tenant'}: {len(some)} and {len(full)} of {len(shares)}, "
            f"where shards of {size} of {n} give each tenant {1 - odds[0]:.1%} odds of some "
            f"overlap and {odds[-1]:.1%} (1 in {math.comb(n, size)}) of sharing the whole shard."
        )
    return out
