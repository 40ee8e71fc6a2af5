"""Assessment speed: exact analysis of generated architectures (50 to 500 components) against the
time the Monte Carlo needs to reach +-10% on the same model's unavailability.

    python benchmarks/bench_assess.py          # full curve
    python benchmarks/bench_assess.py --quick  # 50 and 500 components, a lighter simulation
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from buttress.assess.analysis import analyse
from buttress.assess.model import ArchitectureSpec
from buttress.assess.montecarlo import simulate
from buttress.assess.system import System


def generate(n: int, seed: int = 1) -> System:
    """A layered service graph: 3 zones in one region, DNS and identity as shared domains,
    replicated services (2-3 replicas over the zones, some 2-of-3), active-passive datastores at
    the bottom, a few external dependencies, five journeys entering at the top layer."""
    rng = random.Random(seed)
    zones = ["za", "zb", "zc"]
    domains: dict[str, Any] = {
        "region": {"kind": "region", "mtbf": "43800h", "mttr": "4h"},
        "dns": {"kind": "shared", "availability": 0.999995, "mttr": "20m"},
        "idp": {"kind": "shared", "mtbf": "8760h", "mttr": "30m"},
    }
    for z in zones:
        domains[z] = {"kind": "zone", "parent": "region", "mtbf": "8760h", "mttr": "1h"}
    layers = max(3, round(n**0.5 / 2))
    names = [f"c{i}" for i in range(n)]
    layer_of = {name: min(layers - 1, i * layers // n) for i, name in enumerate(names)}
    by_layer: dict[int, list[str]] = {}
    for name, lv in layer_of.items():
        by_layer.setdefault(lv, []).append(name)
    comps: dict[str, Any] = {}
    for name in names:
        lv = layer_of[name]
        bottom = lv == layers - 1
        kind = "datastore" if bottom and rng.random() < 0.5 else "service"
        if bottom and rng.random() < 0.1:
            comps[name] = {"kind": "external", "availability": 0.99995, "mttr": "30m"}
            continue
        replicas = rng.choice([2, 3, 3])
        c: dict[str, Any] = {
            "kind": kind,
            "replicas": replicas,
            "placement": rng.sample(zones, k=min(replicas, 3)),
            "mtbf": f"{rng.choice([500, 1000, 2000])}h",
            "mttr": f"{rng.choice([10, 20, 30, 60])}m",
            "detect": "2m",
        }
        if kind == "datastore":
            c["replicas"] = 2
            c["placement"] = rng.sample(zones, k=2)
            c["redundancy"] = {"mode": "active-passive", "coverage": 0.99}
        elif replicas == 3 and rng.random() < 0.3:
            c["redundancy"] = {"required": 2}
        if rng.random() < 0.05:
            c["shared"] = ["idp"]
        if not bottom:
            below = by_layer[lv + 1]
            deps = dict.fromkeys(rng.sample(below, k=min(2, len(below))), "hard")
            if rng.random() < 0.3:
                deps[rng.choice(below)] = "soft"
            c["depends_on"] = deps
        comps[name] = c
    comps[names[0]]["shared"] = ["dns"]
    journeys = {f"j{i}": {"entry": e, "target": 0.999} for i, e in enumerate(by_layer[0][:5])}
    arch = {"domains": domains, "components": comps, "journeys": journeys}
    return System.from_spec(ArchitectureSpec.model_validate(arch))


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run(quick: bool = False) -> list[dict[str, Any]]:
    sizes = [50, 500] if quick else [50, 100, 200, 300, 400, 500]
    rows: list[dict[str, Any]] = []
    per_component: dict[int, float] = {}
    for n in sizes:
        system = generate(n)
        t_core = _best(lambda s=system: analyse(s, cut_sets=False), 1 if quick else 3)
        t_full = _best(lambda s=system: analyse(s, max_order=2), 1 if quick else 2)
        per_component[n] = t_full / n
        rows.append(
            {
                "group": "assess: exact analysis vs size",
                "name": f"{n} components (availability + SPOFs + pairs)",
                "value": t_full,
                "unit": "s",
                "baseline": n == sizes[0],
                "lower_is_better": True,
                "note": f"availability only: {t_core * 1000:.1f} ms; "
                f"{t_full / n * 1e3:.2f} ms/component",
            }
        )
    n = sizes[-1]
    system = generate(n)
    t0 = time.perf_counter()
    result = analyse(system, max_order=2)
    t_analysis = time.perf_counter() - t0
    worst = max(result.journeys.values(), key=lambda j: j.unavailability)
    t0 = time.perf_counter()
    sim = simulate(
        result,
        seed=3,
        rel_precision=0.1,
        max_seconds=60 if quick else 600,
        journeys=[worst.name],
        batch=10,
    )[worst.name]
    t_mc = time.perf_counter() - t0
    rows.append(
        {
            "group": "assess: exact vs Monte Carlo (500 components)",
            "name": "Monte Carlo to +-10% on unavailability",
            "value": t_mc,
            "unit": "s",
            "baseline": True,
            "lower_is_better": True,
            "note": f"{sim.years:.0f} simulated years, {sim.outages} outages, "
            f"U={sim.unavailability:.3g} +- {sim.relative_half_width:.1%}; exact U="
            f"{worst.unavailability:.3g}",
        }
    )
    rows.append(
        {
            "group": "assess: exact vs Monte Carlo (500 components)",
            "name": "exact analysis (BDD + cut sets to order 2)",
            "value": t_analysis,
            "unit": "s",
            "baseline": False,
            "lower_is_better": True,
            "note": f"{t_analysis / t_mc:.3f} of the Monte Carlo's time",
        }
    )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['group']:48} {row['name']:48} {row['value']:10.4f} {row['unit']}  "
            f"{row.get('note', '')}"
        )
