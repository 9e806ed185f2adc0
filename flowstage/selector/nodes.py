"""The selector syntax tree: one frozen node type per Calico AST node (lcg/selector/parser/ast.go).

Nodes are plain values; matching, printing and SQL rendering live in their own modules and walk these.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every selector node."""


@dataclass(frozen=True, slots=True)
class LabelComparison(Node):
    """`key <op> "value"` for the five operators that compare one label with one string."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class LabelEquals(LabelComparison):
    """`k == "v"`: false when `k` is absent."""


@dataclass(frozen=True, slots=True)
class LabelNotEquals(LabelComparison):
    """`k != "v"`: true when `k` is absent."""


@dataclass(frozen=True, slots=True)
class LabelContains(LabelComparison):
    """`k contains "v"`: false when `k` is absent; `contains ""` matches any present value."""


@dataclass(frozen=True, slots=True)
class LabelStartsWith(LabelComparison):
    """`k starts with "v"`: false when `k` is absent."""


@dataclass(frozen=True, slots=True)
class LabelEndsWith(LabelComparison):
    """`k ends with "v"`: false when `k` is absent."""


@dataclass(frozen=True, slots=True)
class LabelSetMembership(Node):
    """`key in {...}` / `key not in {...}`; `values` is sorted and de-duplicated, as Calico stores it."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LabelIn(LabelSetMembership):
    """`k in {...}`: false when `k` is absent; `in {}` never matches."""


@dataclass(frozen=True, slots=True)
class LabelNotIn(LabelSetMembership):
    """`k not in {...}`: true when `k` is absent; `not in {}` always matches."""


@dataclass(frozen=True, slots=True)
class HasLabel(Node):
    """`has(k)`."""

    key: str


@dataclass(frozen=True, slots=True)
class AllNode(Node):
    """`all()` (also what an empty selector means)."""


@dataclass(frozen=True, slots=True)
class GlobalNode(Node):
    """`global()`: true when evaluated; only a textual rewrite gives it meaning (semantics §2.6)."""


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class And(Node):
    """Two or more operands; Calico keeps nesting as written, `(a && b) && c` is not flattened."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    operands: tuple[Node, ...]


LabelNode = LabelComparison | LabelSetMembership | HasLabel


def walk(root: Node) -> Iterator[Node]:
    """Every node under `root` (root first), without recursion."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Not):
            stack.append(node.operand)
        elif isinstance(node, And | Or):
            stack.extend(reversed(node.operands))


def depth(root: Node) -> int:
    """Nesting depth of the tree (a single term has depth 1), computed without recursion."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, Not):
            stack.append((node.operand, level + 1))
        elif isinstance(node, And | Or):
            stack.extend((child, level + 1) for child in node.operands)
    return deepest
