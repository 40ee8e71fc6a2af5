"""``experiments.hypotheses.audit_log`` and ``.recovery``: an audit trail verified, failovers timed.

.. code-block:: yaml

    hypotheses:
      audit_log:                      # hash-chained logs (buttress.dr.chain), read after the run
        reads:
          - {service: primary, path: "/audit?settle=8"}
          - {service: recovery, path: "/audit?settle=8"}
      recovery:                       # time to recover against the journey's RTO, in lab time
        journey: claims
        faults: {primary-site-lost: region, storage-corrupted: instance}
        compression: 60               # a second of the run stands for a minute

**audit_log.**  Once the load is over (before anything stops), each read is ``GET
<service><path>`` straight to the instance, answering ``{<field>: [records]}`` where every record
is ``{"seq", "prev", "hash", "body"}`` as :func:`buttress.dr.chain.make_record` makes them.  Per
run, each log must verify (:func:`buttress.dr.chain.verify_chain`: no gap, every link and hash
right) and, with several reads, all must hold the same chain (same length, same head hash): the
copies agree.  That every acknowledged request is in the log once is the existing exactly-once
check: an ``effects:`` read counting each request's records.

**recovery.**  For each fault named, the time from its application to the first request of
``kinds`` (default: the order kinds) that arrived after it and was answered well, its answer's
time included (what the drill calls the achieved RTO).  The bound is the journey's declared RTO
for the fault's disruption type (``instance``, ``zone``, ``region``, ``deploy``) divided by
``compression``: the lab runs time 60 times faster, as its ``--prometheus`` rules do, so an RTO
of 5 minutes is 5 s of a run.  Judged in the runs of ``runs`` (default: Buttress), inconclusive
when the load driver was starved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from buttress.dr.chain import verify_chain

from .auditspec import recovery_journey
from .driver import Sample, unless_starved

if TYPE_CHECKING:
    from .load import LoadedLab
    from .plan import AppliedFault

__all__ = [
    "audit_hypotheses",
    "audit_rows",
    "read_chains",
    "recovery_figures",
    "recovery_hypotheses",
]


# -- after a run -------------------------------------------------------------------------------


def read_chains(
    lab: LoadedLab, ports: Mapping[str, int], log: Callable[[str], None]
) -> list[dict[str, Any]] | None:
    """Each copy of the log, read and verified: ``{service, path, records, head, intact,
    break_at, reason}`` (``error`` instead when it could not be read)."""
    spec = lab.experiments.hypotheses.audit_log
    if spec is None:
        return None
    out: list[dict[str, Any]] = []
    with httpx.Client(timeout=30.0) as c:
        for read in spec.reads:
            row: dict[str, Any] = {"service": read.service, "path": read.path}
            try:
                r = c.get(f"http://127.0.0.1:{ports[read.service]}{read.path}")
                r.raise_for_status()
                records = r.json()[read.field]
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
                log(f"audit log not read from {read.service}: {e!r}")
                row["error"] = repr(e)
            else:
                row |= verify_chain(records).to_json()
            out.append(row)
    return out


def recovery_figures(
    lab: LoadedLab, samples: Sequence[Sample], faults: Sequence[AppliedFault]
) -> dict[str, dict[str, Any]] | None:
    """Per fault of ``hypotheses.recovery``: when it was applied and the time to recover (see the
    module docstring; ``None`` when nothing was answered well after it)."""
    rec = lab.experiments.hypotheses.recovery
    if rec is None:
        return None
    requests = lab.experiments.load.requests
    kinds = set(rec.kinds) or {k for k, r in requests.items() if r.order}
    out: dict[str, dict[str, Any]] = {}
    for a in faults:
        if a.fault.name not in rec.faults:
            continue
        t0 = a.applied_at
        done = [
            s.start + s.latency
            for s in samples
            if t0 is not None and s.kind in kinds and s.good and s.start >= t0
        ]
        out[a.fault.name] = {
            "disruption": rec.faults[a.fault.name],
            "applied_at": t0,
            "seconds": None if t0 is None or not done else round(min(done) - t0, 3),
        }
    return out


def _chain_checks(mode: str, chains: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run's audit-log hypotheses: each copy intact, then (several copies) all agree."""
    out = []
    for c in chains:
        seen = c.get("error") or (
            f"{c['records']} records, head {c['head'][:12]}"
            if c["intact"]
            else f"broken at record {c['break_at']}: {c['reason']}"
        )
        out.append(
            {
                "hypothesis": f"audit log of {c['service']}: hash chain complete and intact",
                "mode": mode,
                "expected": "records 1..n, every link and hash verified",
                "observed": seen,
                "passed": "error" not in c and bool(c["intact"]),
            }
        )
    if len(chains) > 1:
        heads = {(c.get("records"), c.get("head")) for c in chains}
        shown = [f"{c['service']}: {c.get('records')} records, head {str(c.get('head'))[:12]}"
                 for c in chains]  # fmt: skip
        out.append(
            {
                "hypothesis": "the audit logs of "
                + " and ".join(c["service"] for c in chains)
                + " hold the same chain",
                "mode": mode,
                "expected": "same length, same head hash",
                "observed": "; ".join(shown),
                "passed": len(heads) == 1 and all("error" not in c for c in chains),
            }
        )
    return out


