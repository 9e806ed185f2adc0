"""Calico's own selector test vectors (conformance/calico-selectors.json), every case of every section we
implement: match, invalid, normalized (with UIDs), prefix_visitor, tokenize and api_field_rules.

Each test checks all cases of its section and reports every failing case at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flowstage.policy.model import FrozenMap
from flowstage.selector import SelectorError, global_usage_problem, parse_selector
from flowstage.selector.tokenizer import tokenize


@pytest.fixture(scope="module")
def vectors(shared_dir: Path) -> dict[str, Any]:
    return json.loads((shared_dir / "conformance" / "calico-selectors.json").read_text())


def test_every_match_case_gives_calicos_answer(vectors: dict[str, Any]) -> None:
    failures = []
    for case in vectors["match"]:
        selector = parse_selector(case["selector"])
        labels = case["labels"]
        reparsed = parse_selector(str(selector))
        answers = {
            "matches": selector.matches(labels),
            "matches after re-parsing the canonical form": reparsed.matches(labels),
            "matches_cached": selector.matches_cached(FrozenMap(labels)),
            "evaluate": selector.evaluate(labels),
        }
        wrong = {how: got for how, got in answers.items() if got is not case["expected"]}
        if wrong:
            failures.append((case["selector"], labels, case["expected"], wrong))
    assert not failures
    assert len(vectors["match"]) == vectors["counts"]["match_total"]


def test_every_match_case_gives_the_same_answer_in_duckdb(vectors: dict[str, Any]) -> None:
    cases = vectors["match"]
    con = duckdb.connect()
    con.execute("CREATE TABLE cases (id INTEGER, labels MAP(VARCHAR, VARCHAR))")
    con.executemany("INSERT INTO cases VALUES (?, ?)", [(i, case["labels"]) for i, case in enumerate(cases)])
    failures = []
    for i, case in enumerate(cases):
        predicate = parse_selector(case["selector"]).to_sql("labels")
        (answer,) = con.execute(f"SELECT {predicate} FROM cases WHERE id = ?", [i]).fetchone()
        if answer is not case["expected"]:
            failures.append((case["selector"], case["labels"], case["expected"], answer, predicate))
    assert not failures


def test_every_invalid_selector_is_rejected_with_a_position(vectors: dict[str, Any]) -> None:
    accepted = []
    for text in vectors["invalid"]:
        try:
            parse_selector(text)
        except SelectorError as error:
            assert 0 <= error.position <= len(text)
            assert error.selector == text
        else:
            accepted.append(text)
    assert not accepted
    assert {d["selector"] for d in vectors["invalid_detail"]} == set(vectors["invalid"])


def test_every_normalized_case_prints_calicos_canonical_form_and_uid(vectors: dict[str, Any]) -> None:
    failures = []
    for case in vectors["normalized"]:
        selector = parse_selector(case["selector"])
        round_trip = parse_selector(str(selector))
        got = {"canonical": str(selector), "round trip": str(round_trip)}
        want = {"canonical": case["canonical"], "round trip": case["canonical"]}
        if "uid" in case:
            got |= {"uid": selector.uid, "round-trip uid": round_trip.uid}
            want |= {"uid": case["uid"], "round-trip uid": case["uid"]}
        if got != want:
            failures.append((case["selector"], got, want))
    assert not failures
    assert sum("uid" in case for case in vectors["normalized"]) == vectors["counts"]["normalized_with_uid"]


def test_every_prefix_visitor_case(vectors: dict[str, Any]) -> None:
    failures = []
    for case in vectors["prefix_visitor"]:
        got = str(parse_selector(case["selector"]).prefixed(case["prefix"]))
        if got != case["canonical_after_prefixing"]:
            failures.append((case["description"], got, case["canonical_after_prefixing"]))
    assert not failures


def test_every_tokenize_case(vectors: dict[str, Any]) -> None:
    failures = []
    for case in vectors["tokenize"]:
        got = [
            {"kind": t.kind.value} | ({"value": t.value} if t.value else {}) for t in tokenize(case["input"])
        ]
        want = [
            {"kind": t["kind"]} | ({"value": t["value"]} if t.get("value") else {}) for t in case["tokens"]
        ]
        if got != want:
            failures.append((case["input"], got, want))
    assert not failures


def test_every_api_field_rule_on_global(vectors: dict[str, Any]) -> None:
    failures = []
    for case in vectors["api_field_rules"]:
        problem = global_usage_problem(case["field"], parse_selector(case["selector"]))
        if (problem is None) is not case["accepted"]:
            failures.append((case["field"], case["selector"], case["accepted"], problem))
    assert not failures
