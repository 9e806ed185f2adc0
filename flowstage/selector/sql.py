"""Syntax tree → a DuckDB boolean expression over a MAP(VARCHAR, VARCHAR), with Calico's semantics.

Every term is wrapped so it is TRUE or FALSE, never NULL: a NULL map, an absent key and a key whose value
is NULL all count as "label absent", and get the answer Calico gives for an absent label.
"""

from __future__ import annotations

from flowstage.selector import nodes


def to_sql(root: nodes.Node, labels_expr: str) -> str:
    """The SQL for `root` applied to the map expression `labels_expr` (inserted as given)."""
    return _render(root, labels_expr)


def sql_string(value: str) -> str:
    """A DuckDB string literal for `value`: quotes doubled, NUL characters spliced in with chr(0)."""
    literals = ["'" + part.replace("'", "''") + "'" for part in value.split("\x00")]
    return literals[0] if len(literals) == 1 else "(" + " || chr(0) || ".join(literals) + ")"


def _render(node: nodes.Node, labels: str) -> str:
    if isinstance(node, nodes.LabelComparison | nodes.LabelSetMembership | nodes.HasLabel):
        value_of = f"map_extract_value({labels}, {sql_string(node.key)})"
        if isinstance(node, nodes.HasLabel):
            return f"({value_of} IS NOT NULL)"
        if isinstance(node, nodes.LabelSetMembership):
            absent = "TRUE" if isinstance(node, nodes.LabelNotIn) else "FALSE"
            if not node.values:
                return absent
            members = ", ".join(sql_string(v) for v in node.values)
            operator = "NOT IN" if isinstance(node, nodes.LabelNotIn) else "IN"
            return f"coalesce({value_of} {operator} ({members}), {absent})"
        literal = sql_string(node.value)
        if isinstance(node, nodes.LabelEquals):
            return f"coalesce({value_of} = {literal}, FALSE)"
        if isinstance(node, nodes.LabelNotEquals):
            return f"coalesce({value_of} <> {literal}, TRUE)"
        if isinstance(node, nodes.LabelContains):
            return f"coalesce(contains({value_of}, {literal}), FALSE)"
        if isinstance(node, nodes.LabelStartsWith):
            return f"coalesce(starts_with({value_of}, {literal}), FALSE)"
        if isinstance(node, nodes.LabelEndsWith):
            return f"coalesce(ends_with({value_of}, {literal}), FALSE)"
    if isinstance(node, nodes.AllNode | nodes.GlobalNode):
        return "TRUE"
    if isinstance(node, nodes.Not):
        return f"(NOT {_render(node.operand, labels)})"
    if isinstance(node, nodes.And | nodes.Or):
        joiner = " AND " if isinstance(node, nodes.And) else " OR "
        return "(" + joiner.join(_render(op, labels) for op in node.operands) + ")"
    raise TypeError(f"not a selector node: {node!r}")
