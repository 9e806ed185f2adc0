"""Which policies a subject tests: policy selectors indexed by a label every match needs, so an endpoint only
evaluates the selectors its labels leave possible, with the same answers as evaluating every one of them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowstage.policy.engine.addresses import ANY_ADDRESS
from flowstage.policy.engine.endpoints import EndpointFacts
from flowstage.policy.engine.match import selector_value
from flowstage.policy.engine.selection import SelectorIndex, requirement
from flowstage.policy.model import FrozenMap
from flowstage.policy.traffic import EndpointType, Reason
from flowstage.selector import parse_selector

SELECTORS = [parse_selector(text) for text in (
    'app == "web"',
    'app in {"web", "api"}',
    'app in {}',
    'has(tier)',
    'app == "web" && tier == "front"',
    '(has(tier) && app == "db") && env != "prod"',
    'app == "web" || tier == "front"',
    'all()',
    '!has(app)',
    'app != "web"',
    'pcns.projectcalico.org/name == "prod"',
    'projectcalico.org/serviceaccount == "backend"',
    'app starts with "we"',
)]


def facts(labels: dict[str, str], **known: object) -> EndpointFacts:
    return EndpointFacts(
        type=EndpointType.WEP, namespace="prod", name="pod", labels=FrozenMap(labels), addresses=ANY_ADDRESS,
        owned=known.pop("owned", True), named_ports=None, profiles=(), **known,  # type: ignore[arg-type]
    )


def every_answer(subject: EndpointFacts) -> list[object]:
    return [selector_value(s, subject) for s in SELECTORS]


def indexed_answers(subject: EndpointFacts) -> list[object]:
    candidates = set(SelectorIndex(SELECTORS).candidates(subject))
    return [selector_value(s, subject) if i in candidates else False for i, s in enumerate(SELECTORS)]


def test_a_selector_requires_the_narrowest_label_its_conjunctions_name() -> None:
    assert requirement(parse_selector('app == "web"')) == ("app", frozenset({"web"}))
    assert requirement(parse_selector('has(tier) && app in {"a", "b"}')) == ("app", frozenset({"a", "b"}))
    assert requirement(parse_selector('(has(tier) && app == "db") && env != "prod"')) == ("app", frozenset({"db"}))
    assert requirement(parse_selector("has(tier)")) == ("tier", None)
    for text in ('app == "web" || tier == "front"', "all()", '!has(app)', 'app != "web"', 'app starts with "w"'):
        assert requirement(parse_selector(text)) is None


def test_an_endpoint_tests_only_the_selectors_its_labels_leave_possible() -> None:
    index = SelectorIndex(SELECTORS)
    tested = {str(SELECTORS[i]) for i in index.candidates(facts({"app": "db", "env": "dev"}))}
    assert 'app == "web"' not in tested and 'pcns.projectcalico.org/name == "prod"' not in tested
    assert {"all()", '!has(app)', 'app != "web"'} <= tested  # nothing to index them by


def test_an_unknown_label_is_always_tested() -> None:
    subject = facts({"app": "db"}, uncertain=frozenset({"app"}))
    candidates = SelectorIndex(SELECTORS).candidates(subject)
    assert {str(SELECTORS[i]) for i in candidates} >= {'app == "web"', 'app in {"api", "web"}'}
    assert selector_value(parse_selector('app == "web"'), subject) == Reason.LABELS_UNKNOWN
    unlogged = facts({}, labels_known=False, namespace_labels_known=False)
    assert indexed_answers(unlogged) == every_answer(unlogged)
    untyped = facts({}, owned=None)
    assert indexed_answers(untyped) == every_answer(untyped) and Reason.LABELS_UNKNOWN in every_answer(untyped)


labels = st.dictionaries(
    st.sampled_from(["app", "tier", "env", "pcns.projectcalico.org/name", "projectcalico.org/serviceaccount"]),
    st.sampled_from(["web", "api", "db", "front", "prod", "backend", "we"]),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(
    labels, st.booleans(), st.booleans(), st.booleans(), st.booleans(),
    st.frozensets(st.sampled_from(["app", "tier", "env"]), max_size=2),
)
def test_the_index_answers_exactly_as_evaluating_every_selector(
    own: dict[str, str], labels_known: bool, namespace_known: bool, account_known: bool, account_labels_known: bool,
    uncertain: frozenset[str],
) -> None:
    subject = facts(
        {k: v for k, v in own.items() if k not in uncertain}, labels_known=labels_known,
        namespace_labels_known=namespace_known, service_account_known=account_known,
        service_account_labels_known=account_labels_known, uncertain=uncertain,
    )
    assert indexed_answers(subject) == every_answer(subject)
