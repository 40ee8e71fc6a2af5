"""Assessment speed: exact analysis of generated architectures from 50 to 500 components, its
growth curve and fitted exponent, against the time the Monte Carlo needs to reach +-10% on the
same model's unavailability.

Two generated shapes, both with 3 zones in one region, DNS and an identity provider as shared
domains, replicated services (2-3 replicas over the zones, some 2-of-3), active-passive datastores
and a few external dependencies at the bottom:

* ``wide``: a system that grows by adding services *and* journeys of the same shape: five layers,
  a journey entering at every top-layer service (10% of the components), each service calling two
  neighbours in the next layer (two hard, sometimes one soft).  The work per journey stays about
  the same, so an analysis linear in the size of its fault trees is linear in the components.
* ``deep``: five journeys over a graph whose depth grows as ``sqrt(n) / 2`` (4 layers at 50, 11 at
  500) with random fan-out: each journey's hard path grows from ~12 to ~210 components, so the
  fault trees to evaluate grow ~18x for 10x components.  Its curve is also fitted against that size
  (the sum over journeys of the components on each hard path), which an exact method cannot avoid
  touching.

The growth exponent ``b`` is the least-squares slope of ``log(time)`` on ``log(size)``: 1 is
linear, 2 quadratic.

    python benchmarks/bench_assess.py          # best of 5 rounds; Monte Carlo at 50 and 500
    python benchmarks/bench_assess.py --quick  # best of 2 rounds; Monte Carlo at 500 (deep)
"""

from __future__ import annotations

import math
import random
import sys
import time
from typing import Any

from buttress.assess.analysis import analyse
from buttress.assess.model import ArchitectureSpec
from buttress.assess.montecarlo import simulate
from buttress.assess.report import assess
from buttress.assess.system import System

SIZES = [50, 100, 200, 300, 400, 500]
ZONES = ["za", "zb", "zc"]


def _component(rng: random.Random, bottom: bool) -> dict[str, Any]:
    kind = "datastore" if bottom and rng.random() < 0.5 else "service"
    if bottom and rng.random() < 0.1:
        return {"kind": "external", "availability": 0.99995, "mttr": "30m"}
    replicas = rng.choice([2, 3, 3])
    c: dict[str, Any] = {
        "kind": kind,
        "replicas": replicas,
        "placement": rng.sample(ZONES, k=min(replicas, 3)),
        "mtbf": f"{rng.choice([500, 1000, 2000])}h",
        "mttr": f"{rng.choice([10, 20, 30, 60])}m",
        "detect": "2m",
    }
    if kind == "datastore":
        c["replicas"] = 2
        c["placement"] = rng.sample(ZONES, k=2)
        c["redundancy"] = {"mode": "active-passive", "coverage": 0.99}
    elif replicas == 3 and rng.random() < 0.3:
        c["redundancy"] = {"required": 2}
    if rng.random() < 0.05:
        c["shared"] = ["idp"]
    return c


def _domains() -> dict[str, Any]:
    domains: dict[str, Any] = {
        "region": {"kind": "region", "mtbf": "43800h", "mttr": "4h"},
        "dns": {"kind": "shared", "availability": 0.999995, "mttr": "20m"},
        "idp": {"kind": "shared", "mtbf": "8760h", "mttr": "30m"},
    }
    for z in ZONES:
        domains[z] = {"kind": "zone", "parent": "region", "mtbf": "8760h", "mttr": "1h"}
    return domains


