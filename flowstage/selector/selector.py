"""The `Selector` value the rest of flowstage uses: parsed once, compiled once, compared by canonical form.

Builders compose selector *text* the way Calico's update processors do (`(A) && (B)`, textual `all()`
rewrites), then parse it, so composed selectors behave exactly like the ones Calico computes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from flowstage.selector import nodes, printer, sql
from flowstage.selector.errors import SelectorError
from flowstage.selector.matcher import (
    CasePlan,
    KleeneMatcher,
    LabelMatcher,
    compile_kleene,
    compile_matcher,
    decide_by_cases,
)
from flowstage.selector.parser import parse
from flowstage.selector.tokenizer import is_label_key

# Deepest tree accepted. Parsed selectors stay below it (40 parenthesis levels give depth 121 at most);
# the bound keeps generated matcher code under Python's limit of 200 nested brackets.
MAX_DEPTH = 150


class Selector:
    """A Calico label selector.

    `matches(labels)` is the compiled matcher itself (an attribute holding one generated function, so a
    call costs no extra dispatch). `matches_cached(labels)` remembers results per hashable label set.
    Selectors are immutable and hashable; two selectors are equal when their canonical forms are.
    """

    __slots__ = (
        "node",
        "source",
        "matches",
        "_canonical",
        "_uid",
        "_cache",
        "_kleene",
        "_case_plan",
        "_label_keys",
    )

    CACHE_LIMIT = 16_384  # distinct label sets remembered per selector before the cache starts over

    node: nodes.Node
    source: str
    matches: LabelMatcher

    def __init__(self, node: nodes.Node, source: str | None = None) -> None:
        if nodes.depth(node) > MAX_DEPTH:
            raise SelectorError(f"selector nested too deeply: more than {MAX_DEPTH} levels", source or "", 0)
        canonical = printer.canonical(node)
        init = object.__setattr__
        init(self, "node", node)
        init(self, "source", canonical if source is None else source)
        init(self, "matches", compile_matcher(node))
        init(self, "_canonical", canonical)
        init(self, "_uid", None)
        init(self, "_cache", {})
        init(self, "_kleene", None)
        init(self, "_case_plan", None)
        init(self, "_label_keys", None)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"Selector is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"Selector is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[Callable[..., Selector], tuple[Any, ...]]:
        return (Selector, (self.node, self.source))

    # --- identity ---------------------------------------------------------------------------------

    def __str__(self) -> str:
        return self._canonical

    def __repr__(self) -> str:
        return f"Selector({self._canonical!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Selector):
            return self._canonical == other._canonical
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._canonical)

    @property
    def uid(self) -> str:
        """Calico's UniqueID: `s:` + unpadded base64url of SHA-224 over `s:` + canonical form."""
        if self._uid is None:
            digest = hashlib.sha224(b"s:" + self._canonical.encode()).digest()
            object.__setattr__(self, "_uid", "s:" + base64.urlsafe_b64encode(digest).decode().rstrip("="))
        return self._uid

    @property
    def label_keys(self) -> frozenset[str]:
        """Every label key the selector mentions."""
        if self._label_keys is None:
            keys = frozenset(n.key for n in nodes.walk(self.node) if isinstance(n, nodes.LabelNode))
            object.__setattr__(self, "_label_keys", keys)
        return self._label_keys

    @property
    def is_all(self) -> bool:
        """Whether the canonical form is `all()` (this includes the empty selector)."""
        return self._canonical == "all()"

    @property
    def uses_global(self) -> bool:
        return any(isinstance(n, nodes.GlobalNode) for n in nodes.walk(self.node))

    # --- matching ---------------------------------------------------------------------------------

    def matches_cached(self, labels: Mapping[str, str]) -> bool:
        """`matches`, remembered per label set; `labels` should be hashable (e.g. FrozenMap).

        An unhashable mapping is matched without caching. The cache is cleared when it reaches
        CACHE_LIMIT entries, so memory stays bounded however many label sets pass through.
        """
        cache = self._cache
        try:
            return cache[labels]
        except KeyError:
            pass
        except TypeError:
            return self.matches(labels)
        result = self.matches(labels)
        if len(cache) >= self.CACHE_LIMIT:
            cache.clear()
        cache[labels] = result
        return result

    def evaluate(
        self, labels: Mapping[str, str], unknown: Callable[[str], bool] | None = None
    ) -> bool | None:
        """Three-valued match: None only when the answer depends on labels whose presence and value are
        unknown (`unknown(key)` is asked once per key the selector mentions).

        Terms on unknown keys combine by Kleene logic, so `a == "x" || all()` is True even when `a` is
        unknown. When that leaves None, every case of the unknown labels is tried where that is exact
        (only ==, !=, in, not in, has() on them): `a == "x" || a != "x"` is True, `a == "x" && a == "y"`
        False. With `contains` / `starts with` / `ends with` on an unknown key the Kleene None stands.
        """
        if unknown is None:
            return self.matches(labels)
        unknown_keys = {key for key in self.label_keys if unknown(key)}
        if not unknown_keys:
            return self.matches(labels)
        kleene: KleeneMatcher | None = self._kleene
        if kleene is None:
            kleene = compile_kleene(self.node)
            object.__setattr__(self, "_kleene", kleene)
        verdict = kleene(labels, unknown_keys)
        if verdict is None:
            plan = self._case_plan
            if plan is None:
                plan = CasePlan(self.node)
                object.__setattr__(self, "_case_plan", plan)
            verdict = decide_by_cases(plan, self.matches, labels, unknown_keys)
        return verdict

    def to_sql(self, labels_expr: str) -> str:
        """A DuckDB boolean expression, TRUE or FALSE and never NULL, over the MAP(VARCHAR, VARCHAR)
        expression `labels_expr` (inserted as given); a NULL map or NULL value counts as absent."""
        return sql.to_sql(self.node, labels_expr)

    # --- rewriting --------------------------------------------------------------------------------

    def prefixed(self, prefix: str) -> Selector:
        """Every label key prefixed with `prefix` (Calico's PrefixVisitor), e.g. `pcns.` for namespaces."""
        if prefix and not is_label_key(prefix):
            raise ValueError(f"label prefix {prefix!r} may only use the characters A-Z a-z 0-9 _ . / -")
        return Selector(_prefix_keys(self.node, prefix))

    def replace_all(self, replacement: Selector) -> Selector:
        """Calico's textual rewrite: every `all()` in the source text becomes `str(replacement)`.

        Like Calico's strings.Replace, this touches the text, not the tree: `all( )` written with a
        space is left alone, and `all()` inside a quoted value is replaced too.
        """
        return _replace_text(self, "all()", replacement)

    def replace_global(self, replacement: Selector) -> Selector:
        """Calico's textual rewrite of every `global()` in the source text (see `replace_all`)."""
        return _replace_text(self, "global()", replacement)


