"""A reduced ordered binary decision diagram (ROBDD) for exact probability of coherent fault trees.

Common-cause failures make basic events appear under many gates (a zone under every replica placed
there), so multiplying gate probabilities as if their inputs were independent is wrong.  A BDD
represents the structure function as a DAG of Shannon decompositions
``f = x ? f[x=1] : f[x=0]`` in a fixed variable order, with shared sub-graphs.  For independent
basic
events with probabilities ``p_x`` the exact top-event probability follows in one bottom-up pass:

    P(node) = p_x * P(high) + (1 - p_x) * P(low),   P(0) = 0,  P(1) = 1.

One top-down pass then gives every variable's Birnbaum importance ``dP/dp_x`` (exact, because ``P``
is multilinear and every path meets ``x`` at most once):

    reach(root) = 1;  reach(high) += reach(n) * p_x;  reach(low) += reach(n) * (1 - p_x)
    I_B(x) = sum over nodes n labelled x of reach(n) * (P(high_n) - P(low_n))

from which ``P[x=0] = P - p_x I_B(x)`` and ``P[x=1] = P + (1 - p_x) I_B(x)``.

Nodes are numbered in creation order, and a node is only created after its children, so ascending
index order is a topological order: both passes are plain loops over arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .faulttree import Event, Node, events_of

__all__ = ["BDD", "Importance", "bdd_for"]

FALSE = 0
TRUE = 1


@dataclass(frozen=True, slots=True)
class Importance:
    """Importance measures of one basic event for one top event.

    ``birnbaum``: ``P[x=1] - P[x=0]``; ``if_never``: the top probability were the event never to
    happen; ``fussell_vesely``: the share of the top probability that involves the event,
    ``(P - P[x=0]) / P``.
    """

    birnbaum: float
    if_never: float
    if_always: float
    fussell_vesely: float


class BDD:
    """A shared BDD manager over a fixed variable order.

    ``order`` lists the basic events; variables are their positions.  Build functions with
    :meth:`build` (from a fault tree) or :meth:`var`, :meth:`or_`, :meth:`and_`, :meth:`at_least`.
    """

    def __init__(self, order: Sequence[Event]) -> None:
        self.order: list[Event] = list(order)
        self.index: dict[Event, int] = {e: i for i, e in enumerate(self.order)}
        nvars = len(self.order)
        # Terminals get the variable "after the last" so comparisons by level work.
        self.level: list[int] = [nvars, nvars]
        self.lo: list[int] = [FALSE, TRUE]
        self.hi: list[int] = [FALSE, TRUE]
        self._unique: dict[tuple[int, int, int], int] = {}
        self._and: dict[tuple[int, int], int] = {}
        self._or: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self.level)

    def _mk(self, v: int, lo: int, hi: int) -> int:
        if lo == hi:
            return lo
        key = (v, lo, hi)
        node = self._unique.get(key)
        if node is None:
            node = len(self.level)
            self.level.append(v)
            self.lo.append(lo)
            self.hi.append(hi)
            self._unique[key] = node
        return node

    def var(self, event: Event) -> int:
        """The function that is true when ``event`` occurs."""
        return self._mk(self.index[event], FALSE, TRUE)

    def _apply(self, is_and: bool, a: int, b: int) -> int:
        # Iterative apply with an explicit stack: dependency chains can be thousands deep.
        memo = self._and if is_and else self._or
        level, lo, hi = self.level, self.lo, self.hi
        stack: list[tuple[int, int, bool]] = [(a, b, False)]
        while stack:
            x, y, expanded = stack.pop()
            if x > y:
                x, y = y, x
            key = (x, y)
            if key in memo:
                continue
            if is_and:
                if x == FALSE:
                    r: int | None = FALSE
                elif x == TRUE:
                    r = y
                elif x == y:
                    r = x
                else:
                    r = None
            elif x == TRUE:
                r = TRUE
            elif x == FALSE:
                r = y
            elif x == y:
                r = x
            else:
                r = None
            if r is not None:
                memo[key] = r
                continue
            lx, ly = level[x], level[y]
            v = min(lx, ly)
            x0, x1 = (lo[x], hi[x]) if lx == v else (x, x)
            y0, y1 = (lo[y], hi[y]) if ly == v else (y, y)
            k0 = (min(x0, y0), max(x0, y0))
            k1 = (min(x1, y1), max(x1, y1))
            if not expanded:
                stack.append((x, y, True))
                if k1 not in memo:
                    stack.append((x1, y1, False))
                if k0 not in memo:
                    stack.append((x0, y0, False))
                continue
            node = self._mk(v, memo[k0], memo[k1])
            memo[key] = node
        first = (min(a, b), max(a, b))
        return memo[first]

    def and_(self, a: int, b: int) -> int:
        """Conjunction."""
        return self._apply(True, a, b)

    def or_(self, a: int, b: int) -> int:
        """Disjunction."""
        return self._apply(False, a, b)

    def or_all(self, roots: Sequence[int]) -> int:
        """Disjunction of many functions, combined last to first: when ``roots`` come in variable
        order, each step meets the accumulated diagram mostly at its own terminals, so the cost
        is about the size of the result rather than quadratic."""
        acc = FALSE
        for r in reversed(roots):
            acc = self.or_(r, acc)
        return acc

    def at_least(self, m: int, children: Sequence[int]) -> int:
        """True when at least ``m`` of ``children`` are true (dynamic programming over children).

        ``T(i, m) = (c_i AND T(i+1, m-1)) OR T(i+1, m)``, ``T(., 0) = 1``, ``T(n, m>0) = 0``.
        """
        n = len(children)
        table: dict[tuple[int, int], int] = {}
        for i in range(n, -1, -1):
            for need in range(m + 1):
                if need == 0:
                    table[(i, need)] = TRUE
                elif i == n or n - i < need:
                    table[(i, need)] = FALSE
                else:
                    take = self.and_(children[i], table[(i + 1, need - 1)])
                    table[(i, need)] = self.or_(take, table[(i + 1, need)])
        return table[(0, m)]

    def build(self, root: Node) -> int:
        """The BDD of a fault tree (shared sub-trees are built once)."""
        memo: dict[int, int] = {}
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in memo:
                continue
            if isinstance(node, Event):
                memo[id(node)] = self.var(node)
                continue
            if not done:
                stack.append((node, True))
                stack.extend((c, False) for c in node.children if id(c) not in memo)
                continue
            kids = [memo[id(c)] for c in node.children]
            if node.m == 1:
                acc = FALSE
                for k in kids:
                    acc = self.or_(acc, k)
            elif node.m == len(kids):
                acc = TRUE
                for k in kids:
                    acc = self.and_(acc, k)
            else:
                acc = self.at_least(node.m, kids)
            memo[id(node)] = acc
        return memo[id(root)]

    # -- evaluation --------------------------------------------------------------------------------

    def _probs(self, p: Mapping[Event, float]) -> list[float]:
        try:
            return [float(p[e]) for e in self.order]
        except KeyError as e:
            raise KeyError(f"no probability for basic event {e.args[0]!r}") from None

    def probability(self, root: int, p: Mapping[Event, float]) -> float:
        """Exact probability that ``root`` is true when each event ``e`` occurs with ``p[e]``,
        independently."""
        return self._node_probs(root, self._probs(p))[root]

    def _node_probs(self, root: int, pv: list[float]) -> list[float]:
        prob = [0.0] * (root + 1)
        if root >= 1:
            prob[1] = 1.0
        level, lo, hi = self.level, self.lo, self.hi
        for n in range(2, root + 1):
            px = pv[level[n]]
            prob[n] = px * prob[hi[n]] + (1.0 - px) * prob[lo[n]]
        return prob

    def importance(self, root: int, p: Mapping[Event, float]) -> dict[Event, Importance]:
        """Importance measures of every event in the order (zero for events ``root`` ignores)."""
        pv = self._probs(p)
        prob = self._node_probs(root, pv)
        top = prob[root]
        reach = [0.0] * (root + 1)
        reach[root] = 1.0
        level, lo, hi = self.level, self.lo, self.hi
        birn = [0.0] * len(self.order)
        for n in range(root, 1, -1):
            r = reach[n]
            if r == 0.0:
                continue
            v = level[n]
            px = pv[v]
            reach[hi[n]] += r * px
            reach[lo[n]] += r * (1.0 - px)
            birn[v] += r * (prob[hi[n]] - prob[lo[n]])
        out: dict[Event, Importance] = {}
        for i, e in enumerate(self.order):
            ib = birn[i]
            never = top - pv[i] * ib
            always = top + (1.0 - pv[i]) * ib
            fv = (top - never) / top if top > 0 else 0.0
            out[e] = Importance(ib, max(0.0, never), min(1.0, always), fv)
        return out

    def evaluate(self, root: int, occurred: set[Event] | frozenset[Event]) -> bool:
        """The structure function: does ``root`` occur when exactly ``occurred`` occur?"""
        n = root
        while n > 1:
            n = self.hi[n] if self.order[self.level[n]] in occurred else self.lo[n]
        return n == TRUE

    def size(self, root: int) -> int:
        """Number of internal nodes reachable from ``root``."""
        seen: set[int] = set()
        stack = [root]
        while stack:
            n = stack.pop()
            if n <= 1 or n in seen:
                continue
            seen.add(n)
            stack.append(self.lo[n])
            stack.append(self.hi[n])
        return len(seen)


def bdd_for(root: Node, first: Sequence[Event] = ()) -> tuple[BDD, int]:
    """A BDD for ``root`` with ``first`` events ordered first, then depth-first order."""
    mgr = BDD(list(dict.fromkeys([*first, *events_of(root)])))
    return mgr, mgr.build(root)