def audit_hypotheses(lab: LoadedLab, runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per run of ``audit_log.runs`` that read its logs: each copy intact; the copies agree."""
    spec = lab.experiments.hypotheses.audit_log
    judged = [] if spec is None else [m for m in runs if m in spec.runs]
    return [h for m in judged if runs[m].get("audit") for h in _chain_checks(m, runs[m]["audit"])]


def recovery_hypotheses(
    lab: LoadedLab, runs: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per fault and run of ``recovery.runs``: time to recover within RTO / compression."""
    rec = lab.experiments.hypotheses.recovery
    judged = [] if rec is None else [m for m in runs if m in rec.runs]
    if rec is None or not judged:
        return []
    name, journey = recovery_journey(rec, lab.spec)

    def check(mode: str, fault: str, fig: dict[str, Any]) -> dict[str, Any]:
        rto = float(getattr(journey.rto, fig["disruption"]))
        bound = rto / rec.compression
        got = fig["seconds"]
        h = {
            "hypothesis": f"{fault}: service back within journey {name}'s RTO for "
            f"{fig['disruption']} ({_human(rto)}, {bound:g} s of lab time at "
            f"{rec.compression:g}x)",
            "mode": mode,
            "expected": f"<= {bound:g} s",
            "observed": "never" if got is None else f"{got:.2f} s",
            "passed": got is not None and got <= bound,
        }
        return unless_starved(h, {mode: runs[mode]})

    return [
        check(mode, fault, fig)
        for mode in judged
        for fault, fig in (runs[mode].get("service_recovery") or {}).items()
    ]


def audit_rows(runs: Mapping[str, Mapping[str, Any]], modes: list[str]) -> list[tuple[str, ...]]:
    """Rows of the side-by-side table: each fault's time to recover, each copy of the log."""
    out: list[tuple[str, ...]] = []
    first = runs[modes[0]]
    for fault in first.get("service_recovery") or {}:
        cells = []
        for m in modes:
            fig = (runs[m].get("service_recovery") or {}).get(fault) or {}
            got = fig.get("seconds")
            cells.append("never" if got is None else f"{got:.2f} s")
        out.append((f"service back after {fault}", *cells))
    for i, copy in enumerate(first.get("audit") or []):
        cells = []
        for m in modes:
            chains = runs[m].get("audit") or []
            c = chains[i] if i < len(chains) else {"error": "not read"}
            cells.append(
                "unread"
                if "error" in c
                else f"{c['records']} records, {'intact' if c['intact'] else 'BROKEN'}, "
                f"head {c['head'][:8]}"
            )
        out.append((f"audit log of {copy['service']}", *cells))
    return out


def _human(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
