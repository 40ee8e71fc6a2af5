"""promtool unit tests for the generated rules: each SLO's alerts checked against the math module.

For every SLO whose rules read Prometheus counters, :func:`tests_for` builds synthetic counters that
its queries select (label values are derived from the queries' matchers, regexes included) and four
scenarios, scraped every minute:

``outage``      healthy traffic, then an error ratio above the first tier's threshold: the page must
                fire exactly at the minute :func:`buttress.slo.math.alert_timeline` predicts (and
                not a minute earlier); burn rate and budget remaining are checked too.
``slow burn``   a constant burn between the ticket and the page thresholds: tickets fire, pages
                never.
``healthy``     a burn well below every threshold: nothing fires.
``no data``     no series at all: the absent-data alert fires after ``absent_for``.

Every expectation is computed from the per-minute counts with the math module, so ``promtool test
rules`` checks that Prometheus, evaluating the generated rules, agrees with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import math as slomath
from .rules import _escape, group_name, rule_labels, slo_windows
from .spec import RatioSLI, SLOSpec, WindowSLI, format_duration

__all__ = [
    "Scenario",
    "scenario_test",
    "Synthesis",
    "UnsupportedQuery",
    "expanding",
    "series_for",
    "test_file",
    "tests_for",
    "timeline_units",
]

_SELECTOR = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\})?\s*\[\{\{\.window\}\}"
)
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


class UnsupportedQuery(ValueError):
    """The queries are too unusual to synthesise input series for."""


Matcher = tuple[str, str, str]


def _selectors(query: str) -> list[tuple[str, list[Matcher]]]:
    out = []
    for m in _SELECTOR.finditer(query):
        matchers = [
            (g[0], g[1], g[2].encode().decode("unicode_escape"))
            for g in _MATCHER.findall(m.group(2) or "")
        ]
        out.append((m.group(1), matchers))
    if not out:
        raise UnsupportedQuery(f"no metric selector with [{{{{.window}}}}] in {query!r}")
    return out


def _gen(tree: Any) -> str:
    """A string matched by a parsed regex (the first alternative, minimal repeats)."""
    from re import _constants as c  # type: ignore[attr-defined]

    out = ""
    for op, av in tree:
        if op is c.LITERAL:
            out += chr(av)
        elif op is c.NOT_LITERAL:
            out += "x" if chr(av) != "x" else "y"
        elif op is c.ANY:
            out += "0"
        elif op is c.IN:
            out += _gen_in(av, c)
        elif op is c.BRANCH:
            out += _gen(av[1][0])
        elif op is c.SUBPATTERN:
            out += _gen(av[3])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            lo, _hi, sub = av
            out += _gen(sub) * max(lo, 1)
        elif op is c.AT:
            continue
        else:
            raise UnsupportedQuery(f"regex construct {op} is not supported")
    return out


def _gen_in(items: Any, c: Any) -> str:
    for op, av in items:
        if op is c.NEGATE:
            return "x"
        if op is c.LITERAL:
            return chr(av)
        if op is c.RANGE:
            return chr(av[0])
        if op is c.CATEGORY:
            return "0" if av is c.CATEGORY_DIGIT else "a"
    return "a"


def _regex_sample(rx: str) -> str:
    import re._parser as sre  # type: ignore[import-not-found]

    try:
        return _gen(sre.parse(rx))
    except (re.error, IndexError, TypeError) as e:
        raise UnsupportedQuery(f"cannot build a value matching {rx!r}: {e}") from None


def _ok(value: str, m: Matcher) -> bool:
    _, op, v = m
    if op == "=":
        return value == v
    if op == "!=":
        return value != v
    hit = re.fullmatch(v, value) is not None
    return hit if op == "=~" else not hit


def _labels_for(required: list[Matcher], violate: list[Matcher] | None = None) -> dict[str, str]:
    """Label values satisfying every matcher in ``required`` and breaking at least one of
    ``violate`` (if given)."""
    names = sorted({m[0] for m in required} | {m[0] for m in (violate or [])})

    def candidates(name: str) -> list[str]:
        c = ["", "synthetic", "x", "0", "200", "500", "ok", "error"]
        for _, op, v in [m for m in required + (violate or []) if m[0] == name]:
            if op == "=":
                c.insert(0, v)
            elif op == "=~":
                c.insert(0, _regex_sample(v))
        return c

    def solve(must: list[Matcher]) -> dict[str, str] | None:
        out: dict[str, str] = {}
        for name in names:
            mine = [m for m in must if m[0] == name]
            for cand in candidates(name):
                if all(_ok(cand, m) for m in mine):
                    out[name] = cand
                    break
            else:
                return None
        return out

    if violate is None:
        got = solve(required)
        if got is None:
            raise UnsupportedQuery(f"no label values satisfy {required}")
        return {k: v for k, v in got.items() if v != ""}
    for bad in violate:
        flipped = {"=": "!=", "!=": "=", "=~": "!~", "!~": "=~"}[bad[1]]
        got = solve([*required, (bad[0], flipped, bad[2])])
        if got is not None:
            return {k: v for k, v in got.items() if v != ""}
    raise UnsupportedQuery(f"no label values satisfy {required} while breaking {violate}")


@dataclass(frozen=True)
class Synthesis:
    """Input series for the SLI's queries: ``(series text, role)``; the role says what a series
    counts: ``num`` (the numerator's events), ``rest`` (total minus those), ``total`` or ``good``.

    ``numerator`` says what the ``num`` series counts: ``bad`` or ``good`` events.
    """

    series: tuple[tuple[str, str], ...]
    numerator: str


def _series_text(metric: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def series_for(slo: SLOSpec) -> Synthesis:
    """Decide which counters to feed so the SLO's queries see the scenario's events."""
    sli = slo.sli.of if isinstance(slo.sli, WindowSLI) else slo.sli
    if isinstance(sli, RatioSLI) and sli.error_ratio is not None:
        raise UnsupportedQuery("a precomputed error_ratio query cannot be fed synthetic counters")
    bad, good, total = sli.queries()
    if total is None:
        raise UnsupportedQuery("no Prometheus queries")
    num_q, numerator = (bad, "bad") if bad is not None else (good, "good")
    assert num_q is not None
    num_sel = _selectors(num_q)
    tot_sel = _selectors(total)
    num_metrics = {m for m, _ in num_sel}
    tot_metrics = {m for m, _ in tot_sel}
    if numerator == "bad" and len(tot_metrics) == 1 and len(num_metrics) == 2:
        # bad = total - good, written out (e.g. a histogram's count minus its bucket).
        (tm,) = tot_metrics
        if tm in num_metrics:
            (gm,) = num_metrics - {tm}
            tot_match = [x for _, ms in tot_sel for x in ms]
            g_match = [x for m, ms in num_sel if m == gm for x in ms]
            return Synthesis(
                (
                    (_series_text(tm, _labels_for(tot_match)), "total"),
                    (_series_text(gm, _labels_for(g_match)), "good"),
                ),
                numerator,
            )
    if len(num_metrics) != 1:
        raise UnsupportedQuery("the good/bad query must select one metric")
    (nm,) = num_metrics
    num_match = [x for m, ms in num_sel for x in ms]
    if tot_metrics == {nm}:
        # One metric, the numerator a subset of the total (e.g. code=~"5.." of all requests).
        tot_match = [x for _, ms in tot_sel for x in ms]
        num_labels = _labels_for(num_match + tot_match)
        rest_labels = _labels_for(tot_match, violate=num_match)
        return Synthesis(
            ((_series_text(nm, num_labels), "num"), (_series_text(nm, rest_labels), "rest")),
            numerator,
        )
    others = tot_metrics - {nm}
    if nm in tot_metrics and len(others) == 1:
        # total = numerator metric + one other metric (e.g. failed + succeeded).
        (om,) = others
        om_match = [x for m, ms in tot_sel if m == om for x in ms]
        nm_match = num_match + [x for m, ms in tot_sel if m == nm for x in ms]
        return Synthesis(
            (
                (_series_text(nm, _labels_for(nm_match)), "num"),
                (_series_text(om, _labels_for(om_match)), "rest"),
            ),
            numerator,
        )
    if nm not in tot_metrics and len(tot_metrics) == 1:
        # Separate counters for the numerator and the total (e.g. a histogram bucket and count).
        (tm,) = tot_metrics
        tot_match = [x for _, ms in tot_sel for x in ms]
        return Synthesis(
            (
                (_series_text(nm, _labels_for(num_match)), "num"),
                (_series_text(tm, _labels_for(tot_match)), "total"),
            ),
            numerator,
        )
    raise UnsupportedQuery(f"cannot map metrics {sorted(tot_metrics | num_metrics)} to events")


def expanding(values: Sequence[int]) -> str:
    """promtool's expanding notation for a series: runs of equal steps as ``a+bxn``."""
    parts: list[str] = []
    i, n = 0, len(values)
    while i < n:
        if i + 1 < n:
            step = values[i + 1] - values[i]
            j = i + 1
            while j + 1 < n and values[j + 1] - values[j] == step:
                j += 1
            sign = "+" if step >= 0 else "-"
            parts.append(f"{values[i]}{sign}{abs(step)}x{j - i}")
            i = j + 1
        else:
            parts.append(str(values[i]))
            i += 1
    return " ".join(parts)


def _cumsum(xs: Sequence[int]) -> list[int]:
    out, s = [0], 0
    for x in xs:
        s += x
        out.append(s)
    return out


def timeline_units(
    slo: SLOSpec, bad: Sequence[int], total: Sequence[int]
) -> tuple[list[float], list[float]]:
    """Per-minute ``(bad, total)`` in the units the alerts count: events for Occurrences; for
    window SLIs with 1-minute slices, bad slices (or 1 - ratio) and counted slices."""
    if not isinstance(slo.sli, WindowSLI):
        return [float(x) for x in bad], [float(x) for x in total]
    ub, ut = [], []
    for b, t in zip(bad, total, strict=True):
        if t == 0:
            ub.append(0.0)
            ut.append(0.0)
            continue
        ratio = (t - b) / t
        if slo.method == "Timeslices":
            assert slo.sli.target is not None
            ub.append(1.0 if ratio < slo.sli.target else 0.0)
        else:
            ub.append(1.0 - ratio)
        ut.append(1.0)
    return ub, ut


@dataclass
class Scenario:
    """Per-minute bad and total events, and the minutes at which to check the alerts."""

    name: str
    bad: list[int]
    total: list[int]
    checks: list[int]
    values: bool = False  # also check burn rate and budget remaining at the last check


def _robust(slo: SLOSpec, ub: list[float], ut: list[float], k: int) -> bool:
    """No ratio at minute ``k`` sits within a hair of a tier limit (Go and Python could differ)."""
    b = slo.budget_ratio
    for t in slo.tiers():
        limit = slomath.error_ratio_threshold(t.threshold, b)
        for w in (t.long_window, t.short_window):
            m = max(1, round(w / 60))
            lo = max(0, k - m)
            tb, tt = sum(ub[lo:k]), sum(ut[lo:k])
            if tt > 0 and abs(tb / tt - limit) <= 1e-9 * max(limit, 1e-12):
                return False
            if w == t.long_window and t.min_events and tt == t.min_events:
                return False
    return True


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def _divisors_desc(x: int) -> list[int]:
    small, large = [], []
    i = 1
    while i * i <= x:
        if x % i == 0:
            small.append(i)
            if i * i != x:
                large.append(x // i)
        i += 1
    return large + small[::-1]


def _spread_fires(
    tiers: Sequence[slomath.AlertTier], b: float, *, n: int, d: int, q: int, unit: int
) -> frozenset[str]:
    """Tiers firing at minute ``n`` when minutes ``n - 1 - d - j x q`` (``j >= 0``) are all bad and
    every minute holds ``unit`` counted units (events, or one slice): the math module's decision,
    with window sums counted in closed form."""
    out = set()
    for t in tiers:
        ok = True
        for w in (_minutes(t.long_window), _minutes(t.short_window)):
            m = min(w, n)
            bad = 0 if m <= d else (m - d - 1) // q + 1
            if w == _minutes(t.long_window) and m * unit < t.min_events:
                ok = False
            if not bad / m > slomath.error_ratio_threshold(t.threshold, b):
                ok = False
        if ok:
            out.add(t.name)
    return frozenset(out)


def _page_fires_anyway(t: slomath.AlertTier, b: float, d: int, unit: int) -> bool:
    """Whether page ``t`` fires whatever the spacing when the last bad minute is ``d`` minutes
    before the check: one bad minute inside its short window already exceeds its limit in both
    windows (and the long window can hold enough events)."""
    lw, sw = _minutes(t.long_window), _minutes(t.short_window)
    limit = slomath.error_ratio_threshold(t.threshold, b)
    return sw > d and 1 / lw > limit and lw * unit >= t.min_events


def _spread(n: int, d: int, q: int, traffic: int) -> tuple[list[int], list[int]]:
    bad = [0] * n
    for pos in range(n - 1 - d, -1, -q):
        bad[pos] = traffic
    return bad, [traffic] * n


def _slow_burn(slo: SLOSpec, traffic: int) -> tuple[Scenario | None, str | None]:
    """A burn that fires the ticket tiers and no page, or ``(None, why)``.

    First a constant error ratio between the highest ticket threshold below the lowest page
    threshold and that page threshold (Occurrences and RatioTimeslices: every window sees the same
    ratio); the traffic is raised until an integer count of bad events per minute lands strictly
    between the two.  Otherwise (Timeslices, where a slice is wholly good or bad, or tiers whose
    thresholds overlap) bad minutes are spread: one every ``q`` minutes, the last ``d`` minutes ago
    (``d`` = 0 or past a page's short window), over ``n`` minutes, searched in that order (ongoing
    burns first, then the shortest series, then the sparsest spacing), so that both windows of the
    ticket tiers exceed their thresholds while every page has a window below its own.  Each
    candidate is checked with :func:`buttress.slo.math.alert_timeline` and kept away from exact
    ties with a limit.
    """
    tiers = slo.tiers()
    b = slo.budget_ratio
    pages = [t for t in tiers if t.severity == "page"]
    page_names = {t.name for t in pages}
    tickets = [t for t in tiers if t.severity != "page" and slomath.can_fire(t.threshold, b)]
    if not tickets:
        return None, None
    why = (
        "no slow-burn test: no series fires a ticket tier without a page "
        f"(tickets {sorted(t.name for t in tickets)}, pages {sorted(page_names)})"
    )
    # A ticket whose windows a page shares, with a page threshold no higher, never fires alone.
    tickets = [
        t
        for t in tickets
        if not any(
            (p.long_window, p.short_window) == (t.long_window, t.short_window)
            and p.threshold <= t.threshold
            and p.min_events <= t.min_events
            for p in pages
        )
    ]
    if not tickets:
        return None, why
    want = frozenset(t.name for t in tickets)

    def accept(bad: list[int], total: list[int], checks: list[int], full: bool) -> Scenario | None:
        ub, ut = timeline_units(slo, bad, total)
        timeline = slomath.alert_timeline(ub, ut, b, tiers)
        for k in checks:
            fired = timeline[k]
            good = fired == want if full else bool(fired) and not fired & page_names
            if not good or not _robust(slo, ub, ut, k):
                return None
        return Scenario("slow burn", bad, total, checks)

    low_page = min((t.threshold for t in pages), default=math.inf)
    below = [t.threshold for t in tickets if t.threshold < low_page]
    if slo.method != "Timeslices" and below:
        lo, hi = max(below) * b, min(1.0, low_page * b)
        ratio = (lo + hi) / 2
        need_events = max(t.min_events for t in tickets)
        volume = max(traffic, math.ceil(4 / (hi - lo)), math.ceil(need_events / 30) + 1)
        x = round(ratio * volume)
        if lo < x / volume < hi:
            n = 60
            sc = accept([x] * n, [volume] * n, [30, n], full=len(below) == len(tickets))
            if sc is not None:
                return sc, None
    # Spread whole bad minutes (every event bad: a bad slice, or an outage minute).
    unit = 1 if isinstance(slo.sli, WindowSLI) else traffic
    n_min = max(_minutes(t.short_window) for t in tickets)
    n_max = min(max(_minutes(t.long_window) for t in tickets) + n_min, 5000)
    fallback: tuple[int, int, int] | None = None
    budget = 200_000  # candidate evaluations before giving up (about a second)
    for d in sorted({0, *(_minutes(t.short_window) for t in pages)}):
        if any(_page_fires_anyway(t, b, d, unit) for t in pages):
            continue
        for n in range(max(n_min, d + 1), n_max + 1):
            budget -= 1
            if budget < 0:
                break
            for q in _divisors_desc(n - 1 - d) if n - 1 - d > 0 else [1]:
                budget -= 1
                fired = _spread_fires(tiers, b, n=n, d=d, q=q, unit=unit)
                if not fired or fired & page_names:
                    continue
                if fired != want:
                    fallback = fallback or (n, d, q)
                    continue
                sc = accept(*_spread(n, d, q, traffic), [n], full=True)
                if sc is not None:
                    return sc, None
    if fallback is not None:
        n, d, q = fallback
        sc = accept(*_spread(n, d, q, traffic), [n], full=False)
        if sc is not None:
            return sc, None
    return None, why


def _scenarios(slo: SLOSpec) -> tuple[list[Scenario], list[str]]:
    """The outage, slow-burn and healthy scenarios of ``slo``, and notes on those that cannot be
    built (a scenario with nothing to test -- no tier can fire, no ticket tier -- is left out
    without a note)."""
    tiers = slo.tiers()
    b = slo.budget_ratio
    timeslices = isinstance(slo.sli, WindowSLI)
    if timeslices and slo.sli.slice != 60:  # type: ignore[union-attr]
        raise UnsupportedQuery("window SLIs are tested with 1-minute slices only")
    traffic = 1000
    if tiers:
        traffic = max(traffic, math.ceil(max(t.min_events for t in tiers) / 30) + 1)
    out: list[Scenario] = []
    notes: list[str] = []

    def per_minute_bad(ratio: float) -> int:
        return min(traffic, round(ratio * traffic))

    # Tiers some error ratio can fire (and whose long window can hold min_events: for window SLIs
    # the guard counts slices, at most one a minute).
    per_minute = 1 if timeslices else traffic
    fireable = [
        t
        for t in tiers
        if slomath.can_fire(t.threshold, b) and _minutes(t.long_window) * per_minute >= t.min_events
    ]
    if fireable:
        first = fireable[0]
        limit = slomath.error_ratio_threshold(first.threshold, b)
        ratio = min(1.0, max(limit * 2.5, limit + 2 / traffic))
        if timeslices:
            target = slo.sli.target or 0.5  # type: ignore[union-attr]
            ratio = min(1.0, (1 - target) + 0.5 * target)
        # Healthy traffic first, long enough for the low-traffic guard to be met before the errors
        # start (so that the ratios, not the guard, decide the minute the page fires).
        guard = math.ceil(first.min_events / per_minute)
        for attempt in range(20):
            healthy = 10 + guard + attempt  # a different start moves every ratio off a tie
            span = round(first.long_window / 60) + 30
            bad = [0] * healthy + [per_minute_bad(ratio)] * span
            total = [traffic] * len(bad)
            ub, ut = timeline_units(slo, bad, total)
            tl = slomath.alert_timeline(ub, ut, b, tiers)
            hit = next((k for k, f in enumerate(tl) if first.name in f), None)
            if hit is not None and all(_robust(slo, ub, ut, k) for k in (hit - 1, hit, hit + 5)):
                end = min(len(bad), hit + 5)
                out.append(Scenario("outage", bad[:end], total[:end], [hit - 1, hit, end], True))
                break
            ratio = min(1.0, ratio * 1.07)
        else:
            notes.append(f"no outage test: no error ratio fires {first.name!r} robustly")
    slow, why = _slow_burn(slo, traffic)
    if slow is not None:
        out.append(slow)
    if why is not None:
        notes.append(why)
    if tiers:
        low = min(t.threshold for t in tiers)
        ratio = 0.25 * low * b
        n = 30
        bad = [0] * n if timeslices else [per_minute_bad(ratio)] * n
        total = [traffic] * n
        ub, ut = timeline_units(slo, bad, total)
        checks = [k for k in (15, 30) if _robust(slo, ub, ut, k)]
        out.append(Scenario("healthy", bad, total, checks))
    return out, notes


def _alert_labels(slo: SLOSpec, tier_name: str) -> dict[str, str]:
    spec_tier = next(t for t in slo.alerting.active_tiers if t.name == tier_name)
    math_tier = next(t for t in slo.tiers() if t.name == tier_name)
    return {
        **rule_labels(slo),
        **slo.alerting.labels,
        "severity": math_tier.severity,
        "burn_tier": tier_name,
        **spec_tier.labels,
    }


def _annotations(slo: SLOSpec, rules: dict[str, Any], tier_name: str) -> dict[str, str]:
    for r in rules["rules"]:
        if r.get("alert") == slo.alert_name and r["labels"].get("burn_tier") == tier_name:
            return dict(r["annotations"])
    raise KeyError(tier_name)


def scenario_test(
    slo: SLOSpec, rules: dict[str, Any], sc: Scenario, synth: Synthesis | None = None
) -> dict[str, Any]:
    """One promtool test: ``sc``'s events as counters, the firing tiers the math module predicts at
    each check, and (if ``sc.values``) every burn rate and the budget remaining at the last
    check."""
    synth = synth or series_for(slo)
    b = slo.budget_ratio
    tiers = slo.tiers()
    sel = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(rule_labels(slo).items()))
    good = [t - x for x, t in zip(sc.bad, sc.total, strict=True)]
    num = sc.bad if synth.numerator == "bad" else good
    rest = [t - x for x, t in zip(num, sc.total, strict=True)]
    series = []
    for text, role in synth.series:
        per_min = {"num": num, "rest": rest, "total": sc.total, "good": good}[role]
        series.append({"series": text, "values": expanding(_cumsum(per_min))})
    ub, ut = timeline_units(slo, sc.bad, sc.total)
    tl = slomath.alert_timeline(ub, ut, b, tiers)
    alert_tests = []
    for k in sc.checks:
        alert_tests.append(
            {
                "eval_time": f"{k}m",
                "alertname": slo.alert_name,
                "exp_alerts": [
                    {
                        "exp_labels": _alert_labels(slo, name),
                        "exp_annotations": _annotations(slo, rules, name),
                    }
                    for name in sorted(tl[k])
                ],
            }
        )
    test: dict[str, Any] = {
        "name": f"{slo.name}: {sc.name}",
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": alert_tests,
    }
    if sc.values:
        k = sc.checks[-1]
        exprs = []
        for w in slo_windows(slo):
            if w == slo.period:
                continue
            m = max(1, round(w / 60))
            tb, tt = sum(ub[max(0, k - m) : k]), sum(ut[max(0, k - m) : k])
            if tt > 0:
                exprs.append(
                    (f"slo:burn_rate:ratio_rate{format_duration(w)}", slomath.burn_rate(tb / tt, b))
                )
        pb, pt = sum(ub[:k]), sum(ut[:k])
        if not isinstance(slo.sli, WindowSLI):
            exprs.append(("slo:error_budget:remaining", slomath.budget_remaining(pb, pt, b)))
        elif pt > 0:
            # Timeslices: b x every slice of the period (see rules.py), as in the evaluator.
            slices = slo.period / slo.sli.slice
            exprs.append(("slo:error_budget:remaining", 1.0 - pb / (b * slices)))
        test["promql_expr_test"] = [
            {
                "expr": f"abs({name}{{{sel}}} - {value!r}) < bool {1e-6 * max(1.0, abs(value))!r}",
                "eval_time": f"{k}m",
                "exp_samples": [{"labels": "{" + sel + "}", "value": 1}],
            }
            for name, value in exprs
        ]
    return test


def tests_for(
    slo: SLOSpec, rules: dict[str, Any], notes: list[str] | None = None
) -> list[dict[str, Any]]:
    """promtool ``tests:`` entries for one SLO (``rules`` is its generated group); a scenario that
    cannot be built is left out with a note appended to ``notes``."""
    synth = series_for(slo)
    scenarios, why = _scenarios(slo)
    if notes is not None:
        notes.extend(f"slo {slo.name!r}: {w}" for w in why)
    out = [scenario_test(slo, rules, sc, synth) for sc in scenarios]
    if slo.alerting.absent_for is not None:
        k = math.ceil(slo.alerting.absent_for / 60) + 1
        absent_name = slo.alert_name.removesuffix("BurnRate") + "SLIAbsent"
        annotations = next(
            r["annotations"] for r in rules["rules"] if r.get("alert") == absent_name
        )
        out.append(
            {
                "name": f"{slo.name}: no data",
                "interval": "1m",
                "input_series": [],
                "alert_rule_test": [
                    {
                        "eval_time": f"{k}m",
                        "alertname": absent_name,
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    **rule_labels(slo),
                                    **slo.alerting.labels,
                                    "severity": "ticket",
                                    "burn_tier": "absent",
                                },
                                "exp_annotations": annotations,
                            }
                        ],
                    },
                    {"eval_time": f"{k}m", "alertname": slo.alert_name, "exp_alerts": []},
                ],
            }
        )
    return out


def test_file(
    slo: SLOSpec, rules: dict[str, Any], rule_file: str, notes: list[str] | None = None
) -> dict[str, Any]:
    """A complete promtool test file for ``slo`` against ``rule_file`` (a path relative to it);
    notes on scenarios left out go to ``notes``."""
    return {
        "rule_files": [rule_file],
        "evaluation_interval": "1m",
        "group_eval_order": [group_name(slo)],
        "tests": tests_for(slo, rules, notes),
    }


test_file.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
tests_for.__test__ = False  # type: ignore[attr-defined]
