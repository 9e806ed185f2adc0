"""Generated selectors and label sets (hypothesis): the parser, canonical printer, compiled matcher,
three-valued evaluation and DuckDB SQL all agree with a small reference evaluator written from the
semantics table (calico-semantics.md §1.3).

Selectors are generated as trees and written out with varied spelling (spacing, quote style, `startswith`
vs `starts with`, `!!`, redundant parentheses, trailing commas), so the tokenizer's corners are exercised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowstage.policy.model import FrozenMap
from flowstage.selector import parse_selector

# Keys include words the grammar uses elsewhere: they are still plain labels where a label is expected.
KEYS = ["a", "b", "app", "x.y/z-1_2", "in", "has", "all", "not", "contains", "-9"]
VALUE_CHARS = ["a", "b", "ab", " ", "'", '"', "é", "(", "&&", "!", "=", "\t", "\\", "}", ","]

values = st.lists(st.sampled_from(VALUE_CHARS), max_size=3).map("".join)
literals = values.filter(lambda v: not ('"' in v and "'" in v))  # a selector string cannot hold both
label_sets = st.dictionaries(st.sampled_from(KEYS), values, max_size=5)

Tree = tuple[Any, ...]
COMPARISONS = ["==", "!=", "contains", "starts with", "ends with"]


def leaves() -> st.SearchStrategy[Tree]:
    return st.one_of(
        st.tuples(st.sampled_from(COMPARISONS), st.sampled_from(KEYS), literals),
        st.tuples(st.sampled_from(["in", "not in"]), st.sampled_from(KEYS), st.lists(literals, max_size=3)),
        st.tuples(st.just("has"), st.sampled_from(KEYS)),
        st.tuples(st.sampled_from(["all", "global"])),
    )


trees = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)


def reference(tree: Tree, labels: Mapping[str, str]) -> bool:
    """The semantics table, evaluated directly."""
    op = tree[0]
    if op in ("all", "global"):
        return True
    if op == "not":
        return not reference(tree[1], labels)
    if op == "and":
        return all(reference(t, labels) for t in tree[1])
    if op == "or":
        return any(reference(t, labels) for t in tree[1])
    key = tree[1]
    if key not in labels:
        return op in ("!=", "not in")
    value = labels[key]
    if op == "has":
        return True
    if op in ("in", "not in"):
        return (value in tree[2]) == (op == "in")
    return {
        "==": value == tree[2],
        "!=": value != tree[2],
        "contains": tree[2] in value,
        "starts with": value.startswith(tree[2]),
        "ends with": value.endswith(tree[2]),
    }[op]


@st.composite
def written(draw: st.DrawFn, tree: Tree) -> str:
    """Selector text for `tree`, with a random but valid spelling."""
    space = st.sampled_from(["", " ", "\t", "  "])
    gap = st.sampled_from([" ", "\t", " \t "])  # where whitespace is required

    def quoted(value: str) -> str:
        quote = "'" if '"' in value else '"' if "'" in value else draw(st.sampled_from(["'", '"']))
        return quote + value + quote

    def primary(t: Tree) -> str:
        """Text that parses as one primary (what `!` and `&&` operands must be)."""
        text, is_primary = write(t)
        if not is_primary or draw(st.integers(0, 5)) == 0:
            text = "(" + draw(space) + text + draw(space) + ")"
        return text

    def write(t: Tree) -> tuple[str, bool]:
        op = t[0]
        if op in ("all", "global"):
            return f"{op}({draw(space)})", True
        if op == "has":
            return f"has({draw(space)}{t[1]}{draw(space)})", True
        if op == "not":
            # Any odd number of `!` negates; an even number in front of the operand cancels.
            bangs = draw(st.sampled_from(["!", "!!!", "! ! !", "!" + draw(space) + "!!"]))
            cancelling = draw(st.sampled_from(["", "", "!!"]))
            return bangs + draw(space) + cancelling + primary(t[1]), True
        if op in ("and", "or"):
            joiner = draw(space) + ("&&" if op == "and" else "||") + draw(space)
            parts = [primary(c) if op == "and" else write_and_operand(c) for c in t[1]]
            return joiner.join(parts), False
        key = t[1]
        if op in ("in", "not in"):
            word = "in" if op == "in" else draw(st.sampled_from(["not in", "notin", "not\tin", "not  in"]))
            members = [quoted(v) for v in t[2]] + [quoted(v) for v in t[2][:1]]  # a duplicate is fine
            inside = ("," + draw(space)).join(members)
            if members and draw(st.booleans()):
                inside += ","
            return f"{key}{draw(gap)}{word}{draw(space)}{{{draw(space)}{inside}{draw(space)}}}", True
        if op in ("==", "!="):
            return f"{key}{draw(space)}{op}{draw(space)}{quoted(t[2])}", True
        word = {
            "contains": "contains",
            "starts with": draw(st.sampled_from(["starts with", "startswith", "starts \t with"])),
            "ends with": draw(st.sampled_from(["ends with", "endswith"])),
        }[op]
        return f"{key}{draw(gap)}{word}{draw(space)}{quoted(t[2])}", True

    def write_and_operand(t: Tree) -> str:
        text, _ = write(t)
        return "(" + text + ")" if t[0] == "or" else text

    text, _ = write(tree)
    return draw(space) + text + draw(space)


@st.composite
def selector_cases(draw: st.DrawFn) -> tuple[Tree, str, list[dict[str, str]]]:
    tree = draw(trees)
    return tree, draw(written(tree)), draw(st.lists(label_sets, min_size=1, max_size=6))


@pytest.fixture(scope="module")
def duck() -> duckdb.DuckDBPyConnection:
    """One connection for the module: hypothesis reuses it across examples."""
    connection = duckdb.connect()
    connection.execute("CREATE TABLE cases (id INTEGER, labels MAP(VARCHAR, VARCHAR))")
    return connection


QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(selector_cases())
def test_parsed_selector_matches_like_the_reference(case: tuple[Tree, str, list[dict[str, str]]]) -> None:
    tree, text, label_list = case
    selector = parse_selector(text)
    for labels in label_list:
        assert selector.matches(labels) is reference(tree, labels), (text, labels)
        assert selector.matches_cached(FrozenMap(labels)) is reference(tree, labels)


@QUICK
@given(selector_cases())
def test_canonical_form_reparses_to_the_same_selector(case: tuple[Tree, str, list[dict[str, str]]]) -> None:
    _, text, label_list = case
    selector = parse_selector(text)
    reparsed = parse_selector(str(selector))
    for labels in label_list:
        assert reparsed.matches(labels) is selector.matches(labels), (text, str(selector), labels)
    # One re-parse settles the canonical form (Calico prints `!(!x)` as `!!x`, which then reads as `x`).
    assert str(parse_selector(str(reparsed))) == str(reparsed)
    assert parse_selector(str(reparsed)).uid == reparsed.uid


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(selector_cases(), st.lists(st.booleans(), min_size=1, max_size=6))
def test_to_sql_in_duckdb_agrees_with_matches(
    duck: duckdb.DuckDBPyConnection, case: tuple[Tree, str, list[dict[str, str]]], null_maps: list[bool]
) -> None:
    _, text, label_list = case
    selector = parse_selector(text)
    rows = [
        (i, None if null_maps[i % len(null_maps)] and not labels else labels)
        for i, labels in enumerate(label_list)
    ]
    duck.execute("DELETE FROM cases")
    duck.executemany("INSERT INTO cases VALUES (?, ?)", rows)
    got = duck.execute(f"SELECT {selector.to_sql('labels')} FROM cases ORDER BY id").fetchall()
    assert [answer for (answer,) in got] == [selector.matches(labels) for labels in label_list], text


@QUICK
@given(selector_cases(), st.sets(st.sampled_from(KEYS)), label_sets)
def test_three_valued_evaluation_is_never_wrong(
    case: tuple[Tree, str, list[dict[str, str]]], unknown: set[str], other_values: dict[str, str]
) -> None:
    """Whatever the unknown labels turn out to be, a True/False answer from `evaluate` holds."""
    _, text, label_list = case
    selector = parse_selector(text)
    for labels in label_list:
        verdict = selector.evaluate(labels, unknown.__contains__)
        # Any completion: known labels kept, unknown keys given other values or removed.
        completion = {k: v for k, v in labels.items() if k not in unknown}
        completion |= {k: v for k, v in other_values.items() if k in unknown}
        if verdict is not None:
            assert verdict is selector.matches(labels) is selector.matches(completion), (
                text,
                labels,
                unknown,
            )
        if not unknown & selector.label_keys:
            assert verdict is selector.matches(labels)
