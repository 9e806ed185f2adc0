"""The selector language as flowstage users meet it: Calico's corners, error messages with a caret,
the Selector value, cached and three-valued matching, SQL, rewriting and the builders policy code uses.
"""

from __future__ import annotations

import pickle

import duckdb
import pytest

from flowstage.errors import FlowstageError
from flowstage.policy.model import FrozenMap
from flowstage.selector import (
    ALL,
    MAX_SELECTOR_LENGTH,
    Selector,
    SelectorError,
    and_selectors,
    global_usage_problem,
    has_label,
    label_equals,
    not_selector,
    or_selectors,
    parse_selector,
)
from flowstage.selector.nodes import LabelEquals

# --- Calico's corners ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ('env != "dev"', {}, True),  # != is true when the label is missing
        ('env not in {"dev"}', {}, True),  # so is not in
        ('env in {"dev"}', {}, False),
        ("env not in {}", {"env": "x"}, True),
        ("env in {}", {"env": "x"}, False),
        ('env contains ""', {"env": ""}, True),  # "" is a substring of any present value
        ('env contains ""', {}, False),
        ('env starts with ""', {"env": "x"}, True),
        ("", {}, True),  # empty selector means all()
        (" \t ", {"a": "b"}, True),
        ("global()", {}, True),
        ('APP == "db"', {"app": "db"}, False),  # keys and values are case-sensitive
        ('app == "DB"', {"app": "db"}, False),
        ('in == "x" && has == "y" && all == "z"', {"in": "x", "has": "y", "all": "z"}, True),  # words as keys
        ('!app == "db"', {"app": "web"}, True),  # ! applies to one comparison
        ("!!has(app)", {"app": "x"}, True),  # an even number of ! cancels
        ('a == "x" || b == "y" && c == "z"', {"a": "x"}, True),  # && binds tighter than ||
        ('a startswith "x" && b endswith "y" && c notin {"z"}', {"a": "xa", "b": "by"}, True),
    ],
)
def test_calico_corner_cases(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector).matches(labels) is expected


def test_strings_have_no_escapes_and_may_hold_the_other_quote() -> None:
    assert parse_selector(r'a == "x\"').matches({"a": "x\\"})
    assert parse_selector("""a == '"'""").matches({"a": '"'})
    assert parse_selector('''a == "'"''').matches({"a": "'"})


def test_canonical_form_is_calicos() -> None:
    assert str(parse_selector("")) == "all()"
    assert str(parse_selector('a in {"z","x","a","x",}')) == 'a in {"a", "x", "z"}'
    assert str(parse_selector("a=='x'&&!has( b )||c!='y'")) == '((a == "x" && !has(b)) || c != "y")'
    assert str(parse_selector("""a == '"'""")) == """a == '"'"""
    assert str(parse_selector("a == 'x' && (b == 'y' && c == 'z')")) == '(a == "x" && (b == "y" && c == "z"))'


def test_uid_is_calicos_hash_of_the_canonical_form() -> None:
    assert parse_selector("").uid == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert parse_selector(" ( all( ) ) ").uid == parse_selector("all()").uid


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "reason", "position"),
    [
        ('app = "db"', "expected ==", 4),
        ('a == "b" & has(c)', "expected &&", 9),
        ('a == "b" | has(c)', "expected ||", 9),
        ('app == "db', "unterminated string", 7),
        ("app", "unexpected end of string looking for op", 3),
        ("app db", 'expected operator after label "app"', 4),
        ("has (app)", "expected == or != not: TokLParen()", 4),
        ("has(app", "no closing ')' after has(", 7),
        ("all(", "no closing ')' after all(", 4),
        ("global(x)", "no closing ')' after global(", 7),
        ("has()", "expected identifier", 4),
        ("%", "expected identifier", 0),
        ("app == db", "expected string", 7),
        ('app in "db"', "expected set literal", 7),
        ("app in {,}", "expected }", 8),
        ('(app == "db"', "expected )", 12),
        ("!", "unexpected token: TokEOF()", 1),
        ('app == "db")', "unexpected content at end of selector [TokRParen() TokEOF()]", 11),
    ],
)
def test_errors_use_calicos_wording_and_point_at_the_problem(
    selector: str, reason: str, position: int
) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(selector)
    assert (caught.value.reason, caught.value.position, caught.value.selector) == (reason, position, selector)


def test_error_message_shows_the_selector_with_a_caret() -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector('app == "db" && env = "dev"')
    assert str(caught.value) == (
        "invalid selector: expected == (at character 20)\n"
        '  app == "db" && env = "dev"\n'
        "                     ^"
    )


def test_selector_error_is_a_value_error_and_a_flowstage_error() -> None:
    with pytest.raises(ValueError):
        parse_selector("(")
    with pytest.raises(FlowstageError):
        parse_selector("(")


