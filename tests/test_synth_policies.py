"""Synthetic policy sets: the requested number of policies across tiers and kinds, YAML that loads and validates,
selectors over the cluster's own labels, and default-tier policies that match the traces `synth logs` records."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from flowstage.policy.loader import load_policies
from flowstage.synth.cluster import build_cluster
from flowstage.synth.keys import key_table
from flowstage.synth.policies import POLICY_KINDS, generate_policies, is_policy, policies_yaml, write_policies

DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def kind_of(doc: dict) -> str:
    return "KubernetesNetworkPolicy" if doc["apiVersion"] == "networking.k8s.io/v1" else doc["kind"]


@pytest.mark.parametrize("count", [50, 500, pytest.param(2_000, marks=pytest.mark.slow)])
def test_the_requested_number_of_policies_loads_with_safe_load_all(tmp_path: Path, count: int) -> None:
    path = tmp_path / "policies.yaml"
    write_policies(path, count)
    docs = list(yaml.safe_load_all(path.read_text()))
    assert sum(is_policy(d) for d in docs) == count
    assert {kind_of(d) for d in docs if is_policy(d)} == {*POLICY_KINDS, "KubernetesNetworkPolicy"}
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Tier"} == {"security", "compliance", "platform"}
    tiers = Counter(d["spec"].get("tier", "default") for d in docs if is_policy(d) and d["apiVersion"] != "networking.k8s.io/v1")
    assert set(tiers) == {"security", "compliance", "platform", "default"}


def test_every_object_has_the_shape_calico_accepts() -> None:
    docs = generate_policies(500)
    names = Counter((d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs)
    assert max(names.values()) == 1
    for d in docs:
        assert d["apiVersion"] in ("projectcalico.org/v3", "networking.k8s.io/v1")
        assert DNS_1123_SUBDOMAIN.fullmatch(d["metadata"]["name"]) and len(d["metadata"]["name"]) <= 253
        spec = d["spec"]
        tier = spec.get("tier")
        if tier:
            assert d["metadata"]["name"].startswith(f"{tier}.")  # required by Calico before 3.32, accepted after
        if d["kind"].startswith("Staged"):
            assert spec["stagedAction"] == "Set"
        namespaced = d["kind"] in ("NetworkPolicy", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy", "NetworkSet")
        assert ("namespace" in d["metadata"]) == namespaced
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            if d["apiVersion"] == "projectcalico.org/v3":
                ports = [p for side in ("source", "destination") for p in rule.get(side, {}).get("ports", [])]
                assert not ports or rule.get("protocol") in ("TCP", "UDP", "SCTP")
            else:
                assert len(rule["from"]) == 1 and len(rule["ports"]) == 1


def test_flowstage_loads_every_generated_policy_without_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    write_policies(path, 500)
    bundle = load_policies([path])
    assert bundle.problems == [] and len(bundle.policies) == 500
    assert {t.name for t in bundle.tiers} >= {"security", "compliance", "platform"}


def test_selectors_use_the_clusters_own_labels() -> None:
    cluster = build_cluster(40)
    apps = {w.labels["app"] for w in cluster.workloads if "app" in w.labels}
    docs = generate_policies(150, namespaces=40)
    selected = {
        d["spec"]["podSelector"]["matchLabels"]["app"]
        for d in docs if "podSelector" in d["spec"] and "app" in d["spec"]["podSelector"]["matchLabels"]
    }  # fmt: skip
    assert selected and selected <= apps


def test_the_same_seed_writes_the_same_yaml() -> None:
    assert policies_yaml(generate_policies(120, seed=5)) == policies_yaml(generate_policies(120, seed=5))
    assert policies_yaml(generate_policies(120, seed=5)) != policies_yaml(generate_policies(120, seed=6))


def test_logged_default_tier_traces_name_the_generated_policies_and_their_rules() -> None:
    table = key_table(2_000)
    docs = generate_policies(None, namespaces=table.cluster.app_namespaces)
    by_id = {(kind_of(d), d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
    kinds = {"knp": "KubernetesNetworkPolicy", "np": "NetworkPolicy", "snp": "StagedNetworkPolicy",
             "sgnp": "StagedGlobalNetworkPolicy", "sknp": "StagedKubernetesNetworkPolicy"}  # fmt: skip
    checked = Counter()
    for key in table.keys:
        for hit in key.enforced + key.pending:
            if hit.tier != "default":
                continue
            doc = by_id[(kinds[hit.kind], hit.namespace, hit.name)]
            rules = doc["spec"].get("ingress" if key.reporter == "dst" else "egress", [])
            assert hit.rule_index == -1 or hit.rule_index < len(rules)
            if hit.kind == "knp" and hit.rule_index >= 0:
                rule = rules[hit.rule_index]
                assert rule["ports"][0]["port"] == key.dest_port
                peer = rule["from"][0].get("podSelector", {}).get("matchLabels", {})
                assert set(peer.items()) <= {tuple(label.split("=", 1)) for label in key.source.labels or ()}
            checked[hit.kind] += 1
    assert set(checked) == set(kinds)
