"""The Calico selector language: tokenizer → parser → syntax tree → matcher, canonical printer, SQL.

Behaves like Calico's libcalico-go/lib/selector (calico-semantics.md §1), corners included:
`!=` and `not in` are true when the label is missing, an empty selector means `all()`, strings have no
escapes, and only spaces and tabs are whitespace.

    >>> sel = parse_selector('app == "db" && env != "dev"')
    >>> sel.matches({"app": "db"}), str(sel)
    (True, '(app == "db" && env != "dev")')
"""

from flowstage.selector.errors import SelectorError
from flowstage.selector.parser import MAX_NESTING
from flowstage.selector.selector import (
    ALL,
    MAX_DEPTH,
    Selector,
    and_selectors,
    global_usage_problem,
    has_label,
    label_equals,
    not_selector,
    or_selectors,
    parse_selector,
)
from flowstage.selector.tokenizer import MAX_LABEL_LENGTH, MAX_SELECTOR_LENGTH, is_label_key

__all__ = [
    "ALL",
    "MAX_DEPTH",
    "MAX_LABEL_LENGTH",
    "MAX_NESTING",
    "MAX_SELECTOR_LENGTH",
    "Selector",
    "SelectorError",
    "and_selectors",
    "global_usage_problem",
    "has_label",
    "is_label_key",
    "label_equals",
    "not_selector",
    "or_selectors",
    "parse_selector",
]
