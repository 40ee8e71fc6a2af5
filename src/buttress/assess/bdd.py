"""A reduced ordered binary decision diagram (ROBDD) for exact probability of coherent fault trees.

Common-cause failures make basic events appear under many gates (a zone under every replica placed
there), so multiplying gate probabilities as if their inputs were independent is wrong.  A BDD
represents the structure function as a DAG of Shannon decompositions ``f = x ? f[x=1] : f[x=0]`` in
a fixed variable order, with shared sub-graphs.  For independent basic events with probabilities
``p_x`` the exact top-event probability follows in one bottom-up pass:

    P(node) = p_x * P(high) + (1 - p_x) * P(low),   P(0) = 0,  P(1) = 1.

One top-down pass then gives every variable's Birnbaum importance ``dP/dp_x`` (exact, because ``P``
is multilinear and every path meets ``x`` at most once):

    reach(root) = 1;  reach(high) += reach(n) * p_x;  reach(low) += reach(n) * (1 - p_x)
    I_B(x) = sum over nodes n labelled x of reach(n) * (P(high_n) - P(low_n))

from which ``P[x=0] = P - p_x I_B(x)`` and ``P[x=1] = P + (1 - p_x) I_B(x)``.

Nodes are numbered in creation order, and a node is only created after its children, so ascending
index order is a topological order: both passes are plain loops over the nodes reachable from the
root, in index order (never over the whole manager, which also holds every other function built in
it: the passes cost O(size of the root's diagram) however many journeys share the manager).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
        self._reach: dict[int, list[int]] = {}

    def add_var(self, event: Event) -> None:
        """Append ``event`` to the variable order (after every existing variable, so every
        function built so far keeps its meaning; the terminals move one level down)."""
        if event in self.index:
            return
        self.index[event] = len(self.order)
        self.order.append(event)
        self.level[FALSE] = self.level[TRUE] = len(self.order)

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

    @staticmethod
    def _terminal(is_and: bool, x: int, y: int) -> int:
        """The result of ``x op y`` (``x <= y``) when a terminal or equal operands decide it, else
        -1.  Terminals have the two smallest indices, so only ``x`` can be one."""
        if x == y:
            return x
        if x == FALSE:
            return FALSE if is_and else y
        if x == TRUE:
            return y if is_and else TRUE
        return -1

    def _apply(self, is_and: bool, a: int, b: int) -> int:
        """``a AND b`` or ``a OR b`` by Shannon expansion on the topmost variable, memoised per
        operand pair.  Iterative, with an explicit stack (dependency chains can be thousands of
        variables deep): a frame is expanded once (its cofactor pairs computed and the undecided
        ones pushed) and completed once (the node made from the two results); pairs a terminal
        decides never enter the stack or the memo."""
        x, y = (a, b) if a <= b else (b, a)
        r = self._terminal(is_and, x, y)
        if r >= 0:
            return r
        memo = self._and if is_and else self._or
        found = memo.get((x, y))
        if found is not None:
            return found
        level, lo, hi, unique = self.level, self.lo, self.hi, self._unique
        terminal = self._terminal
        # A fresh frame is the pair (x, y); an expanded one (x, y, v, k0, k1, r0, r1), with r0/r1
        # the results for the cofactor pairs k0/k1, -1 until known.
        stack: list[Any] = [(x, y)]
        while stack:
            top = stack[-1]
            if len(top) == 2:
                if top in memo:
                    stack.pop()
                    continue
                x, y = top
                lx, ly = level[x], level[y]
                if lx == ly:
                    v, x0, x1, y0, y1 = lx, lo[x], hi[x], lo[y], hi[y]
                elif lx < ly:
                    v, x0, x1, y0, y1 = lx, lo[x], hi[x], y, y
                else:
                    v, x0, x1, y0, y1 = ly, x, x, lo[y], hi[y]
                k0 = (x0, y0) if x0 <= y0 else (y0, x0)
                k1 = (x1, y1) if x1 <= y1 else (y1, x1)
                r0 = terminal(is_and, *k0)
                if r0 < 0:
                    r0 = memo.get(k0, -1)
                r1 = terminal(is_and, *k1)
                if r1 < 0:
                    r1 = memo.get(k1, -1)
                if r0 < 0 or r1 < 0:
                    stack[-1] = (x, y, v, k0, k1, r0, r1)
                    if r1 < 0:
                        stack.append(k1)
                    if r0 < 0:
                        stack.append(k0)
                    continue
            else:
                x, y, v, k0, k1, r0, r1 = top
                if r0 < 0:
                    r0 = memo[k0]
                if r1 < 0:
                    r1 = memo[k1]
            stack.pop()
            if r0 == r1:
                node = r0
            else:
                t = (v, r0, r1)
                got = unique.get(t)
                if got is None:
                    node = len(level)
                    level.append(v)
                    lo.append(r0)
                    hi.append(r1)
                    unique[t] = node
                else:
                    node = got
            memo[(x, y)] = node
        return memo[(a, b) if a <= b else (b, a)]

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

    def _probs(self, p: Mapping[Event, float], nodes: list[int]) -> dict[int, float]:
        """``p`` of the variable of every node in ``nodes``, by variable index (only those: the
        manager may hold far more variables than one root depends on)."""
        pv: dict[int, float] = {}
        level, order = self.level, self.order
        for n in nodes:
            v = level[n]
            if v not in pv:
                try:
                    pv[v] = float(p[order[v]])
                except KeyError:
                    raise KeyError(f"no probability for basic event {order[v]!r}") from None
        return pv

    def probability(self, root: int, p: Mapping[Event, float]) -> float:
        """Exact probability that ``root`` is true when each event ``e`` occurs with ``p[e]``,
        independently.  Costs O(size of ``root``'s diagram)."""
        nodes = self.reachable(root)
        return self._node_probs(nodes, self._probs(p, nodes))[root]

    def reachable(self, root: int) -> list[int]:
        """Internal nodes reachable from ``root``, in ascending index (children-first) order.

        Kept for the roots asked about most recently (what-if evaluations ask about the same
        journey roots again and again with other probabilities); a node's diagram never changes,
        so the memo is never stale."""
        known = self._reach.get(root)
        if known is not None:
            return known
        if len(self._reach) >= 256:
            self._reach.clear()
        out = self._reach[root] = self._walk(root)
        return out

    def _walk(self, root: int) -> list[int]:
        seen = {root} if root > 1 else set()
        stack = list(seen)
        lo, hi = self.lo, self.hi
        while stack:
            n = stack.pop()
            for c in (lo[n], hi[n]):
                if c > 1 and c not in seen:
                    seen.add(c)
                    stack.append(c)
        return sorted(seen)

    def _node_probs(self, nodes: list[int], pv: Mapping[int, float]) -> dict[int, float]:
        prob: dict[int, float] = {0: 0.0, 1: 1.0}
        level, lo, hi = self.level, self.lo, self.hi
        for n in nodes:
            px = pv[level[n]]
            prob[n] = px * prob[hi[n]] + (1.0 - px) * prob[lo[n]]
        return prob

    def importance(self, root: int, p: Mapping[Event, float]) -> dict[Event, Importance]:
        """Importance measures of the events ``root`` depends on (those labelling a node of its
        diagram; every other event has zero importance and is left out).  Costs O(size of
        ``root``'s diagram)."""
        nodes = self.reachable(root)
        pv = self._probs(p, nodes)
        prob = self._node_probs(nodes, pv)
        top = prob[root]
        reach = dict.fromkeys(nodes, 0.0)
        reach[0] = reach[1] = 0.0
        reach[root] = 1.0
        level, lo, hi = self.level, self.lo, self.hi
        birn = dict.fromkeys(pv, 0.0)
        for n in reversed(nodes):
            r = reach[n]
            if r == 0.0:
                continue
            v = level[n]
            px = pv[v]
            h, low = hi[n], lo[n]
            reach[h] += r * px
            reach[low] += r * (1.0 - px)
            birn[v] += r * (prob[h] - prob[low])
        out: dict[Event, Importance] = {}
        for v in sorted(birn):
            ib = birn[v]
            never = top - pv[v] * ib
            always = top + (1.0 - pv[v]) * ib
            fv = (top - never) / top if top > 0 else 0.0
            out[self.order[v]] = Importance(ib, max(0.0, never), min(1.0, always), fv)
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