def test_only_space_and_tab_are_whitespace() -> None:
    assert parse_selector('a == "x"\t&&\thas(b) ').matches({"a": "x", "b": ""})
    for text in ('a == "x"\n', 'a == "x"\r\n&& has(b)', "a\n== 'x'"):
        with pytest.raises(SelectorError, match="only spaces and tabs") as caught:
            parse_selector(text)
        assert caught.value.selector[caught.value.position] in "\r\n"
        assert "↵" in str(caught.value)  # shown visibly, so the caret still lines up


def test_long_selector_error_shows_a_window_around_the_problem() -> None:
    text = " && ".join(f'k{i} == "v"' for i in range(200)) + " && %"
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    _, line, caret = str(caught.value).split("\n")
    assert len(line) < 100
    assert line[caret.index("^")] == "%"


@pytest.mark.parametrize(
    "text",
    [
        "(" * 10_000 + 'a == "b"' + ")" * 10_000,
        "!(" * 10_000 + "all()" + ")" * 10_000,
        'a == "b" && ' * 10_000 + "all()",
        "a" * 100_000,
        'a in {"' + "x" * 100_000 + '"}',
    ],
    ids=["10k parentheses", "10k negated groups", "120k characters", "100k-char label", "100k-char string"],
)
def test_deep_or_huge_input_is_a_selector_error_not_a_crash(text: str) -> None:
    with pytest.raises(SelectorError, match="too deeply|too long"):
        parse_selector(text)


def test_long_labels_and_long_valid_selectors_are_fine() -> None:
    key = "k" * 512
    assert parse_selector(f'{key} == "v"').matches({key: "v"})
    with pytest.raises(SelectorError, match="label too long"):
        parse_selector(f'{key}k == "v"')
    many = " || ".join(f'app == "a{i}"' for i in range(3000))
    assert len(many) < MAX_SELECTOR_LENGTH
    assert parse_selector(many).matches({"app": "a2999"})


# --- the Selector value --------------------------------------------------------------------------------


def test_selector_is_an_immutable_hashable_value_equal_by_canonical_form() -> None:
    a = parse_selector("app=='db'")
    b = parse_selector('  app == "db" ')
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert (a.source, b.source) == ("app=='db'", '  app == "db" ')
    assert repr(a) == "Selector('app == \"db\"')"
    with pytest.raises(AttributeError):
        a.source = "x"  # type: ignore[misc]


def test_parsing_is_memoised_by_text() -> None:
    assert parse_selector('tier == "web"') is parse_selector('tier == "web"')


def test_selector_survives_pickling() -> None:
    selector = not_selector(not_selector(has_label("a")))
    copy = pickle.loads(pickle.dumps(selector))
    assert copy == selector and copy.source == selector.source and copy.matches({"a": "1"})


def test_label_keys_is_all_and_uses_global() -> None:
    selector = parse_selector('a == "x" || !has(b) || c in {"y"} || global()')
    assert selector.label_keys == {"a", "b", "c"}
    assert selector.uses_global and not selector.is_all
    assert parse_selector("").is_all and parse_selector("(!!all())").is_all and ALL.is_all


# --- cached and three-valued matching -------------------------------------------------------------------


def test_matches_cached_gives_the_same_answers_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Selector, "CACHE_LIMIT", 8)
    selector = parse_selector('app == "db" && env != "dev"')
    for i in range(100):
        labels = FrozenMap({"app": "db" if i % 2 else "web", "env": f"e{i}"})
        assert selector.matches_cached(labels) is selector.matches(labels)
        assert len(selector._cache) <= 8
    assert selector.matches_cached({"app": "db"})  # a plain dict is matched, just not cached


def test_evaluate_is_three_valued_when_labels_are_unknown() -> None:
    def namespace_unknown(key: str) -> bool:
        return key.startswith("pcns.")

    scoped = parse_selector('pcns.team == "a" && app == "db"')
    assert scoped.evaluate({"app": "db"}, namespace_unknown) is None  # depends on the namespace
    assert scoped.evaluate({"app": "web"}, namespace_unknown) is False  # false whatever the namespace
    assert parse_selector('pcns.team == "a" || all()').evaluate({}, namespace_unknown) is True
    assert parse_selector('!(pcns.team == "a")').evaluate({}, namespace_unknown) is None
    assert parse_selector('app == "db"').evaluate({"app": "db"}, namespace_unknown) is True
    assert scoped.evaluate({"app": "db", "pcns.team": "a"}) is True  # nothing unknown: plain matching


