"""Which policy selectors a subject can match: selectors indexed by a label condition every match needs, so a
subject tests only those its labels leave possible, and the answers are shared by subjects with equal labels.

The index only skips selectors that are surely false: one whose required label the subject carries with another
value (or lacks), where that label is known. A selector on a label the log cannot tell is always tested.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowstage.policy.engine.endpoints import EndpointFacts
from flowstage.selector import Selector, nodes

Requirement = tuple[str, frozenset[str] | None]  # label key, and its allowed values (None: any, merely present)


def requirement(selector: Selector) -> Requirement | None:
    """A label condition every labels set the selector matches satisfies: `key` present with one of `values`
    (None: any value). Found through conjunctions only; an equality is preferred over `in`, which is preferred
    over `has`, as the narrowest index. None when the selector has none (e.g. `all()`, `a == "x" || b == "y"`)."""
    best: Requirement | None = None
    best_rank = 3
    stack: list[nodes.Node] = [selector.node]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.And):
            stack.extend(node.operands)
        elif isinstance(node, nodes.LabelEquals) and best_rank > 0:
            best, best_rank = (node.key, frozenset((node.value,))), 0
        elif isinstance(node, nodes.LabelIn) and best_rank > 1:
            best, best_rank = (node.key, frozenset(node.values)), 1
        elif isinstance(node, nodes.HasLabel) and best_rank > 2:
            best, best_rank = (node.key, None), 2
    return best


class SelectorIndex:
    """The slots of a sequence of selectors, by the label each one requires."""

    __slots__ = ("size", "unindexed", "by_value", "by_presence", "indexed")

    def __init__(self, selectors: Sequence[Selector]) -> None:
        self.size = len(selectors)
        self.unindexed: list[int] = []
        self.by_value: dict[str, dict[str, list[int]]] = {}  # key -> value -> slots requiring it
        self.by_presence: dict[str, list[int]] = {}  # key -> slots requiring only that it is present
        self.indexed: dict[str, list[int]] = {}  # key -> every slot indexed under it
        for slot, selector in enumerate(selectors):
            found = requirement(selector)
            if found is None:
                self.unindexed.append(slot)
                continue
            key, values = found
            self.indexed.setdefault(key, []).append(slot)
            if values is None:
                self.by_presence.setdefault(key, []).append(slot)
            else:
                per_value = self.by_value.setdefault(key, {})
                for value in values:
                    per_value.setdefault(value, []).append(slot)

    def candidates(self, facts: EndpointFacts) -> list[int]:
        """The slots whose selector may match `facts` (every other one surely does not)."""
        if facts.owned is None:
            return list(range(self.size))  # nothing is known of its labels: every selector is asked
        found = list(self.unindexed)
        labels = facts.labels
        unknowns = facts.has_unknowns
        for key, slots in self.indexed.items():
            if unknowns and facts.unknown(key):
                found.extend(slots)
                continue
            value = labels.get(key)
            if value is None:
                continue
            found.extend(self.by_presence.get(key, ()))
            per_value = self.by_value.get(key)
            if per_value is not None:
                found.extend(per_value.get(value, ()))
        return found