def generate(n: int, seed: int = 1, shape: str = "deep") -> System:
    """A generated architecture of ``n`` components (see the module docstring for the shapes)."""
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(n)]
    if shape == "deep":
        layers = max(3, round(n**0.5 / 2))
        layer_of = {name: min(layers - 1, i * layers // n) for i, name in enumerate(names)}
    elif shape == "wide":
        cuts = [0.1, 0.3, 0.6, 0.85, 1.0]  # layer shares 10/20/30/25/15%
        layers = len(cuts)
        layer_of = {
            name: next(k for k, c in enumerate(cuts) if i < round(c * n))
            for i, name in enumerate(names)
        }
    else:
        raise ValueError(f"unknown shape {shape!r}")
    by_layer: dict[int, list[str]] = {}
    for name, lv in layer_of.items():
        by_layer.setdefault(lv, []).append(name)
    comps: dict[str, Any] = {}
    for name in names:
        lv = layer_of[name]
        bottom = lv == layers - 1
        c = _component(rng, bottom)
        comps[name] = c
        if bottom or c["kind"] == "external":
            continue
        below = by_layer[lv + 1]
        if shape == "deep":
            pool = below
        else:
            # Neighbours: services call the ones of their own area in the next layer.
            at = by_layer[lv].index(name) * len(below) // len(by_layer[lv])
            pool = below[max(0, at - 2) : at + 3]
        deps = dict.fromkeys(rng.sample(pool, k=min(2, len(pool))), "hard")
        if rng.random() < 0.3:
            deps.setdefault(rng.choice(pool), "soft")
        c["depends_on"] = deps
    comps[names[0]]["shared"] = ["dns"]
    entries = by_layer[0][:5] if shape == "deep" else by_layer[0]
    journeys = {f"j{i}": {"entry": e, "target": 0.999} for i, e in enumerate(entries)}
    arch = {"domains": _domains(), "components": comps, "journeys": journeys}
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def path_size(system: System) -> int:
    """Sum over journeys of the components on each journey's hard path (the fault-tree size)."""
    return sum(len(system.hard_closure(j.entry)) for j in system.journeys.values())


def exponent(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``log y`` on ``log x``: ``y ~ x^b``."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sxx


def _curve(shape: str, rounds: int) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Rows of the size curve of one shape, and the fitted exponents.

    Each round times every size once (availability only, then the full analysis), and each size
    keeps its best time over the rounds: interleaving spreads a busy machine's noise over all
    sizes instead of bending the curve.
    """
    systems = {n: generate(n, shape=shape) for n in SIZES}
    core = dict.fromkeys(SIZES, math.inf)
    full = dict.fromkeys(SIZES, math.inf)
    for _ in range(rounds):
        for n in SIZES:
            t = time.perf_counter()
            analyse(systems[n], cut_sets=False)
            core[n] = min(core[n], time.perf_counter() - t)
            t = time.perf_counter()
            analyse(systems[n], max_order=2)
            full[n] = min(full[n], time.perf_counter() - t)
    rows: list[dict[str, Any]] = []
    sizes = [float(path_size(systems[n])) for n in SIZES]
    for n, size in zip(SIZES, sizes, strict=True):
        rows.append(
            {
                "group": f"assess: exact analysis vs size ({shape})",
                "name": f"{n} components, {len(systems[n].journeys)} journeys",
                "value": full[n],
                "unit": "s",
                "baseline": n == SIZES[0],
                "lower_is_better": True,
                "note": f"{full[n] / n * 1e3:.2f} ms/component; availability only "
                f"{core[n] * 1e3:.1f} ms ({core[n] / n * 1e3:.2f} ms/component); hard paths "
                f"{size:.0f} components ({full[n] / size * 1e3:.2f} ms each)",
            }
        )
    ns = [float(n) for n in SIZES]
    fits = {
        "full vs components": exponent(ns, [full[n] for n in SIZES]),
        "availability only vs components": exponent(ns, [core[n] for n in SIZES]),
        "full vs hard-path size": exponent(sizes, [full[n] for n in SIZES]),
        "hard-path size vs components": exponent(ns, sizes),
    }
    return rows, fits


def _monte_carlo(n: int, shape: str, quick: bool, t_analysis: float) -> dict[str, Any]:
    """The Monte Carlo on the journey with the highest unavailability (the quickest to pin down)
    until its 95% interval is within +-10%; ``t_analysis`` is the exact analysis's best time."""
    system = generate(n, shape=shape)
    result = analyse(system, max_order=2)
    worst = max(result.journeys.values(), key=lambda j: j.unavailability)
    t0 = time.perf_counter()
    sim = simulate(
        result,
        seed=3,
        rel_precision=0.1,
        max_seconds=60 if quick else 240,
        journeys=[worst.name],
        batch=10,
    )[worst.name]
    t_mc = time.perf_counter() - t0
    return {
        "group": f"assess: exact vs Monte Carlo to +-10% ({shape}, {n} components)",
        "name": "Monte Carlo, one journey",
        "value": t_mc,
        "unit": "s",
        "baseline": False,
        "lower_is_better": True,
        "note": f"{sim.years:.0f} simulated years, {sim.outages} outages, "
        f"U={sim.unavailability:.3g} +- {sim.relative_half_width:.1%} (exact "
        f"{worst.unavailability:.3g}); the exact analysis of all {len(system.journeys)} "
        f"journeys takes {t_analysis / t_mc:.3f} of it",
    }


def _report(shape: str) -> list[dict[str, Any]]:
    """The whole ``buttress assess`` report (analysis, what-if recommendations re-evaluated
    exactly, risk registers, budgets, RTO/RPO) at every size, once each."""
    rows: list[dict[str, Any]] = []
    times: list[float] = []
    for n in SIZES:
        system = generate(n, shape=shape)
        t = time.perf_counter()
        report = assess(system)
        times.append(time.perf_counter() - t)
        rows.append(
            {
                "group": f"assess: whole report vs size ({shape})",
                "name": f"{n} components, {len(system.journeys)} journeys",
                "value": times[-1],
                "unit": "s",
                "baseline": n == SIZES[0],
                "lower_is_better": True,
                "note": f"{times[-1] / n * 1e3:.2f} ms/component; "
                f"{len(report['recommendations'])} recommendations",
            }
        )
    rows.append(
        {
            "group": "assess: growth exponent b (time ~ size^b)",
            "name": f"{shape}: whole report vs components",
            "value": exponent([float(n) for n in SIZES], times),
            "unit": "b",
            "baseline": False,
            "lower_is_better": True,
            "note": f"50..500 components, {len(SIZES)} sizes, one run each",
        }
    )
    return rows


def _cpu(fn: Any, rounds: int) -> float:
    """Best CPU time of ``rounds`` calls (CPU, not wall: the machine may be shared)."""
    best = math.inf
    for _ in range(rounds):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _report_ratio(shape: str, rounds: int) -> dict[str, Any]:
    """The whole report at 500 components against the exact analysis alone (issue: at most 3x;
    what-if changes are evaluated incrementally on the analysis's own BDD)."""
    system = generate(SIZES[-1], shape=shape)
    t_exact = _cpu(lambda: analyse(system, max_order=2), rounds)
    t_report = _cpu(lambda: assess(system), rounds)
    return {
        "group": "assess: whole report / exact analysis (500 components)",
        "name": shape,
        "value": t_report / t_exact,
        "unit": "x",
        "baseline": False,
        "lower_is_better": True,
        "note": f"report {t_report:.3f} s CPU, exact analysis {t_exact:.3f} s CPU "
        f"(best of {rounds})",
    }


def _rare_speedup(rounds: int) -> list[dict[str, Any]]:
    """Plain Monte Carlo against importance sampling, each to +-10%, on a pair whose
    unavailability is ~1e-4 (issue: at most a tenth of the time)."""
    from buttress.assess.model import ArchitectureSpec

    pair = {"components": {"a": {"mtbf": "2400h", "mttr": "24h", "replicas": 2}}}
    result = analyse(System.from_spec(ArchitectureSpec.model_validate(pair)))
    times = {}
    for importance in (False, True):
        t = time.process_time()
        for seed in range(rounds):
            simulate(result, seed=seed, rel_precision=0.1, importance=importance)
        times[importance] = (time.process_time() - t) / rounds
    return [
        {
            "group": "assess: Monte Carlo to +-10% at U ~ 1e-4 (pair, MTBF 2400h, MTTR 24h)",
            "name": "importance sampling" if importance else "plain",
            "value": t,
            "unit": "s",
            "baseline": not importance,
            "lower_is_better": True,
            "note": f"CPU, mean of {rounds} seeds"
            + (f"; speed-up {times[False] / t:.1f}x" if importance else ""),
        }
        for importance, t in times.items()
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """The curves of both shapes with their exponents, and the Monte Carlo beside them: in quick
    mode at 500 components of the deep shape only (the wide shape's rarest journey needs about a
    minute of simulation), otherwise at 50 and 500 components of both, and then the whole
    report's curve too."""
    rounds = 2 if quick else 5
    rows: list[dict[str, Any]] = _rare_speedup(3 if quick else 10)
    for shape in ("wide", "deep"):
        curve, fits = _curve(shape, rounds)
        rows.extend(curve)
        if shape == "wide":
            rows.append(
                {
                    "group": "assess: growth exponent b (time ~ size^b)",
                    "name": "linear",
                    "value": 1.0,
                    "unit": "b",
                    "baseline": True,
                    "lower_is_better": True,
                    "note": "reference",
                }
            )
        for what, b in fits.items():
            rows.append(
                {
                    "group": "assess: growth exponent b (time ~ size^b)",
                    "name": f"{shape}: {what}",
                    "value": b,
                    "unit": "b",
                    "baseline": False,
                    "lower_is_better": True,
                    "note": f"50..500 components, {len(SIZES)} sizes",
                }
            )
        mc_sizes = ([SIZES[-1]] if shape == "deep" else []) if quick else [SIZES[0], SIZES[-1]]
        for n in mc_sizes:
            exact = next(r for r in curve if r["name"].startswith(f"{n} components"))
            row = _monte_carlo(n, shape, quick, exact["value"])
            rows.append(
                {
                    **exact,
                    "group": row["group"],
                    "name": "exact analysis, every journey (BDD + cut sets to order 2)",
                    "baseline": True,
                }
            )
            rows.append(row)
        rows.append(_report_ratio(shape, rounds))
        if not quick:
            rows.extend(_report(shape))
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['group']:52} {row['name']:44} {row['value']:10.4f} {row['unit']:2}  "
            f"{row.get('note', '')}"
        )
