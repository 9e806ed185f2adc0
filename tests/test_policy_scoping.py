"""Namespace and service-account scoping of selectors, exactly as Calico rewrites them (semantics §2.4, §2.5).

`Policy.applies_to` is which endpoints a policy governs; `EntityRule.effective_selector` is which peers a
rule's source or destination selects (None: no selector constraint, any address).
"""

from __future__ import annotations

import pytest
from policy_helpers import load_text, only_policy

NS = "projectcalico.org/namespace"
SA = "projectcalico.org/serviceaccount"


def pod(namespace: str, **labels: str) -> dict[str, str]:
    """A pod's labels as Calico sees them (own labels plus the namespace and orchestrator labels)."""
    return {NS: namespace, "projectcalico.org/orchestrator": "k8s", **labels}


def calico_policy(tmp_path, spec: str, kind: str = "NetworkPolicy", namespace: str | None = "prod"):
    meta = f"{{name: p, namespace: {namespace}}}" if namespace else "{name: p}"
    text = f"apiVersion: projectcalico.org/v3\nkind: {kind}\nmetadata: {meta}\nspec:\n"
    text += "".join(f"  {line}\n" for line in spec.strip("\n").splitlines())
    return only_policy(load_text(tmp_path, text))


def peer(tmp_path, entity: str, kind: str = "NetworkPolicy", namespace: str | None = "prod"):
    """The source EntityRule of a one-rule ingress policy whose source is `entity` (YAML flow mapping)."""
    policy = calico_policy(tmp_path, f"ingress: [{{action: Allow, source: {entity}}}]", kind, namespace)
    return policy.ingress[0].source


# -- policy level (§2.4) ------------------------------------------------------------------------------


def test_namespaced_policy_selector_gets_the_namespace_term(tmp_path):
    policy = calico_policy(tmp_path, "selector: app == 'web'")
    assert str(policy.applies_to) == '(app == "web" && projectcalico.org/namespace == "prod")'
    assert policy.applies_to.matches(pod("prod", app="web"))
    assert not policy.applies_to.matches(pod("dev", app="web"))


def test_namespaced_policy_without_selector_selects_its_whole_namespace(tmp_path):
    policy = calico_policy(tmp_path, "types: [Ingress]")
    assert str(policy.applies_to) == 'projectcalico.org/namespace == "prod"'
    assert policy.selector.is_all


def test_service_account_selector_is_prefixed_pcsa(tmp_path):
    policy = calico_policy(tmp_path, "serviceAccountSelector: role == 'api'")
    assert str(policy.applies_to) == '(projectcalico.org/namespace == "prod" && pcsa.role == "api")'


def test_global_policy_without_selectors_applies_to_everything_including_host_endpoints(tmp_path):
    policy = calico_policy(tmp_path, "types: [Ingress]", kind="GlobalNetworkPolicy", namespace=None)
    assert policy.applies_to.is_all
    assert policy.applies_to.matches({"role": "node"})  # a host endpoint has no namespace label


def test_global_policy_namespace_selector_is_prefixed_pcns_and_all_means_namespaced(tmp_path):
    policy = calico_policy(
        tmp_path, "selector: app == 'web'\nnamespaceSelector: all()", "GlobalNetworkPolicy", None
    )
    assert str(policy.applies_to) == '(app == "web" && has(projectcalico.org/namespace))'
    scoped = calico_policy(tmp_path, "namespaceSelector: team == 'a'", "GlobalNetworkPolicy", None)
    assert str(scoped.applies_to) == 'pcns.team == "a"'


def test_global_policy_service_account_all_means_has_a_service_account(tmp_path):
    policy = calico_policy(tmp_path, "serviceAccountSelector: all()", "GlobalNetworkPolicy", None)
    assert str(policy.applies_to) == f"has({SA})"


# -- rule level (§2.5) ---------------------------------------------------------------------------------


def test_namespaced_rule_with_only_nets_or_ports_is_not_scoped(tmp_path):
    assert peer(tmp_path, "{nets: [10.0.0.0/8]}").effective_selector is None
    assert peer(tmp_path, "{}").effective_selector is None


def test_namespaced_rule_selector_is_confined_to_the_policy_namespace(tmp_path):
    source = peer(tmp_path, "{selector: app == 'db'}")
    assert str(source.effective_selector) == '(projectcalico.org/namespace == "prod" && app == "db")'
    assert str(source.selector) == 'app == "db"'  # as written is kept too


def test_namespace_selector_replaces_the_own_namespace(tmp_path):
    source = peer(tmp_path, "{selector: app == 'db', namespaceSelector: team == 'a'}")
    assert str(source.effective_selector) == '(pcns.team == "a" && app == "db")'
    assert source.effective_selector.matches(pod("other", app="db", **{"pcns.team": "a"}))


def test_namespace_selector_all_means_every_namespaced_entity(tmp_path):
    source = peer(tmp_path, "{namespaceSelector: all()}")
    assert str(source.effective_selector) == f"has({NS})"


def test_global_namespace_selector_means_non_namespaced_entities(tmp_path):
    source = peer(tmp_path, "{namespaceSelector: global()}")
    assert str(source.effective_selector) == f"!has({NS})"
    assert source.effective_selector.matches({"role": "node"}) and not source.effective_selector.matches(
        pod("prod")
    )


def test_not_selector_is_never_scoped_but_scopes_the_positive_selector(tmp_path):
    source = peer(tmp_path, "{notSelector: app == 'db'}")
    assert str(source.not_selector) == 'app == "db"'
    assert str(source.effective_selector) == 'projectcalico.org/namespace == "prod"'


def test_global_policy_not_selector_alone_has_no_positive_selector(tmp_path):
    source = peer(tmp_path, "{notSelector: app == 'db'}", "GlobalNetworkPolicy", None)
    assert source.effective_selector is None


def test_global_policy_rule_selector_spans_all_namespaces(tmp_path):
    source = peer(tmp_path, "{selector: app == 'db'}", "GlobalNetworkPolicy", None)
    assert str(source.effective_selector) == 'app == "db"'


def test_service_accounts_become_plain_and_pcsa_terms_and_scope_the_rule(tmp_path):
    source = peer(tmp_path, "{serviceAccounts: {names: [api, worker], selector: role == 'x'}}")
    assert str(source.effective_selector) == (
        '(projectcalico.org/namespace == "prod" && (pcsa.role == "x" && '
        'projectcalico.org/serviceaccount in {"api", "worker"}))'
    )


def test_global_policy_service_account_names_match_in_any_namespace(tmp_path):
    source = peer(tmp_path, "{serviceAccounts: {names: [api]}}", "GlobalNetworkPolicy", None)
    assert str(source.effective_selector) == f'{SA} in {{"api"}}'


@pytest.mark.parametrize(
    ("entity", "matches_same_ns", "matches_other_ns", "matches_host"),
    [
        ("{selector: app == 'x'}", True, False, False),
        ("{namespaceSelector: all(), selector: app == 'x'}", True, True, False),
        ("{namespaceSelector: global()}", False, False, True),
    ],
)
def test_rule_peer_table(tmp_path, entity, matches_same_ns, matches_other_ns, matches_host):
    selector = peer(tmp_path, entity).effective_selector
    assert selector.matches(pod("prod", app="x")) is matches_same_ns
    assert selector.matches(pod("dev", app="x")) is matches_other_ns
    assert selector.matches({"app": "x"}) is matches_host
