"""Policy sets from one set of objects: current (enforced now), proposed (every staged object promoted), pending
(Calico's view: staged evaluated alongside enforced), the promotion report, tier order and profiles."""

from __future__ import annotations

from policy_helpers import load_text, write

from flowstage.policy.loader import load_policies
from flowstage.policy.model import (
    Action,
    FrozenMap,
    HostEndpoint,
    Inventory,
    Namespace,
    PolicyKind,
    StagedAction,
)
from flowstage.policy.sets import PromotionAction, build_sets, host_endpoint_profiles, profiles_for

OBJECTS = """
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec: {selector: app == 'web', ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: web, namespace: prod}
spec: {selector: app == 'web', ingress: [{action: Deny}]}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: new-lockdown}
spec: {selector: app == 'db', tier: security}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: old-allow}
spec: {selector: all(), ingress: [{action: Allow}]}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: old-allow}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: never-existed}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: recommended}
spec: {stagedAction: Learn, selector: all()}
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: ignored, namespace: prod}
spec: {stagedAction: Ignore}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: prod}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: api, namespace: prod}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
"""


def names(policy_set, tier="default"):
    return [(p.kind.short, p.display_name) for p in policy_set.tier_policies(tier)]


def test_current_is_what_is_enforced_now(tmp_path):
    sets = build_sets(load_text(tmp_path, OBJECTS))
    assert [t.name for t in sets.current.tiers] == ["default"]
    assert names(sets.current) == [("knp", "prod/api"), ("gnp", "old-allow"), ("np", "prod/web")]
    assert not any(p.staged for p in sets.current.all_policies())


def test_proposed_promotes_set_replaces_and_deletes(tmp_path):
    sets = build_sets(load_text(tmp_path, OBJECTS))
    proposed = sets.proposed
    assert names(proposed) == [("knp", "prod/api"), ("np", "prod/web")]
    assert names(proposed, "security") == [("gnp", "new-lockdown")]
    web = proposed.tier_policies("default")[1]
    assert (web.kind, web.staged_action, web.ingress[0].action) == (
        PolicyKind.NETWORK_POLICY,
        None,
        Action.DENY,
    )
    api = proposed.tier_policies("default")[0]
    assert (api.kind, len(api.types)) == (PolicyKind.KUBERNETES_NETWORK_POLICY, 2)  # the staged spec's types
    assert not any(p.staged for p in proposed.all_policies())


def test_promotion_report_says_what_happens_to_each_staged_object(tmp_path):
    sets = build_sets(load_text(tmp_path, OBJECTS))
    report = [(step.staged.name, step.action) for step in sets.promotion]
    assert report == [
        ("web", PromotionAction.REPLACES),
        ("new-lockdown", PromotionAction.ADDS),
        ("old-allow", PromotionAction.DELETES),
        ("never-existed", PromotionAction.DELETE_MISSING),
        ("recommended", PromotionAction.NOT_PROMOTED),
        ("ignored", PromotionAction.NOT_PROMOTED),
        ("api", PromotionAction.REPLACES),
    ]
    assert [str(step) for step in sets.promotion] == [
        "StagedNetworkPolicy prod/web replaces NetworkPolicy prod/web",
        "StagedGlobalNetworkPolicy new-lockdown adds GlobalNetworkPolicy new-lockdown",
        "StagedGlobalNetworkPolicy old-allow deletes GlobalNetworkPolicy old-allow",
        "StagedGlobalNetworkPolicy never-existed deletes GlobalNetworkPolicy never-existed, which is not among the inputs",
        "StagedGlobalNetworkPolicy recommended is not promoted (stagedAction Learn)",
        "StagedNetworkPolicy prod/ignored is not promoted (stagedAction Ignore)",
        "StagedKubernetesNetworkPolicy prod/api replaces KubernetesNetworkPolicy prod/api",
    ]
    replaced = sets.promotion[0]
    assert (
        replaced.enforced.kind is PolicyKind.NETWORK_POLICY
        and replaced.promoted.kind is PolicyKind.NETWORK_POLICY
    )


