"""Policy traces: both string grammars decided per string, the old 4-field form, and Goldmane PolicyHit objects."""

from __future__ import annotations

import pytest

from flowstage.ingest.policy_hits import (
    TraceError,
    decode_policies,
    decode_policy_object,
    decode_policy_string,
)

# (string, tier, kind, namespace, name, staged, action, rule_index, end_of_tier)
STRINGS = [
    # (A) legacy, tier-dotted
    ("0|default|default.ep1-1-allow-all|allow|0", "default", "gnp", None, "ep1-1-allow-all", False, "allow", 0, False),
    ("0|tier1|default/tier1.np1-1|pass|0", "tier1", "np", "default", "np1-1", False, "pass", 0, False),
    ("1|tier|tier.staged:name|deny|2", "tier", "sgnp", None, "name", True, "deny", 2, False),
    ("1|tier2|default/tier2.staged:np2-1|deny|-1", "tier2", "snp", "default", "np2-1", True, "deny", -1, True),
    ("0|default|namespace/knp.default.name|allow|2", "default", "knp", "namespace", "name", False, "allow", 2, False),
    ("1|default|namespace/staged:knp.default.name|deny|3", "default", "sknp", "namespace", "name", True, "deny", 3, False),
    ("3|adminnetworkpolicy|kanp.adminnetworkpolicy.name|pass|4", "adminnetworkpolicy", "anp", None, "name", False, "pass", 4, False),
    ("2|baselineadminnetworkpolicy|kbanp.baselineadminnetworkpolicy.name.with.dots|pass|1",
     "baselineadminnetworkpolicy", "banp", None, "name.with.dots", False, "pass", 1, False),
    ("1|__PROFILE__|__PROFILE__.kns.default|allow|0", "__PROFILE__", "pro", None, "kns.default", False, "allow", 0, False),
    ("0|default|default.allow.all|allow|-2", "default", "gnp", None, "allow.all", False, "allow", -2, False),
    ("0|tier1|tier1.__NO_MATCH__|deny|-1", "tier1", "eot", None, "__NO_MATCH__", False, "deny", -1, True),
    # the docs' odd shape: staged: before the tier, tier field disagreeing with the prefix
    ("1|tier2|ns2/staged:tier1.policy1|deny|1", "tier2", "snp", "ns2", "policy1", True, "deny", 1, False),
    # very old records: no rule index
    ("0|__PROFILE__|__PROFILE__.kns.kube-system|allow", "__PROFILE__", "pro", None, "kns.kube-system", False, "allow", None, False),
    # (B) explicit kind, 3.32+: the name is verbatim, it may keep a tier prefix
    ("0|tier2|gnp:tier2.gnp2-2|deny|0", "tier2", "gnp", None, "tier2.gnp2-2", False, "deny", 0, False),
    ("1|default|np:default/default.np3-3|allow|0", "default", "np", "default", "default.np3-3", False, "allow", 0, False),
    ("1|tier|sgnp:name.with.dots|deny|2", "tier", "sgnp", None, "name.with.dots", True, "deny", 2, False),
    ("0|tier1|snp:namespace1/policy1|allow|0", "tier1", "snp", "namespace1", "policy1", True, "allow", 0, False),
    ("0|default|knp:test/allow.all|allow|1", "default", "knp", "test", "allow.all", False, "allow", 1, False),
    ("0|default|sknp:test/allow.all|allow|1", "default", "sknp", "test", "allow.all", True, "allow", 1, False),
    ("0|kube-admin|kcnp:pass-ingress|pass|0", "kube-admin", "kcnp", None, "pass-ingress", False, "pass", 0, False),
    ("4|__PROFILE__|pro:kns.openshift-dns|allow|0", "__PROFILE__", "pro", None, "kns.openshift-dns", False, "allow", 0, False),
    ("2|tier3|eot:__NO_MATCH__|deny|0", "tier3", "eot", None, "__NO_MATCH__", False, "deny", 0, True),
]


@pytest.mark.parametrize("text, tier, kind, namespace, name, staged, action, rule_index, end_of_tier", STRINGS)
def test_policy_string(text, tier, kind, namespace, name, staged, action, rule_index, end_of_tier):
    hit = decode_policy_string(text)
    assert (hit["tier"], hit["kind"], hit["namespace"], hit["name"], hit["staged"], hit["action"],
            hit["rule_index"], hit["end_of_tier"]) == (tier, kind, namespace, name, staged, action, rule_index, end_of_tier)
    assert hit["raw"] == text


def test_both_grammars_name_the_same_policy_alike_where_tigera_pairs_them():
    legacy = decode_policy_string("2|calico-system|calico-system.staged:staged-cluster-dns|pass|1")
    explicit = decode_policy_string("2|calico-system|sgnp:staged-cluster-dns|pass|1")
    assert (legacy["kind"], legacy["name"], legacy["staged"]) == (explicit["kind"], explicit["name"], explicit["staged"])


def test_unreadable_string_is_kept_raw():
    hit = decode_policy_string("garbage")
    assert hit["raw"] == "garbage" and hit["kind"] is None and hit["position"] is None


def test_trace_is_sorted_by_position_and_keeps_repeats():
    traces = decode_policies({"all_policies": ["1|__PROFILE__|__PROFILE__.kns.a|allow|0", "0|t|t.p|pass|3",
                                               "0|t|t.q|pass|1"]})
    assert [(h["position"], h["name"]) for h in traces["all_policies"]] == [(0, "p"), (0, "q"), (1, "kns.a")]
    assert traces["enforced_policies"] is None


def test_goldmane_protojson_hit_with_omitted_zero_values():
    hit = decode_policy_object({"kind": "CalicoNetworkPolicy", "namespace": "ns", "name": "p", "tier": "default",
                                "action": "Allow"})
    assert (hit["kind"], hit["position"], hit["rule_index"], hit["action"], hit["raw"]) == ("np", 0, 0, "allow", None)


def test_goldmane_go_json_hit_with_enum_numbers():
    hit = decode_policy_object({"kind": 4, "name": "deny-all", "tier": "security", "action": 2, "policy_index": 1,
                                "rule_index": 3})
    assert (hit["kind"], hit["staged"], hit["action"], hit["position"], hit["rule_index"]) == ("sgnp", True, "deny", 1, 3)


def test_end_of_tier_hit_names_its_trigger():
    hit = decode_policy_object({"kind": "EndOfTier", "tier": "security", "action": "Deny", "policyIndex": "2",
                                "trigger": {"kind": "StagedNetworkPolicy", "namespace": "prod", "name": "lockdown",
                                            "tier": "security"}})
    assert (hit["kind"], hit["namespace"], hit["name"], hit["rule_index"], hit["end_of_tier"], hit["action"],
            hit["position"], hit["staged"]) == ("snp", "prod", "lockdown", -1, True, "deny", 2, True)


def test_whisker_trace_keys_and_profile_tier():
    traces = decode_policies({"enforced": [{"kind": "Profile", "name": "kns.default", "tier": "", "action": "Allow",
                                            "policy_index": 0, "rule_index": 0, "trigger": None}], "pending": None})
    assert traces["enforced_policies"][0]["kind"] == "pro"
    assert traces["enforced_policies"][0]["tier"] == "__PROFILE__"  # Goldmane blanks it; felix strings name it
    assert traces["pending_policies"] is None


@pytest.mark.parametrize("value", ["0|t|t.p|allow|0", {"all_policies": "0|t|t.p|allow|0"}, {"enforced": [42]}])
def test_policies_of_the_wrong_shape_are_rejected(value):
    with pytest.raises(TraceError):
        decode_policies(value)
