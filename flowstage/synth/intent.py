"""What the owners of a synthetic cluster enforce and stage, decided once from its traffic pattern.

`flowstage.synth.policies` writes these as the default tier's policies; `flowstage.synth.keys` logs the traces they
produce. Each server a team manages gets a Kubernetes NetworkPolicy with one rule per allowed client, in a fixed order,
so a trace's rule index is the client's position. Some servers also carry a staged lockdown (a StagedNetworkPolicy
ordered before the Kubernetes policy) or a staged tighter revision of their policy (a StagedKubernetesNetworkPolicy
that sorts before the enforced one), prod namespaces may limit egress to an allowlist, and dev namespaces stage a
global default deny.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowstage.synth.cluster import (
    Cluster,
    Connection,
    ExternalPeer,
    NetworkSet,
    Node,
    Peer,
    Workload,
    stable_rng,
)
from flowstage.synth.records import PolicyHit, profile_allow

LOCKDOWN_ORDER = 100.0  # staged lockdowns sort before Kubernetes policies (order 1000) in the default tier
EGRESS_ALLOWLIST_ORDER = 500.0


def selector_labels(w: Workload) -> dict[str, str]:
    """The one label a policy uses to pick this workload's pods."""
    for key in ("app", "k8s-app", "app.kubernetes.io/name"):
        if key in w.labels:
            return {key: w.labels[key]}
    raise ValueError(f"{w.ref} has no identifying label")


def peer_sort_key(peer: Peer) -> tuple[str, str]:
    if isinstance(peer, Workload):
        return (peer.namespace, peer.name)
    if isinstance(peer, NetworkSet):
        return (peer.namespace or "", peer.name)
    if isinstance(peer, Node):
        return ("", peer.name)
    return ("~", peer.label)


@dataclass
class IngressPolicy:
    """A managed server's Kubernetes NetworkPolicy `<server>-ingress`: rule i allows `rules[i]`."""

    server: Workload
    rules: list[tuple[Workload | ExternalPeer, int, str]]  # (client, port, proto)
    lockdown: bool = False  # a StagedNetworkPolicy `<server>-lockdown` would allow only same-namespace clients
    revision: bool = False  # a StagedKubernetesNetworkPolicy `<server>-ingress-v2` keeps all rules but the last

    @property
    def name(self) -> str:
        return f"{self.server.name}-ingress"

    @property
    def lockdown_name(self) -> str:
        return f"{self.server.name}-lockdown"

    @property
    def revision_name(self) -> str:
        return f"{self.server.name}-ingress-v2"

    @property
    def revision_rules(self) -> list[tuple[Workload | ExternalPeer, int, str]]:
        return self.rules[:-1]


@dataclass
class EgressAllowlist:
    """A namespace's Calico NetworkPolicy `egress-allowlist`: rule i allows `rules[i]`, anything else is denied."""

    namespace: str
    rules: list[tuple[Peer, int, str]]  # (destination, port, proto)

    name = "egress-allowlist"