def test_evaluate_answers_when_every_case_of_the_unknown_labels_agrees() -> None:
    def namespace_unknown(key: str) -> bool:
        return key.startswith("pcns.")

    def verdict(text: str) -> bool | None:
        return parse_selector(text).evaluate({"app": "db"}, namespace_unknown)

    assert verdict('pcns.team == "a" || pcns.team != "a"') is True
    assert verdict('pcns.team == "a" && pcns.team in {"b", "c"}') is False
    assert verdict("has(pcns.team) || !has(pcns.team)") is True
    assert verdict('pcns.team in {"a", "b"} && pcns.team not in {"a"}') is None  # "b" matches, "a" does not
    # Open-ended terms cannot be listed case by case: Kleene's None stands.
    assert verdict('pcns.team starts with "a" || !(pcns.team starts with "a")') is None


# --- SQL ----------------------------------------------------------------------------------------------


def test_to_sql_quotes_values_safely_and_never_yields_null() -> None:
    con = duckdb.connect()
    selector = parse_selector("""note == "it's" || note contains '"' || env != "x" """)
    rows = [({"note": "it's"},), ({"note": 'a"b', "env": "x"},), ({"env": "x"},), (None,)]
    con.execute("CREATE TABLE t (labels MAP(VARCHAR, VARCHAR))")
    con.executemany("INSERT INTO t VALUES (?)", rows)
    got = [r[0] for r in con.execute(f"SELECT {selector.to_sql('labels')} FROM t").fetchall()]
    assert got == [True, True, False, True]


def test_to_sql_handles_nul_characters_in_values() -> None:
    selector = Selector(LabelEquals("a", "x\x00y"))  # a value no selector text can carry, but SQL must
    labels = "MAP {'a': 'x' || chr(0) || 'y'}"
    (answer,) = duckdb.connect().execute(f"SELECT {selector.to_sql(labels)}").fetchone()
    assert answer is True


# --- rewriting and builders -------------------------------------------------------------------------------


def test_prefixed_renames_every_label_key() -> None:
    selector = parse_selector('team == "a" && !has(tier) || env in {"x"}')
    assert str(selector.prefixed("pcns.")) == '((pcns.team == "a" && !has(pcns.tier)) || pcns.env in {"x"})'
    with pytest.raises(ValueError):
        selector.prefixed("bad prefix ")


def test_replace_all_and_global_rewrite_the_text_as_calico_does() -> None:
    in_namespace = has_label("projectcalico.org/namespace")
    assert str(parse_selector("all()").prefixed("pcns.").replace_all(in_namespace)) == (
        "has(projectcalico.org/namespace)"
    )
    assert str(parse_selector("global()").replace_global(not_selector(in_namespace))) == (
        "!has(projectcalico.org/namespace)"
    )
    # Calico's rewrite is textual: `all( )` with a space survives, all() inside a string does not.
    assert str(parse_selector("all( )").replace_all(in_namespace)) == "all()"
    assert (
        str(parse_selector('a == "all()"').replace_all(in_namespace))
        == 'a == "has(projectcalico.org/namespace)"'
    )


def test_namespaced_policy_selector_is_scoped_like_calico() -> None:
    # NetworkPolicy in namespace "prod" with selector app == "db" (calico-semantics.md §2.4).
    selector = and_selectors(
        parse_selector('app == "db"'), label_equals("projectcalico.org/namespace", "prod")
    )
    assert str(selector) == '(app == "db" && projectcalico.org/namespace == "prod")'
    assert selector.matches({"app": "db", "projectcalico.org/namespace": "prod"})
    assert not selector.matches({"app": "db", "projectcalico.org/namespace": "dev"})
    # An empty selector is skipped, as Calico does: the result is just the namespace term.
    assert str(and_selectors(parse_selector(""), label_equals("projectcalico.org/namespace", "prod"))) == (
        'projectcalico.org/namespace == "prod"'
    )


def test_builders() -> None:
    a, b, c = parse_selector('a == "1"'), parse_selector("has(b)"), parse_selector('c != "3"')
    assert str(and_selectors(a, b, c)) == '((a == "1" && has(b)) && c != "3")'
    assert str(or_selectors(a, b)) == '(a == "1" || has(b))'
    assert str(not_selector(or_selectors(a, b))) == '!(a == "1" || has(b))'
    assert and_selectors() == ALL
    assert str(label_equals("k", "it's")) == '''k == "it's"'''
    assert label_equals("k", 'say "hi"').matches({"k": 'say "hi"'})
    with pytest.raises(SelectorError, match="both"):
        label_equals("k", """it's "odd\"""")
    with pytest.raises(SelectorError, match="label key"):
        has_label("no spaces")


def test_global_may_only_stand_alone_in_an_entity_rule_namespace_selector() -> None:
    assert global_usage_problem("EntityRule.namespaceSelector", parse_selector(" global() ")) is None
    assert global_usage_problem("EntityRule.namespaceSelector", parse_selector("global() || all()")) == (
        "global() cannot be combined with other selectors"
    )
    assert global_usage_problem("EntityRule.selector", parse_selector("global()")) is not None
    assert global_usage_problem("EntityRule.selector", parse_selector('a == "b"')) is None