def _prefix_keys(node: nodes.Node, prefix: str) -> nodes.Node:
    if isinstance(node, nodes.LabelComparison):
        return type(node)(prefix + node.key, node.value)
    if isinstance(node, nodes.LabelSetMembership):
        return type(node)(prefix + node.key, node.values)
    if isinstance(node, nodes.HasLabel):
        return nodes.HasLabel(prefix + node.key)
    if isinstance(node, nodes.Not):
        return nodes.Not(_prefix_keys(node.operand, prefix))
    if isinstance(node, nodes.And | nodes.Or):
        return type(node)(tuple(_prefix_keys(op, prefix) for op in node.operands))
    return node


def _replace_text(selector: Selector, old: str, replacement: Selector) -> Selector:
    if old not in selector.source:
        return selector
    return parse_selector(selector.source.replace(old, str(replacement)))


@functools.lru_cache(maxsize=16_384)
def parse_selector(text: str) -> Selector:
    """Parse Calico selector text (memoised by text). Raises SelectorError with position and caret."""
    if not isinstance(text, str):
        raise TypeError(f"a selector is text, not {type(text).__name__}")
    return Selector(parse(text), text)


ALL = parse_selector("all()")


def _is_blank(selector: Selector) -> bool:
    return selector.source.strip(" \t") == ""


def and_selectors(*selectors: Selector) -> Selector:
    """Calico's `(A) && (B)`, folded left for more operands; blank selectors are skipped, as Calico does.

    The result's source is that text, so `replace_all` afterwards rewrites exactly what Calico would.
    """
    parts = [s for s in selectors if not _is_blank(s)]
    if not parts:
        return ALL
    result = parts[0]
    for part in parts[1:]:
        result = parse_selector(f"({result.source}) && ({part.source})")
    return result


def or_selectors(*selectors: Selector) -> Selector:
    """`(A) || (B)`, folded left; a blank selector stands for `all()`."""
    if not selectors:
        raise ValueError("or_selectors needs at least one selector")
    texts = ["all()" if _is_blank(s) else s.source for s in selectors]
    text = texts[0]
    for part in texts[1:]:
        text = f"({text}) || ({part})"
    return parse_selector(text)


def not_selector(selector: Selector) -> Selector:
    """`!(S)`."""
    return parse_selector(f"!({'all()' if _is_blank(selector) else selector.source})")


def label_equals(key: str, value: str) -> Selector:
    """The single term `key == "value"` (quoted as Calico prints it; the value may hold one kind of quote)."""
    _check_key(key)
    if '"' in value and "'" in value:
        text = f"{key} == {value}"
        raise SelectorError(
            "a selector string cannot contain both ' and \" (selectors have no escapes)", text, len(key) + 4
        )
    return parse_selector(f"{key} == {printer.quote(value)}")


def has_label(key: str) -> Selector:
    """The single term `has(key)`."""
    _check_key(key)
    return parse_selector(f"has({key})")


def _check_key(key: str) -> None:
    if not is_label_key(key):
        raise SelectorError(
            "a label key in a selector is 1 to 512 of the characters A-Z a-z 0-9 _ . / -", key, 0
        )


def global_usage_problem(field: str, selector: Selector) -> str | None:
    """Calico API validation of `global()`: only an EntityRule namespaceSelector may use it, and only alone.

    `field` is the API field, e.g. "EntityRule.namespaceSelector" or "NetworkPolicySpec.selector".
    Returns the problem in Calico's words, or None when the selector is acceptable there.
    """
    if not selector.uses_global:
        return None
    if field != "EntityRule.namespaceSelector":
        return f"global() can only be used in an EntityRule namespaceSelector, not in {field}"
    if str(selector) != "global()":
        return "global() cannot be combined with other selectors"
    return None
