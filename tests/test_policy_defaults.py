"""Calico's defaulting rules: types from the rules present, missing order sorts last, the default tier and its
order, tier defaultAction, and Kubernetes' policyTypes defaulting."""

from __future__ import annotations

import math

import pytest
from policy_helpers import load_text, only_policy

from flowstage.policy.model import Action, Direction, Policy
from flowstage.policy.sets import build_sets

INGRESS, EGRESS = Direction.INGRESS, Direction.EGRESS


def gnp(name: str, spec: str = "{}") -> str:
    return f"apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: {name}}}\nspec: {spec}\n"


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ("{}", {INGRESS}),
        ("{ingress: [{action: Allow}]}", {INGRESS}),
        ("{egress: [{action: Allow}]}", {EGRESS}),
        ("{ingress: [{action: Allow}], egress: [{action: Deny}]}", {INGRESS, EGRESS}),
        ("{types: [Egress], ingress: [{action: Allow}]}", {EGRESS}),
        ("{types: [], egress: [{action: Allow}]}", {EGRESS}),
    ],
)
def test_types_are_inferred_from_the_rules_present(tmp_path, spec, types):
    assert only_policy(load_text(tmp_path, gnp("p", spec))).types == types


def test_missing_order_sorts_after_every_ordered_policy(tmp_path):
    bundle = load_text(
        tmp_path,
        gnp("no-order") + "---\n" + gnp("big", "{order: 1e6}") + "---\n" + gnp("small", "{order: 5}"),
    )
    assert only_first(bundle.policies, "no-order").order is None
    assert math.isinf(only_first(bundle.policies, "no-order").sort_key[0])
    ordered = build_sets(bundle).current.tier_policies("default")
    assert [p.name for p in ordered] == ["small", "big", "no-order"]


def only_first(policies: list[Policy], name: str) -> Policy:
    return next(p for p in policies if p.name == name)


def test_equal_orders_are_broken_by_name_then_namespace_then_kind(tmp_path):
    bundle = load_text(
        tmp_path,
        gnp("b", "{order: 1}")
        + "---\n"
        + gnp("a", "{order: 1}")
        + "---\napiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: a}\nspec: {order: 1}\n",
    )
    ordered = build_sets(bundle).pending.tier_policies("default")
    assert [(p.name, p.kind.value) for p in ordered] == [
        ("a", "GlobalNetworkPolicy"),
        ("a", "StagedGlobalNetworkPolicy"),  # the enforced twin sorts first (v3.32 tie-break)
        ("b", "GlobalNetworkPolicy"),
    ]


def test_policies_without_a_tier_go_to_the_default_tier_at_order_one_million(tmp_path):
    sets = build_sets(load_text(tmp_path, gnp("p")))
    (default,) = sets.current.tiers
    assert (default.name, default.order, default.default_action, default.defined) == (
        "default",
        1_000_000.0,
        Action.DENY,
        True,
    )
    assert [p.name for p in sets.current.tier_policies("default")] == ["p"]


def test_tier_default_action_defaults_to_deny(tmp_path):
    bundle = load_text(
        tmp_path,
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: {order: 10}\n",
    )
    assert bundle.tiers[0].default_action is Action.DENY


def test_kubernetes_policy_types_default_as_the_api_server_fills_them(tmp_path):
    real = only_policy(
        load_text(
            tmp_path,
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: p, namespace: prod}
            spec:
              podSelector: {}
              egress: [{}]
            """,
        )
    )
    assert real.types == {INGRESS, EGRESS}


def test_staged_kubernetes_policy_without_policy_types_governs_ingress_only(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: StagedKubernetesNetworkPolicy
        metadata: {name: p, namespace: prod}
        spec:
          podSelector: {}
          egress: [{}]
        """,
    )
    staged = only_policy(bundle)
    assert staged.types == {INGRESS}
    # Promoted, it becomes a real NetworkPolicy, which the API server gives both types.
    assert bundle.promoted_form(staged).types == {INGRESS, EGRESS}
    assert "once promoted Kubernetes fills in Ingress and Egress" in bundle.warnings[0].message


def test_kubernetes_policy_with_no_policy_types_and_no_rules_isolates_ingress(tmp_path):
    policy = only_policy(
        load_text(
            tmp_path,
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: d, namespace: a}\nspec: {podSelector: {}}\n",
        )
    )
    # The implicit default deny: Ingress governed, no rules, so the default tier's Deny ends evaluation.
    assert (policy.types, policy.ingress, policy.tier, policy.order) == ({INGRESS}, (), "default", 1000.0)
