"""Fault trees: basic events, AND / OR / at-least-m gates, and minimal cut sets.

A fault tree describes when a *top event* (a user journey failing) happens in terms of *basic
events* (a unit failing, a zone going down).  Gates are coherent (no negation), so the structure
function is monotone and its minimal cut sets are well defined: the smallest sets of basic events
whose joint occurrence causes the top event.  A cut set of order one is a single point of failure.

:func:`minimal_cut_sets` works bottom-up over the gate DAG with truncation at ``max_order``:

* OR gate: the union of the children's families;
* AND gate: the cross product (pairwise unions) of the children's families;
* at-least-m-of-n gate: the union, over every m-subset of children, of their cross product;

after each step, sets larger than ``max_order`` are dropped and non-minimal sets (supersets of
another set in the family) removed.  Truncation is exact for every cut set of order
``<= max_order``: all subsets of such a set are also that small, so minimality is judged correctly.
"""

from __future__ import annotations

import itertools
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "And",
    "AtLeast",
    "Event",
    "Gate",
    "Node",
    "Or",
    "events_of",
    "minimal_cut_sets",
    "minimize",
    "postorder",
]


@dataclass(frozen=True, slots=True, eq=False)
class Event:
    """A basic event, identified by ``name``; ``label`` is how explanations speak of it."""

    name: str
    label: str = ""

    def __repr__(self) -> str:
        return f"Event({self.name!r})"


@dataclass(frozen=True, slots=True, eq=False)
class Gate:
    """The top event of ``children`` when at least ``m`` of them occur.

    OR is ``m = 1``; AND is ``m = len(children)``.  ``name`` is for explanations and debugging.
    """

    m: int
    children: tuple[Node, ...]
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.children:
            raise ValueError("a gate needs at least one child")
        if not 1 <= self.m <= len(self.children):
            raise ValueError(f"m must be in 1..{len(self.children)}, got {self.m}")

    @property
    def kind(self) -> str:
        """``or``, ``and`` or ``atleast``."""
        if self.m == 1:
            return "or"
        if self.m == len(self.children):
            return "and"
        return "atleast"

    def __repr__(self) -> str:
        inner = ", ".join(repr(c) for c in self.children)
        if self.kind == "atleast":
            return f"AtLeast({self.m}, {inner})"
        return f"{self.kind.capitalize()}({inner})"


Node = Event | Gate


def Or(*children: Node, name: str = "") -> Gate:
    """Occurs when any child occurs."""
    return Gate(1, tuple(children), name)


def And(*children: Node, name: str = "") -> Gate:
    """Occurs when every child occurs."""
    return Gate(len(children), tuple(children), name)


def AtLeast(m: int, *children: Node, name: str = "") -> Gate:
    """Occurs when at least ``m`` children occur (a k-of-n system with n - k + 1 = m fails)."""
    return Gate(m, tuple(children), name)


def events_of(root: Node) -> list[Event]:
    """Basic events under ``root`` in depth-first, first-seen order (a good BDD variable order)."""
    out: list[Event] = []
    seen: set[int] = set()
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, Event):
            out.append(node)
        else:
            stack.extend(reversed(node.children))
    return out


def postorder(root: Node, skip: Container[int] = ()) -> list[Node]:
    """Nodes under ``root``, children before parents, each once; ids in ``skip`` are not entered."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:  # no recursion: deep dependency chains are fine
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen or id(node) in skip:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if isinstance(node, Gate):
            stack.extend((c, False) for c in node.children)
    return order


CutSet = frozenset[Event]


def minimize(family: Iterable[CutSet]) -> list[CutSet]:
    """Drop every set that is a superset of another; sorted by order, then by event names."""
    unique = sorted(set(family), key=len)
    kept: set[CutSet] = set()
    out: list[CutSet] = []
    for s in unique:
        if len(s) <= 4:
            redundant = any(
                frozenset(sub) in kept
                for r in range(1, len(s))
                for sub in itertools.combinations(s, r)
            )
        else:
            redundant = any(k <= s for k in out if len(k) < len(s))
        if not redundant:
            kept.add(s)
            out.append(s)
    out.sort(key=lambda s: (len(s), sorted(e.name for e in s)))
    return out


def _product(families: Sequence[list[CutSet]], max_order: int) -> list[CutSet]:
    acc: list[CutSet] = [frozenset()]
    for fam in families:
        nxt: set[CutSet] = set()
        for a in acc:
            for b in fam:
                u = a | b
                if len(u) <= max_order:
                    nxt.add(u)
        acc = minimize(nxt)
        if not acc:
            return []
    return acc


def minimal_cut_sets(root: Node, max_order: int = 3) -> list[frozenset[Event]]:
    """Minimal cut sets of ``root`` up to ``max_order`` events, exact for those orders.

    >>> a, b, c, d = (Event(x) for x in "abcd")
    >>> [sorted(e.name for e in s) for s in minimal_cut_sets(Or(Or(a, b), And(c, d)))]
    [['a'], ['b'], ['c', 'd']]
    """
    if max_order < 1:
        raise ValueError(f"max_order must be >= 1, got {max_order}")
    memo: dict[int, list[CutSet]] = {}
    for node in postorder(root):
        if isinstance(node, Event):
            memo[id(node)] = [frozenset((node,))]
            continue
        fams = [memo[id(c)] for c in node.children]
        if node.m == 1:
            memo[id(node)] = minimize(s for fam in fams for s in fam)
        elif node.m == len(fams):
            memo[id(node)] = _product(fams, max_order)
        else:
            acc: list[CutSet] = []
            for combo in itertools.combinations(fams, node.m):
                acc.extend(_product(combo, max_order))
            memo[id(node)] = minimize(acc)
    return memo[id(root)]
