"""Policy sets of any size for a synthetic cluster, as multi-document YAML that Calico and Kubernetes accept.

Tiers `security` and `platform` (default action Pass) hold global guard rails, a `compliance` tier (default Deny)
fences PCI namespaces, and the `default` tier holds what each team runs (`flowstage.synth.intent`): Kubernetes
NetworkPolicies per server, egress allowlists, and staged changes of every staged kind. Selectors use the cluster's
own labels. Policies are taken namespace by namespace until the requested count is reached.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from flowstage.errors import UsageError
from flowstage.synth.cluster import Cluster, ExternalPeer, NetworkSet, Node, Peer, Workload, build_cluster
from flowstage.synth.intent import (
    EGRESS_ALLOWLIST_ORDER,
    LOCKDOWN_ORDER,
    IngressPolicy,
    Intent,
    derive_intent,
    selector_labels,
)

CALICO = "projectcalico.org/v3"
POLICY_KINDS = (
    "GlobalNetworkPolicy",
    "NetworkPolicy",
    "StagedGlobalNetworkPolicy",
    "StagedNetworkPolicy",
    "StagedKubernetesNetworkPolicy",
)
TIERS = (("security", 100, "Pass"), ("compliance", 150, "Deny"), ("platform", 200, "Pass"))
_PROTO = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}


def is_policy(doc: dict) -> bool:
    """A policy object (not a Tier or a network set): what `--count` counts."""
    return doc.get("kind") in POLICY_KINDS


def _meta(name: str, namespace: str | None = None) -> dict:
    return {"name": name, "namespace": namespace} if namespace else {"name": name}


def _calico(kind: str, name: str, spec: dict, namespace: str | None = None) -> dict:
    return {"apiVersion": CALICO, "kind": kind, "metadata": _meta(name, namespace), "spec": spec}


def _by_name(namespace: str) -> str:
    return f"projectcalico.org/name == '{namespace}'"


def _selector(labels: dict[str, str]) -> str:
    return " && ".join(f"{k} == '{v}'" for k, v in labels.items())


def _k8s_peer(client: Workload | ExternalPeer, policy_namespace: str) -> dict:
    if isinstance(client, ExternalPeer):
        if client.name_aggr == "pub":
            return {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]}}
        return {"ipBlock": {"cidr": str(ipaddress.ip_network(f"{client.ips[0]}/16", strict=False))}}
    peer: dict = {"podSelector": {"matchLabels": selector_labels(client)}}
    if client.namespace != policy_namespace:
        peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": client.namespace}}, **peer}
    return peer


def _k8s_ingress_spec(policy: IngressPolicy, rules: list) -> dict:
    # One peer and one protocol per rule: Calico then makes exactly one rule of each, keeping rule indexes aligned.
    return {
        "podSelector": {"matchLabels": selector_labels(policy.server)},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [_k8s_peer(client, policy.server.namespace)], "ports": [{"protocol": _PROTO[proto], "port": port}]}
            for client, port, proto in rules
        ],
    }


def _destination(dest: Peer, port: int, own_namespace: str, cluster: Cluster) -> dict:
    if isinstance(dest, Workload):
        entity = {"selector": _selector(selector_labels(dest))}
        if dest.namespace != own_namespace:
            entity["namespaceSelector"] = _by_name(dest.namespace)
    elif isinstance(dest, NetworkSet):
        entity = {"selector": _selector(dest.labels)}
        if dest.namespace is None:
            entity["namespaceSelector"] = "global()"
    elif isinstance(dest, Node):
        entity = {"nets": [f"{dest.ip}/32"]}
    else:
        entity = {"nets": [f"{ip}/32" for ip in dest.ips]}
    entity["ports"] = [port]
    return entity


@dataclass
class _Generator:
    cluster: Cluster
    intent: Intent

    def tiers(self) -> list[dict]:
        return [_calico("Tier", name, {"order": order, "defaultAction": action}) for name, order, action in TIERS]

    def network_sets(self) -> list[dict]:
        docs = []
        for ns in self.cluster.network_sets:
            kind = "NetworkSet" if ns.namespace else "GlobalNetworkSet"
            doc = _calico(kind, ns.name, {"nets": list(ns.nets)}, ns.namespace)
            doc["metadata"]["labels"] = dict(ns.labels)
            docs.append(doc)
        return docs

    def cluster_wide(self) -> list[dict]:
        """Guard rails every cluster has, whatever its size."""
        all_pods = {"selector": "all()", "namespaceSelector": "all()"}
        cp = self.cluster.control_plane
        return [
            _calico("GlobalNetworkPolicy", "security.block-threat-feed", {
                "tier": "security", "order": 10, **all_pods, "types": ["Ingress", "Egress"],
                "ingress": [{"action": "Deny", "source": {"selector": "threat-feed == 'blocked'", "namespaceSelector": "global()"}}],
                "egress": [{"action": "Deny", "destination": {"selector": "threat-feed == 'blocked'", "namespaceSelector": "global()"}}],
            }),
            _calico("GlobalNetworkPolicy", "security.deny-cloud-metadata", {
                "tier": "security", "order": 20, **all_pods, "types": ["Egress"],
                "egress": [{"action": "Deny", "protocol": "TCP", "destination": {"nets": ["169.254.169.254/32"], "ports": [80]}}],
            }),
            _calico("GlobalNetworkPolicy", "security.deny-legacy-protocols", {
                "tier": "security", "order": 30, **all_pods, "types": ["Ingress"],
                "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [21, 23, 3389]}}],
            }),
            _calico("GlobalNetworkPolicy", "security.quarantine", {
                "tier": "security", "order": 40, "selector": "quarantine == 'true'", "types": ["Ingress", "Egress"],
                "ingress": [{"action": "Log"}, {"action": "Deny"}], "egress": [{"action": "Deny"}],
            }),
            _calico("GlobalNetworkPolicy", "platform.allow-dns", {
                "tier": "platform", "order": 10, **all_pods, "types": ["Egress"],
                "egress": [
                    {"action": "Allow", "protocol": proto, "destination": {
                        "selector": "k8s-app == 'kube-dns'", "namespaceSelector": _by_name("kube-system"), "ports": [53]}}
                    for proto in ("UDP", "TCP")
                ],
            }),
            _calico("GlobalNetworkPolicy", "platform.kube-dns-ingress", {
                "tier": "platform", "order": 20, "selector": "k8s-app == 'kube-dns'", "namespaceSelector": _by_name("kube-system"),
                "types": ["Ingress"],
                "ingress": [{"action": "Allow", "protocol": proto, "destination": {"ports": [53]}} for proto in ("UDP", "TCP")],
            }),
            _calico("GlobalNetworkPolicy", "platform.allow-prometheus-scrape", {
                "tier": "platform", "order": 30, **all_pods, "types": ["Ingress"],
                "ingress": [{"action": "Allow", "protocol": "TCP", "source": {
                    "selector": "app.kubernetes.io/name == 'prometheus'", "namespaceSelector": _by_name("monitoring")},
                    "destination": {"ports": ["metrics"]}}],
            }),
            _calico("GlobalNetworkPolicy", "platform.allow-apiserver", {
                "tier": "platform", "order": 40, **all_pods, "types": ["Egress"],
                "egress": [{"action": "Allow", "protocol": "TCP", "destination": {"nets": [f"{cp.ip}/32"], "ports": [6443]}}],
            }),
            _calico("GlobalNetworkPolicy", "security.zz-hand-over", {
                "tier": "security", "order": 1000, **all_pods, "types": ["Ingress", "Egress"],
                "ingress": [{"action": "Pass"}], "egress": [{"action": "Pass"}],
            }),
        ]  # fmt: skip

    def per_namespace(self) -> Iterator[list[dict]]:
        """The policies of each application namespace, namespace by namespace."""
        by_namespace: dict[str, list[IngressPolicy]] = {}
        for policy in self.intent.ingress.values():
            by_namespace.setdefault(policy.server.namespace, []).append(policy)
        for ns in self.cluster.namespaces:
            env = ns.labels.get("env")
            if env is None or ns.name == "platform":
                continue
            docs: list[dict] = []
            if env == "prod":
                docs.append(_calico("GlobalNetworkPolicy", f"security.isolate-{ns.name}", {
                    "tier": "security", "order": 100, "namespaceSelector": _by_name(ns.name), "types": ["Ingress"],
                    "ingress": [{"action": "Deny", "source": {"namespaceSelector": "env == 'dev'"}}],
                }))  # fmt: skip
            if ns.labels.get("compliance") == "pci":
                docs.append(_calico("GlobalNetworkPolicy", f"compliance.pci-{ns.name}", {
                    "tier": "compliance", "order": 10, "namespaceSelector": _by_name(ns.name), "types": ["Ingress"],
                    "ingress": [
                        {"action": "Deny", "protocol": "TCP", "source": {"namespaceSelector": "env != 'prod'"}},
                        {"action": "Pass"},
                    ],
                }))  # fmt: skip
            for w in self.cluster.workloads:
                if w.namespace == ns.name and w.role == "frontend" and env != "dev":
                    docs.append(_calico("NetworkPolicy", f"platform.ingress-to-{w.name}", {
                        "tier": "platform", "order": 50, "selector": _selector(selector_labels(w)), "types": ["Ingress"],
                        "ingress": [{"action": "Allow", "protocol": "TCP", "source": {
                            "selector": "app.kubernetes.io/name == 'ingress-nginx'", "namespaceSelector": _by_name("ingress-nginx")},
                            "destination": {"ports": ["http"]}}],
                    }, ns.name))  # fmt: skip
            for policy in by_namespace.get(ns.name, []):
                docs.append(self.ingress_policy(policy))
                if policy.lockdown:
                    docs.append(self.lockdown(policy))
                if policy.revision:
                    docs.append(self.revision(policy))
            if ns.name in self.intent.egress:
                docs.append(self.egress_allowlist(ns.name))
            if ns.name in self.intent.staged_default_deny:
                docs.append(_calico("StagedGlobalNetworkPolicy", f"default-deny-{ns.name}", {
                    "stagedAction": "Set", "namespaceSelector": _by_name(ns.name), "types": ["Ingress"],
                }))  # fmt: skip
            yield docs

    def ingress_policy(self, policy: IngressPolicy) -> dict:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(policy.name, policy.server.namespace),
            "spec": _k8s_ingress_spec(policy, policy.rules),
        }

    def lockdown(self, policy: IngressPolicy) -> dict:
        return _calico("StagedNetworkPolicy", policy.lockdown_name, {
            "stagedAction": "Set", "order": LOCKDOWN_ORDER, "selector": _selector(selector_labels(policy.server)), "types": ["Ingress"],
            "ingress": [{"action": "Allow", "source": {"selector": "all()"}}, {"action": "Deny"}],
        }, policy.server.namespace)  # fmt: skip

    def revision(self, policy: IngressPolicy) -> dict:
        return _calico("StagedKubernetesNetworkPolicy", policy.revision_name, {
            "stagedAction": "Set", **_k8s_ingress_spec(policy, policy.revision_rules),
        }, policy.server.namespace)  # fmt: skip

    def egress_allowlist(self, namespace: str) -> dict:
        allowlist = self.intent.egress[namespace]
        rules = [
            {"action": "Allow", "protocol": _PROTO[proto], "destination": _destination(dest, port, namespace, self.cluster)}
            for dest, port, proto in allowlist.rules
        ]
        return _calico("NetworkPolicy", allowlist.name, {
            "order": EGRESS_ALLOWLIST_ORDER, "selector": "all()", "types": ["Egress"], "egress": rules,
        }, namespace)  # fmt: skip


def estimate_namespaces(count: int) -> int:
    """Application namespaces a cluster needs for `count` policies (each brings about 5)."""
    return max(3, -(-count // 4))


def generate_policies(count: int | None, seed: int = 1, namespaces: int | None = None) -> list[dict]:
    """Tiers, network sets and exactly `count` policy objects for the seeded cluster, in apply order.

    With `count=None`, every policy the cluster of `namespaces` application namespaces yields.
    """
    if count is not None and count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if count is None and namespaces is None:
        raise UsageError("give a policy count, or the number of namespaces whose every policy you want")
    n = namespaces if namespaces is not None else estimate_namespaces(count or 1)
    cluster = build_cluster(n, seed)
    gen = _Generator(cluster, derive_intent(cluster))
    policies = gen.cluster_wide()
    for docs in gen.per_namespace():
        if count is not None and len(policies) >= count:
            break
        policies.extend(docs)
    if count is not None and len(policies) < count:
        if namespaces is not None:
            raise UsageError(
                f"a cluster of {namespaces} application namespaces yields only {len(policies)} policies, fewer than "
                f"--count {count}: raise --namespaces (about {estimate_namespaces(count)}) or leave it out"
            )
        return generate_policies(count, seed, max(n + 1, n * 2))
    return gen.tiers() + gen.network_sets() + policies[:count]


def policies_yaml(docs: list[dict]) -> str:
    # libyaml's emitter writes the same text as PyYAML's, several times faster.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump_all(docs, Dumper=dumper, sort_keys=False, default_flow_style=False, width=200)


def write_policies(path: Path, count: int, seed: int = 1, namespaces: int | None = None) -> list[dict]:
    """Write `count` policies (plus the Tiers and network sets they use) to one multi-document YAML file."""
    docs = generate_policies(count, seed, namespaces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policies_yaml(docs))
    return docs