@dataclass
class Intent:
    ingress: dict[int, IngressPolicy] = field(default_factory=dict)  # by id(server workload)
    egress: dict[str, EgressAllowlist] = field(default_factory=dict)  # by namespace
    staged_default_deny: list[str] = field(default_factory=list)  # namespaces with a staged global default deny

    def ingress_policy(self, server: Workload) -> IngressPolicy | None:
        return self.ingress.get(id(server))

    def egress_trace(self, conn: Connection) -> tuple[str, tuple[PolicyHit, ...], tuple[PolicyHit, ...]]:
        """(action, enforced, pending) for the client's egress, as its src-reported rows log them."""
        client = conn.client
        assert isinstance(client, Workload)
        allowlist = self.egress.get(client.namespace)
        if allowlist is None:
            hits = (profile_allow(client.namespace),)
            return "allow", hits, hits
        for i, (dest, port, proto) in enumerate(allowlist.rules):
            if dest is conn.server and port == conn.port and proto == conn.proto:
                hits = (PolicyHit("default", "np", allowlist.name, "allow", i, client.namespace),)
                return "allow", hits, hits
        hits = (PolicyHit("default", "np", allowlist.name, "deny", -1, client.namespace),)
        return "deny", hits, hits

    def ingress_trace(self, conn: Connection) -> tuple[str, tuple[PolicyHit, ...], tuple[PolicyHit, ...]]:
        """(action, enforced, pending) for the server's ingress, as its dst-reported rows log them."""
        server = conn.server
        assert isinstance(server, Workload)
        policy = self.ingress_policy(server)
        if policy is None:
            enforced: tuple[PolicyHit, ...] = (profile_allow(server.namespace),)
            action = "allow"
            pending = enforced
            if server.namespace in self.staged_default_deny:
                pending = (PolicyHit("default", "sgnp", f"default-deny-{server.namespace}", "deny", -1),)
            return action, enforced, pending
        ns = server.namespace
        allowed_by = _rule_of(policy.rules, conn)
        if allowed_by is None:
            # End of the default tier: the dataplane names the last enforced policy that applied (here the only one).
            enforced = (PolicyHit("default", "knp", policy.name, "deny", -1, ns),)
        else:
            enforced = (PolicyHit("default", "knp", policy.name, "allow", allowed_by, ns),)
        action = "deny" if allowed_by is None else "allow"
        pending = enforced
        if policy.lockdown:
            same_namespace = isinstance(conn.client, Workload) and conn.client.namespace == ns
            pending = (PolicyHit("default", "snp", policy.lockdown_name, "allow" if same_namespace else "deny", 0 if same_namespace else 1, ns),)
        elif policy.revision:
            # The staged revision sorts first (same order, `-v2` < `/` in the name tie-break) and is tried first;
            # what it does not match falls through to the enforced policy, which still allows it.
            revised = _rule_of(policy.revision_rules, conn)
            if revised is not None:
                pending = (PolicyHit("default", "sknp", policy.revision_name, "allow", revised, ns),)
            elif allowed_by is None:
                # Pending traces come from Calico's checker, which names the tier's first policy at end of tier.
                pending = (PolicyHit("default", "sknp", policy.revision_name, "deny", -1, ns),)
        return action, enforced, pending


def _rule_of(rules: list[tuple[Workload | ExternalPeer, int, str]], conn: Connection) -> int | None:
    for i, (client, port, proto) in enumerate(rules):
        if client is conn.client and port == conn.port and proto == conn.proto:
            return i
    return None


def derive_intent(cluster: Cluster) -> Intent:
    """The policies the cluster's owners run: ingress policy for managed servers, egress allowlists, staged ones."""
    intent = Intent()
    clients: dict[int, set[tuple[Workload | ExternalPeer, int, str]]] = {}
    egress: dict[str, set[tuple[Peer, int, str]]] = {}
    allowlisted = {ns.name for ns in cluster.namespaces if ns.egress_allowlist}
    for conn in cluster.connections:
        if conn.verdict != "allow":
            continue
        if isinstance(conn.server, Workload) and conn.server.policy_managed:
            clients.setdefault(id(conn.server), set()).add((conn.client, conn.port, conn.proto))
        if isinstance(conn.client, Workload) and conn.client.namespace in allowlisted:
            egress.setdefault(conn.client.namespace, set()).add((conn.server, conn.port, conn.proto))
    managed = [w for w in cluster.workloads if w.policy_managed and id(w) in clients]
    for position, w in enumerate(managed):
        rules = sorted(clients[id(w)], key=lambda r: (peer_sort_key(r[0]), r[1], r[2]))
        # The first two managed servers always carry one staged change each, so every cluster has both kinds.
        draw = stable_rng(cluster.seed, "staged", w.ref).random()
        lockdown = position == 0 or (position > 1 and draw < 0.12)
        revision = len(rules) > 1 and (position == 1 or (position > 1 and 0.12 <= draw < 0.22))
        intent.ingress[id(w)] = IngressPolicy(w, rules, lockdown, revision)
    for ns, dests in egress.items():
        intent.egress[ns] = EgressAllowlist(ns, sorted(dests, key=lambda r: (peer_sort_key(r[0]), r[1], r[2])))
    intent.staged_default_deny = [ns.name for ns in cluster.namespaces if ns.labels.get("env") == "dev"]
    return intent
