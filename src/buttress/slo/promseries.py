"""Synthetic counters for promtool tests: series that an SLO's queries select (label values derived
from the queries' matchers, regexes included), written in promtool's expanding notation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .spec import RatioSLI, SLOSpec, WindowSLI

__all__ = ["Synthesis", "UnsupportedQuery", "cumulative", "expanding", "series_for"]

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


def cumulative(xs: Sequence[int]) -> list[int]:
    out, s = [0], 0
    for x in xs:
        s += x
        out.append(s)
    return out
