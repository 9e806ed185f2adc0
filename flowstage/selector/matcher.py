"""Syntax tree → Python functions that match label sets: generated code for the hot path, closures for
three-valued (Kleene) evaluation when some labels are unknown.

The generated function is one expression over `labels.get` / `in labels`, so a match costs one Python call.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping

from flowstage.selector import nodes

LabelMatcher = Callable[[Mapping[str, str]], bool]
KleeneMatcher = Callable[[Mapping[str, str], Collection[str]], "bool | None"]


def compile_matcher(root: nodes.Node) -> LabelMatcher:
    """One Python function `match(labels) -> bool` with Calico's semantics for absent labels."""
    constants: dict[str, object] = {}
    body = _expression(root, constants)
    source = f"def match(labels):\n    return {body}\n"
    namespace: dict[str, object] = dict(constants)
    # Safe to exec: the source is built from the tree, and label text enters it only through repr().
    exec(compile(source, "<selector>", "exec"), namespace)
    match = namespace["match"]
    assert callable(match)
    return match


def _expression(node: nodes.Node, constants: dict[str, object]) -> str:
    """Python source for `node`; label keys and values enter only through repr(), so any text is safe."""
    if isinstance(node, nodes.LabelComparison):
        key, value = repr(node.key), repr(node.value)
        if isinstance(node, nodes.LabelEquals):
            return f"labels.get({key}) == {value}"
        if isinstance(node, nodes.LabelNotEquals):
            return f"labels.get({key}) != {value}"
        if isinstance(node, nodes.LabelContains):
            if node.value == "":
                return f"{key} in labels"
            return f"((_v := labels.get({key})) is not None and {value} in _v)"
        if isinstance(node, nodes.LabelStartsWith):
            return f"((_v := labels.get({key})) is not None and _v.startswith({value}))"
        if isinstance(node, nodes.LabelEndsWith):
            return f"((_v := labels.get({key})) is not None and _v.endswith({value}))"
    if isinstance(node, nodes.LabelSetMembership):
        name = f"_set{len(constants)}"
        constants[name] = frozenset(node.values)
        operator = "in" if isinstance(node, nodes.LabelIn) else "not in"
        # get() gives None for an absent label, which is in no set: `in` is false, `not in` true.
        return f"labels.get({node.key!r}) {operator} {name}"
    if isinstance(node, nodes.HasLabel):
        return f"{node.key!r} in labels"
    if isinstance(node, nodes.AllNode | nodes.GlobalNode):
        return "True"
    if isinstance(node, nodes.Not):
        return f"(not {_expression(node.operand, constants)})"
    if isinstance(node, nodes.And | nodes.Or):
        joiner = " and " if isinstance(node, nodes.And) else " or "
        return "(" + joiner.join(_expression(op, constants) for op in node.operands) + ")"
    raise TypeError(f"not a selector node: {node!r}")


def compile_kleene(root: nodes.Node) -> KleeneMatcher:
    """`evaluate(labels, unknown_keys) -> True | False | None` in Kleene's three-valued logic.

    A term on a key in `unknown_keys` is None (could be either); `&&` is False if any operand is False,
    `||` True if any is True, so None comes out only when the answer really hinges on an unknown term.
    """
    if isinstance(root, nodes.LabelComparison | nodes.LabelSetMembership | nodes.HasLabel):
        known = compile_matcher(root)
        key = root.key

        def term(labels: Mapping[str, str], unknown_keys: Collection[str]) -> bool | None:
            return None if key in unknown_keys else known(labels)

        return term
    if isinstance(root, nodes.AllNode | nodes.GlobalNode):
        return lambda labels, unknown_keys: True
    if isinstance(root, nodes.Not):
        operand = compile_kleene(root.operand)

        def negation(labels: Mapping[str, str], unknown_keys: Collection[str]) -> bool | None:
            result = operand(labels, unknown_keys)
            return None if result is None else not result

        return negation
    if isinstance(root, nodes.And | nodes.Or):
        operands = tuple(compile_kleene(op) for op in root.operands)
        decisive = not isinstance(root, nodes.And)  # False decides an &&, True decides an ||

        def junction(labels: Mapping[str, str], unknown_keys: Collection[str]) -> bool | None:
            result: bool | None = not decisive
            for operand in operands:
                value = operand(labels, unknown_keys)
                if value is decisive:
                    return decisive
                if value is None:
                    result = None
            return result

        return junction
    raise TypeError(f"not a selector node: {root!r}")


# Refining Kleene's None by trying every case is bounded: beyond this many label combinations, None stands.
MAX_CASES = 512
_FINITE_TERMS = (nodes.LabelEquals, nodes.LabelNotEquals, nodes.LabelSetMembership, nodes.HasLabel)


class CasePlan:
    """Per label key, the values a selector's terms name, and the keys also used in open-ended terms
    (contains, starts with, ends with) whose cases cannot be listed."""

    __slots__ = ("named", "open_keys")

    def __init__(self, root: nodes.Node) -> None:
        named: dict[str, set[str]] = {}
        open_keys: set[str] = set()
        for node in nodes.walk(root):
            if not isinstance(node, nodes.LabelNode):
                continue
            values = named.setdefault(node.key, set())
            if not isinstance(node, _FINITE_TERMS):
                open_keys.add(node.key)
            elif isinstance(node, nodes.LabelComparison):
                values.add(node.value)
            elif isinstance(node, nodes.LabelSetMembership):
                values.update(node.values)
        self.named = {key: tuple(sorted(values)) for key, values in named.items()}
        self.open_keys = frozenset(open_keys)


def decide_by_cases(
    plan: CasePlan, match: LabelMatcher, labels: Mapping[str, str], unknown_keys: Collection[str]
) -> bool | None:
    """True or False if every possible value of the unknown labels gives that answer, else None.

    Exact when the unknown keys appear only in ==, !=, in, not in and has(): such a term can only tell
    apart "absent", each value it names, and "any other value", so trying those cases covers every label
    set. Terms like `starts with` on an unknown key, or too many cases, leave the answer None.
    """
    if not plan.open_keys.isdisjoint(unknown_keys):
        return None
    keys = [key for key in plan.named if key in unknown_keys]
    cases: list[list[str | None]] = []  # None: the label is absent
    count = 1
    for key in keys:
        values = plan.named[key]
        other = "\x00other" + "".join(values)  # longer than, so unlike, every value named
        cases.append([None, *values, other])
        count *= len(cases[-1])
        if count > MAX_CASES:
            return None
    known = {k: v for k, v in labels.items() if k not in unknown_keys}
    answers = set()
    for combination in itertools.product(*cases):
        case = dict(known)
        case.update((key, value) for key, value in zip(keys, combination, strict=True) if value is not None)
        answers.add(match(case))
        if len(answers) > 1:
            return None
    return answers.pop()
