"""The synthetic cluster model: Kubernetes-shaped names and labels, unique addresses, a traffic pattern with both
allowed and denied flows, and smaller clusters that are the beginning of larger ones."""

from __future__ import annotations

import re
from collections import Counter

from flowstage.synth.cluster import ExternalPeer, Workload, build_cluster
from flowstage.synth.keys import key_table


def test_pods_are_named_and_labelled_as_their_controllers_name_them() -> None:
    cluster = build_cluster(12)
    kinds = Counter(w.kind for w in cluster.workloads)
    assert set(kinds) == {"Deployment", "StatefulSet", "DaemonSet"}
    for w in cluster.workloads:
        for pod in w.pods:
            if w.kind == "Deployment":
                assert re.fullmatch(rf"{w.name}-[bcdfghjklmnpqrstvwxz2456789]{{10}}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod.name)
                assert pod.generate_name == pod.name[:-5] and pod.labels["pod-template-hash"] in pod.name
                assert pod.name_aggr == pod.generate_name + "*"
            elif w.kind == "StatefulSet":
                assert re.fullmatch(rf"{w.name}-\d+", pod.name) and pod.generate_name is None and pod.name_aggr == pod.name
                assert pod.labels["statefulset.kubernetes.io/pod-name"] == pod.name
            else:
                assert pod.name_aggr == f"{w.name}-*" and "controller-revision-hash" in pod.labels


def test_every_pod_has_its_own_address_on_a_real_node() -> None:
    cluster = build_cluster(40)
    pods = list(cluster.pods())
    assert len({p.ip for p in pods}) == len(pods)
    assert {p.node.name for p in pods} <= {n.name for n in cluster.nodes}


def test_labels_are_diverse_and_namespaces_carry_environment_labels() -> None:
    cluster = build_cluster(30)
    keys = Counter(k for w in cluster.workloads for k in w.labels)
    assert {"app", "env", "tier", "version", "team", "app.kubernetes.io/part-of"} <= set(keys)
    envs = Counter(ns.labels.get("env") for ns in cluster.namespaces)
    assert envs["prod"] and envs["staging"] and envs["dev"]
    rollouts = [w for w in cluster.workloads if w.kind == "Deployment" and len(w.identities()) > 1]
    assert rollouts  # Deployments mid-rollout: two ReplicaSets, two aggregated identities


def test_the_traffic_pattern_has_dns_api_server_cross_namespace_external_and_denied_flows() -> None:
    cluster = build_cluster(20)
    conns = cluster.connections
    assert any(isinstance(c.server, Workload) and c.server.name == "coredns" for c in conns)
    assert any(c.port == 6443 for c in conns)
    assert any(isinstance(c.client, Workload) and isinstance(c.server, Workload) and c.client.namespace != c.server.namespace for c in conns)
    assert any(isinstance(c.client, ExternalPeer) for c in conns) and any(isinstance(c.server, ExternalPeer) for c in conns)
    assert {c.verdict for c in conns} == {"allow", "deny-ingress", "deny-egress"}


def test_a_small_share_of_keys_is_denied_and_most_are_pod_to_pod() -> None:
    keys = key_table(20_000).keys
    denied = sum(k.action == "deny" for k in keys) / len(keys)
    assert 0.002 < denied < 0.1
    assert sum(k.source.type == k.dest.type == "wep" for k in keys) / len(keys) > 0.8


def test_a_smaller_cluster_is_the_beginning_of_a_larger_one() -> None:
    small, large = build_cluster(8, seed=4), build_cluster(50, seed=4)

    def workloads(cluster):  # type: ignore[no-untyped-def]
        return {(w.ref, tuple(sorted(w.labels.items()))) for w in cluster.workloads}

    assert workloads(small) <= workloads(large)
    assert [ns.name for ns in small.namespaces] == [ns.name for ns in large.namespaces][: len(small.namespaces)]