def test_pending_evaluates_staged_policies_alongside_enforced_ones(tmp_path):
    sets = build_sets(load_text(tmp_path, OBJECTS))
    pending = sets.pending
    # Order 1000 (Kubernetes policies) first, then the rest by name/namespace/Kind, enforced twin first.
    assert names(pending) == [
        ("knp", "prod/api"),
        ("sknp", "prod/api"),
        ("snp", "prod/ignored"),
        ("gnp", "old-allow"),
        ("sgnp", "recommended"),
        ("np", "prod/web"),
        ("snp", "prod/web"),
    ]
    # Delete objects are never sent to felix; Learn and Ignore behave like Set.
    assert not any(p.staged_action is StagedAction.DELETE for p in pending.all_policies())
    assert [t.name for t in pending.tiers] == ["default", "security"]


def test_tiers_sort_by_order_with_undefined_tiers_last(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: late}
        spec: {order: 2000000}
        ---
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: unordered}
        ---
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: b-first}
        spec: {order: 100, defaultAction: Pass}
        ---
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: a-first}
        spec: {order: 100}
        ---
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkPolicy
        metadata: {name: p}
        spec: {tier: missing}
        """,
    )
    tiers = build_sets(bundle).current.tiers
    assert [(t.name, t.order, t.defined) for t in tiers] == [
        ("a-first", 100.0, True),
        ("b-first", 100.0, True),
        ("default", 1_000_000.0, True),
        ("late", 2_000_000.0, True),
        ("unordered", None, True),
        ("missing", None, False),
    ]
    assert tiers[-1].default_action is Action.DENY


def test_a_tier_named_only_by_a_staged_policy_exists_only_where_that_policy_does(tmp_path):
    sets = build_sets(load_text(tmp_path, OBJECTS))
    assert "security" not in [t.name for t in sets.current.tiers]
    assert "security" in [t.name for t in sets.proposed.tiers]


def test_inventory_can_come_from_separate_files(tmp_path):
    policies = write(tmp_path, OBJECTS, "policies.yaml")
    namespaces = write(
        tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {team: a}}\n", "ns.yaml"
    )
    sets = build_sets(load_policies([policies], inventory=[namespaces]))
    assert sets.current.inventory.namespaces["prod"].labels["team"] == "a"
    override = build_sets(load_policies([policies]), namespaces=[Namespace("dev")], pods=[])
    assert list(override.proposed.inventory.namespaces) == ["dev"] and override.proposed.inventory.pods == ()


def test_pods_get_the_kubernetes_built_in_profiles_when_none_are_given():
    inventory = Inventory(namespaces={"prod": Namespace("prod", FrozenMap({"team": "a"}))})
    kns, ksa = profiles_for("prod", "web-sa", inventory)
    assert (kns.name, kns.ingress[0].action, kns.egress[0].action) == ("kns.prod", Action.ALLOW, Action.ALLOW)
    assert (
        kns.labels_to_apply["pcns.team"] == "a"
        and kns.labels_to_apply["pcns.projectcalico.org/name"] == "prod"
    )
    assert (ksa.name, ksa.ingress, ksa.egress) == ("ksa.prod.web-sa", (), ())
    assert ksa.labels_to_apply == {"pcsa.projectcalico.org/name": "web-sa"}
    assert [p.name for p in profiles_for("prod", None, inventory)] == ["kns.prod"]


def test_explicit_profiles_replace_the_built_ins_of_the_same_name(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: Profile
        metadata: {name: kns.prod}
        spec: {ingress: [{action: Deny}], labelsToApply: {pcns.zone: eu}}
        """,
    )
    inventory = bundle.inventory()
    (kns,) = profiles_for("prod", None, inventory)
    assert (kns.ingress[0].action, dict(kns.labels_to_apply), kns.egress) == (
        Action.DENY,
        {"pcns.zone": "eu"},
        (),
    )
    assert profiles_for("dev", None, inventory)[0].ingress[0].action is Action.ALLOW  # no explicit kns.dev


def test_host_endpoints_get_only_the_profiles_they_list():
    hep = HostEndpoint("node1-eth0", profiles=("projectcalico-default-allow", "missing"))
    (allow,) = host_endpoint_profiles(hep, Inventory())
    assert (allow.name, allow.ingress[0].action) == ("projectcalico-default-allow", Action.ALLOW)
    assert host_endpoint_profiles(HostEndpoint("bare"), Inventory()) == []
