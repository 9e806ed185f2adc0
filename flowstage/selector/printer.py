"""Syntax tree → Calico's canonical selector text (`Selector.String()`), the form Calico hashes and compares.

Rules: every && / || group in parentheses, single spaces around binary operators, `!` glued to its operand,
strings in double quotes unless they contain one, set members sorted and de-duplicated.
"""

from __future__ import annotations

from flowstage.selector import nodes

_OPERATOR_TEXT: dict[type[nodes.Node], str] = {
    nodes.LabelEquals: " == ",
    nodes.LabelNotEquals: " != ",
    nodes.LabelContains: " contains ",
    nodes.LabelStartsWith: " starts with ",
    nodes.LabelEndsWith: " ends with ",
    nodes.LabelIn: " in ",
    nodes.LabelNotIn: " not in ",
}


def canonical(root: nodes.Node) -> str:
    fragments: list[str] = []
    _collect(root, fragments)
    return "".join(fragments)


def quote(value: str) -> str:
    """A string literal as Calico prints it; a value holding both quote kinds cannot be written at all."""
    return f"'{value}'" if '"' in value else f'"{value}"'


def _collect(node: nodes.Node, out: list[str]) -> None:
    if isinstance(node, nodes.LabelComparison):
        out += (node.key, _OPERATOR_TEXT[type(node)], quote(node.value))
    elif isinstance(node, nodes.LabelSetMembership):
        out += (node.key, _OPERATOR_TEXT[type(node)], "{", ", ".join(quote(v) for v in node.values), "}")
    elif isinstance(node, nodes.HasLabel):
        out += ("has(", node.key, ")")
    elif isinstance(node, nodes.AllNode):
        out.append("all()")
    elif isinstance(node, nodes.GlobalNode):
        out.append("global()")
    elif isinstance(node, nodes.Not):
        out.append("!")
        _collect(node.operand, out)
    elif isinstance(node, nodes.And | nodes.Or):
        joiner = " && " if isinstance(node, nodes.And) else " || "
        out.append("(")
        for index, operand in enumerate(node.operands):
            if index:
                out.append(joiner)
            _collect(operand, out)
        out.append(")")
    else:
        raise TypeError(f"not a selector node: {node!r}")
