"""A synthetic Kubernetes cluster: namespaces, workloads and their pods, Services, nodes, network sets, external
peers, and the traffic pattern (who calls whom, on which port, how much).

Everything is seeded. `build_cluster(n, seed)` grows namespace by namespace, each from its own random stream, so the
first n namespaces of every larger cluster with the same seed have the same names, workloads, labels and traffic
(only node placement and pod addresses scale with the cluster).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from flowstage.errors import UsageError
from flowstage.synth.records import LoggedEndpoint

# Kubernetes' rand.String alphabet (no vowels, no confusable digits): pod-template-hash and pod name suffixes.
_K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CREATED = "2026-01-12T09:14:03Z"


def k8s_suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_K8S_ALPHABET) for _ in range(length))


def stable_rng(*parts: object) -> random.Random:
    """A random stream named by its parts: independent of Python's hash seed and of everything else drawn."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class NamedPort:
    name: str
    port: int
    protocol: str = "TCP"  # Kubernetes spelling: TCP, UDP, SCTP


@dataclass(frozen=True)
class ServicePort:
    name: str | None
    port: int
    target_port: int
    protocol: str = "TCP"


@dataclass(eq=False)
class Namespace:
    name: str
    labels: dict[str, str]
    uid: str = ""
    egress_allowlist: bool = False  # its owners allow egress only to the destinations they listed


@dataclass(eq=False)
class Node:
    name: str
    ip: str
    labels: dict[str, str]
    role: str = "worker"  # worker / control-plane
    pods_placed: int = 0

    def logged(self) -> LoggedEndpoint:
        """A host endpoint as felix logs it (flowLogsEnableHostEndpoint): the node name is its identity."""
        return LoggedEndpoint("hep", self.name, None, tuple(sorted(f"{k}={v}" for k, v in self.labels.items())))


@dataclass(eq=False)
class Pod:
    name: str
    namespace: str
    node: Node
    ip: str
    labels: dict[str, str]
    generate_name: str | None  # None for StatefulSet pods and bare pods
    service_account: str
    owner_kind: str  # ReplicaSet, StatefulSet, DaemonSet
    owner_name: str
    ports: tuple[NamedPort, ...]
    uid: str = ""

    @property
    def name_aggr(self) -> str:
        """felix's aggregated name: the generateName prefix and `*`, or the pod name when there is none."""
        return f"{self.generate_name}*" if self.generate_name else self.name

    @functools.cached_property
    def label_strings(self) -> tuple[str, ...]:
        return tuple(sorted(f"{k}={v}" for k, v in self.labels.items()))

    @functools.cached_property
    def _aggregated(self) -> LoggedEndpoint:
        return LoggedEndpoint("wep", self.name_aggr, self.namespace, self.label_strings)

    def logged(self, level: int) -> LoggedEndpoint:
        """This pod as felix logs it at an aggregation level (0–1 keep name and IP, 2–3 keep only the prefix)."""
        if level >= 2:
            return self._aggregated
        return LoggedEndpoint("wep", self.name_aggr, self.namespace, self.label_strings, self.name, self.ip)


@dataclass(eq=False)
class Workload:
    kind: str  # Deployment, StatefulSet, DaemonSet
    name: str
    namespace: str
    labels: dict[str, str]  # pod template labels (without pod-template-hash and friends)
    ports: tuple[NamedPort, ...]
    service_account: str
    role: str  # what it does: frontend, api, database, cache, queue, worker, dns, monitoring, ingress, …
    pods: list[Pod] = field(default_factory=list)
    policy_managed: bool = False  # its namespace's owners write ingress policy for it (see flowstage.synth.keys)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def port(self, name: str) -> NamedPort:
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(f"{self.ref} has no port named {name}")

    def identities(self) -> list[list[Pod]]:
        """Pods grouped as felix aggregates them at level 2 (one group per generateName prefix or pod name)."""
        groups: dict[str, list[Pod]] = {}
        for pod in self.pods:
            groups.setdefault(pod.name_aggr, []).append(pod)
        return list(groups.values())


@dataclass(eq=False)
class Service:
    name: str
    namespace: str
    cluster_ip: str
    ports: tuple[ServicePort, ...]
    workload: Workload | None  # None: the API server's `default/kubernetes`

    def port_for(self, target: int) -> ServicePort:
        for p in self.ports:
            if p.target_port == target:
                return p
        raise KeyError(f"service {self.namespace}/{self.name} has no port targeting {target}")


@dataclass(eq=False)
class NetworkSet:
    name: str
    namespace: str | None  # None: GlobalNetworkSet
    labels: dict[str, str]
    nets: tuple[str, ...]
    members: tuple[str, ...]  # addresses inside the nets that traffic goes to

    def logged(self, level: int, ip: str | None = None) -> LoggedEndpoint:
        labels = tuple(sorted(f"{k}={v}" for k, v in self.labels.items()))
        return LoggedEndpoint("ns", self.name, self.namespace, labels, self.name if level < 2 else None, ip if level < 2 else None)


@dataclass(eq=False)
class ExternalPeer:
    """Addresses no Calico entity owns: felix logs them as `net`, named `pub` or `pvt` (RFC 1918)."""

    label: str  # a readable handle: `internet-clients`, `payments-provider`, …
    ips: tuple[str, ...]
    domains: tuple[str, ...] = ()

    @property
    def name_aggr(self) -> str:
        return "pvt" if ipaddress.ip_address(self.ips[0]) in _RFC1918 and all(ipaddress.ip_address(i) in _RFC1918 for i in self.ips) else "pub"

    def logged(self, level: int, ip: str | None = None) -> LoggedEndpoint:
        return LoggedEndpoint("net", self.name_aggr, None, (), None, ip if level < 2 else None)


class _Rfc1918:
    nets = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, ipaddress.IPv4Address) and any(ip in n for n in self.nets)


_RFC1918 = _Rfc1918()

Peer = Workload | ExternalPeer | NetworkSet | Node


@dataclass(eq=False)
class Connection:
    """One edge of the traffic pattern: a client calling a server on one port."""

    client: Workload | ExternalPeer
    server: Peer
    port: int  # post-DNAT destination port
    proto: str  # tcp / udp
    weight: float  # connections per 5-minute window across the whole edge
    request_bytes: int  # per connection, client → server
    response_bytes: int  # per connection, server → client
    service: Service | None = None
    verdict: str = "allow"  # allow, deny-ingress (the server's policy drops it), deny-egress (the client's policy drops it)
    long_lived: bool = False  # a few connections held open (watches, streams) rather than many short ones

    @property
    def service_port(self) -> ServicePort | None:
        return self.service.port_for(self.port) if self.service else None


@dataclass
class Cluster:
    seed: int
    namespaces: list[Namespace] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    network_sets: list[NetworkSet] = field(default_factory=list)
    externals: list[ExternalPeer] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)

    def pods(self) -> Iterator[Pod]:
        for w in self.workloads:
            yield from w.pods

    def workload(self, ref: str) -> Workload:
        for w in self.workloads:
            if w.ref == ref:
                return w
        raise KeyError(ref)

    def service_of(self, workload: Workload) -> Service | None:
        for s in self.services:
            if s.workload is workload:
                return s
        return None

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.role == "control-plane")


class ClusterBuilder:
    """Adds namespaces, nodes, workloads (with pods) and services to a cluster with Kubernetes-style names and
    addresses: pod-template-hash names, per-node pod CIDR blocks, ClusterIPs from 10.96.0.0/12."""

    def __init__(self, seed: int, pod_block_size: int = 64) -> None:
        self.cluster = Cluster(seed)
        self.rng = stable_rng(seed, "builder")
        self._pod_block_size = pod_block_size
        self._pod_blocks: dict[str, int] = {}
        self._next_service_ip = int(ipaddress.ip_address("10.96.0.10"))

    def uid(self, *parts: object) -> str:
        r = stable_rng(self.cluster.seed, "uid", *parts)
        return str(uuid.UUID(int=r.getrandbits(128), version=4))

    def namespace(self, name: str, /, **labels: str) -> Namespace:
        ns = Namespace(name, {"kubernetes.io/metadata.name": name, **labels}, self.uid("ns", name))
        self.cluster.namespaces.append(ns)
        return ns

    def node(self, name: str, ip: str, pod_cidr: str, role: str = "worker", zone: str = "zone-a") -> Node:
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "topology.kubernetes.io/zone": zone,
        }
        if role == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
        node = Node(name, ip, labels, role)
        self._pod_blocks[name] = int(ipaddress.ip_network(pod_cidr).network_address)
        self.cluster.nodes.append(node)
        return node

    def _pod_ip(self, node: Node) -> str:
        # Calico IPAM hands out addresses from the node's block; .0 is kept for the tunnel address.
        node.pods_placed += 1
        if node.pods_placed >= self._pod_block_size:
            raise UsageError(f"node {node.name} has no pod addresses left; build the cluster with more nodes")
        return str(ipaddress.ip_address(self._pod_blocks[node.name] + node.pods_placed))

    def workload(
        self,
        kind: str,
        name: str,
        namespace: str,
        *,
        role: str,
        nodes: list[Node],
        replicas: int = 1,
        labels: dict[str, str] | None = None,
        ports: tuple[NamedPort, ...] = (),
        service_account: str | None = None,
        revisions: int = 1,
    ) -> Workload:
        """A Deployment (pods of `revisions` ReplicaSets), StatefulSet (`name-0…`) or DaemonSet (one pod per node)."""
        template = dict(labels or {"app": name})
        w = Workload(kind, name, namespace, template, ports, service_account or "default", role)
        rng = stable_rng(self.cluster.seed, "workload", namespace, name)
        if kind == "Deployment":
            for r in range(revisions):
                pod_hash = k8s_suffix(rng, 10)
                # Older ReplicaSets keep a replica or two while a rollout is in progress.
                count = replicas if r == revisions - 1 else max(1, replicas // 2)
                for i in range(count):
                    node = nodes[(i + r) % len(nodes)]
                    pod_labels = {**template, "pod-template-hash": pod_hash}
                    if revisions > 1 and "version" in template:
                        pod_labels["version"] = _bump_version(template["version"], r - revisions + 1)
                    self._add_pod(w, f"{name}-{pod_hash}-{k8s_suffix(rng, 5)}", node, pod_labels, f"{name}-{pod_hash}-", "ReplicaSet", f"{name}-{pod_hash}")
        elif kind == "StatefulSet":
            revision = f"{name}-{k8s_suffix(rng, 10)}"
            for i in range(replicas):
                pod_name = f"{name}-{i}"
                pod_labels = {
                    **template,
                    "apps.kubernetes.io/pod-index": str(i),
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": pod_name,
                }
                self._add_pod(w, pod_name, nodes[i % len(nodes)], pod_labels, None, "StatefulSet", name)
        elif kind == "DaemonSet":
            revision = k8s_suffix(rng, 10)
            for node in nodes:
                pod_labels = {**template, "controller-revision-hash": revision, "pod-template-generation": "1"}
                self._add_pod(w, f"{name}-{k8s_suffix(rng, 5)}", node, pod_labels, f"{name}-", "DaemonSet", name)
        else:
            raise ValueError(f"unknown workload kind {kind}")
        self.cluster.workloads.append(w)
        return w

    def _add_pod(self, w: Workload, name: str, node: Node, labels: dict[str, str], generate_name: str | None, owner_kind: str, owner: str) -> None:
        pod = Pod(name, w.namespace, node, self._pod_ip(node), labels, generate_name, w.service_account, owner_kind, owner, w.ports)
        pod.uid = self.uid("pod", w.namespace, name)
        w.pods.append(pod)

    def service(self, workload: Workload | None, name: str, namespace: str, ports: tuple[ServicePort, ...], cluster_ip: str | None = None) -> Service:
        if cluster_ip is None:
            cluster_ip = str(ipaddress.ip_address(self._next_service_ip))
            self._next_service_ip += 1
        svc = Service(name, namespace, cluster_ip, ports, workload)
        self.cluster.services.append(svc)
        return svc

    def expose(self, workload: Workload, *port_names: str) -> Service:
        """A ClusterIP Service named after the workload, one named service port per container port."""
        ports = []
        for port_name in port_names:
            p = workload.port(port_name)
            ports.append(ServicePort(p.name, 80 if p.name == "http" else p.port, p.port, p.protocol))
        return self.service(workload, workload.name, workload.namespace, tuple(ports))

    def connect(self, client: Workload | ExternalPeer, server: Peer, port: int, proto: str = "tcp", **kw: object) -> Connection:
        conn = Connection(client, server, port, proto, **kw)  # type: ignore[arg-type]
        self.cluster.connections.append(conn)
        return conn


def _bump_version(version: str, delta: int) -> str:
    head, _, patch = version.rpartition(".")
    try:
        return f"{head}.{max(0, int(patch) + delta)}"
    except ValueError:
        return version


# --- the scalable cluster -----------------------------------------------------------------------------------

PRODUCTS = (
    "payments", "checkout", "catalog", "search", "identity", "orders", "inventory", "shipping", "notifications",
    "analytics", "recommendations", "billing", "media", "reviews", "loyalty", "pricing", "fraud", "ledger",
    "messaging", "profiles", "storefront", "warehouse", "support", "marketing", "geo", "booking", "quotes",
    "claims", "rewards", "forecast",
)  # fmt: skip
TEAMS = ("atlas", "borealis", "cobalt", "delta", "ember", "fjord", "granite", "harbor", "indigo", "juniper")
ENVS = (("prod", 0.45), ("staging", 0.35), ("dev", 0.20))
ARCHETYPES = ("web", "service", "pipeline", "ml")
API_SERVER_PORT = 6443


@dataclass
class _AppNamespace:
    namespace: Namespace
    product: str
    env: str
    archetype: str
    workloads: dict[str, Workload]


class ScaleClusterBuilder(ClusterBuilder):
    """The realistic cluster of any size: shared infrastructure plus `n` application namespaces."""

    def __init__(self, seed: int, app_namespaces: int) -> None:
        super().__init__(seed, pod_block_size=512)
        self.n = app_namespaces
        pods_estimate = 40 + 9 * app_namespaces
        workers = max(3, min(2_000, -(-pods_estimate // 35)))
        self.control_plane = self.node("cp-1", "10.0.0.10", "10.128.0.0/23", role="control-plane")
        pod_base = int(ipaddress.ip_address("10.128.0.0"))
        self.workers = [
            self.node(
                f"worker-{i:03d}", f"10.0.{1 + i // 240}.{10 + i % 240}", str(ipaddress.ip_network((pod_base + (i + 1) * 512, 23))), zone=f"zone-{'abc'[i % 3]}"
            )
            for i in range(workers)
        ]
        self.apps: list[_AppNamespace] = []
        self.service_apis: list[tuple[Workload, Service, str]] = []

    def _spread(self, key: str, count: int) -> list[Node]:
        r = stable_rng(self.cluster.seed, "spread", key)
        start = r.randrange(len(self.workers))
        return [self.workers[(start + i * 7) % len(self.workers)] for i in range(count)]

    def build(self) -> Cluster:
        self.cluster.app_namespaces = self.n
        self._infrastructure()
        for i in range(self.n):
            self._app_namespace(i)
        return self.cluster

    def _infrastructure(self) -> None:
        b = self
        b.namespace("default")
        b.namespace("kube-system")
        b.namespace("calico-system")
        b.namespace("monitoring", team="platform")
        b.namespace("ingress-nginx", **{"app.kubernetes.io/name": "ingress-nginx"})
        b.namespace("logging", team="platform")
        b.namespace("platform", team="platform", env="prod")
        self.kubernetes = b.service(None, "kubernetes", "default", (ServicePort("https", 443, API_SERVER_PORT),), "10.96.0.1")
        dns_replicas = max(2, min(12, self.n // 40 + 2))
        self.coredns = b.workload(
            "Deployment", "coredns", "kube-system", role="dns", nodes=self._spread("coredns", dns_replicas), replicas=dns_replicas,
            labels={"k8s-app": "kube-dns"}, ports=(NamedPort("dns", 53, "UDP"), NamedPort("dns-tcp", 53), NamedPort("metrics", 9153)),
            service_account="coredns",
        )  # fmt: skip
        self.kube_dns = b.service(
            self.coredns, "kube-dns", "kube-system",
            (ServicePort("dns", 53, 53, "UDP"), ServicePort("dns-tcp", 53, 53), ServicePort("metrics", 9153, 9153)), "10.96.0.10",
        )  # fmt: skip
        kc = b.workload(
            "Deployment", "calico-kube-controllers", "calico-system", role="controller", nodes=[self.control_plane],
            labels={"k8s-app": "calico-kube-controllers"}, service_account="calico-kube-controllers",
        )  # fmt: skip
        self.prometheus = b.workload(
            "StatefulSet", "prometheus-k8s", "monitoring", role="monitoring", nodes=self._spread("prometheus", 2), replicas=2,
            labels={"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": "k8s", "app.kubernetes.io/component": "prometheus"},
            ports=(NamedPort("web", 9090),), service_account="prometheus-k8s",
        )  # fmt: skip
        grafana = b.workload(
            "Deployment", "grafana", "monitoring", role="dashboard", nodes=self._spread("grafana", 1),
            labels={"app.kubernetes.io/name": "grafana", "app.kubernetes.io/component": "grafana"}, ports=(NamedPort("http", 3000),),
        )  # fmt: skip
        self.ingress = b.workload(
            "Deployment", "ingress-nginx-controller", "ingress-nginx", role="ingress", nodes=self._spread("ingress", 3), replicas=3,
            labels={"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": "ingress-nginx"},
            ports=(NamedPort("http", 80), NamedPort("https", 443), NamedPort("metrics", 10254)), service_account="ingress-nginx",
        )  # fmt: skip
        ingress_svc = b.service(self.ingress, "ingress-nginx-controller", "ingress-nginx", (ServicePort("http", 80, 80), ServicePort("https", 443, 443)))
        fluent = b.workload(
            "DaemonSet", "fluent-bit", "logging", role="logging", nodes=self.workers,
            labels={"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": "fluent-bit"}, ports=(NamedPort("http", 2020),),
            service_account="fluent-bit",
        )  # fmt: skip
        self.auth = b.workload(
            "Deployment", "auth", "platform", role="api", nodes=self._spread("auth", 3), replicas=3,
            labels={"app": "auth", "app.kubernetes.io/name": "auth", "tier": "api", "version": "v3.2.1", "team": "platform"},
            ports=(NamedPort("grpc", 9090), NamedPort("metrics", 9102)), service_account="auth",
        )  # fmt: skip
        self.auth_svc = b.service(self.auth, "auth", "platform", (ServicePort("grpc", 9090, 9090),))
        self.flags = b.workload(
            "Deployment", "feature-flags", "platform", role="api", nodes=self._spread("flags", 2), replicas=2,
            labels={"app": "feature-flags", "app.kubernetes.io/name": "feature-flags", "tier": "api", "version": "v1.8.0", "team": "platform"},
            ports=(NamedPort("http", 8080), NamedPort("metrics", 9102)),
        )  # fmt: skip
        self.flags_svc = b.expose(self.flags, "http")

        self.internet = ExternalPeer("internet-clients", ("81.2.69.160", "93.184.216.34", "185.199.108.153", "151.101.1.69"))
        self.upstream_dns = ExternalPeer("upstream-dns", ("8.8.8.8", "1.1.1.1"))
        self.log_saas = ExternalPeer("log-saas", ("34.120.54.55",), ("logs.observability.example.com",))
        self.cloud_apis = ExternalPeer("cloud-apis", ("52.216.8.11", "52.216.9.40"), ("s3.eu-west-1.amazonaws.com",))
        self.smtp_relay = ExternalPeer("smtp-relay", ("198.51.100.25",), ("smtp.mail.example.net",))
        self.cluster.externals += [self.internet, self.upstream_dns, self.log_saas, self.cloud_apis, self.smtp_relay]
        self.partners = NetworkSet("partner-apis", None, {"role": "partner-api"}, ("203.0.113.0/24",), ("203.0.113.20", "203.0.113.21"))
        self.threats = NetworkSet("threat-feed", None, {"threat-feed": "blocked"}, ("192.0.2.0/24", "198.18.0.0/15"), ())
        self.cluster.network_sets += [self.partners, self.threats]

        cp = self.control_plane
        b.connect(self.coredns, self.upstream_dns, 53, "udp", weight=900, request_bytes=72, response_bytes=140)
        b.connect(kc, cp, API_SERVER_PORT, weight=3, request_bytes=18_000, response_bytes=220_000, service=self.kubernetes, long_lived=True)
        b.connect(self.prometheus, cp, API_SERVER_PORT, weight=4, request_bytes=9_000, response_bytes=160_000, service=self.kubernetes, long_lived=True)
        b.connect(fluent, cp, API_SERVER_PORT, weight=2, request_bytes=4_000, response_bytes=60_000, service=self.kubernetes, long_lived=True)
        b.connect(fluent, self.log_saas, 443, weight=6, request_bytes=2_400_000, response_bytes=9_000, long_lived=True)
        b.connect(grafana, self.prometheus, 9090, weight=40, request_bytes=900, response_bytes=48_000)
        b.connect(self.internet, self.ingress, 443, weight=4_000, request_bytes=1_400, response_bytes=26_000, service=ingress_svc)
        b.connect(self.internet, self.ingress, 80, weight=600, request_bytes=420, response_bytes=380, service=ingress_svc)
        b.connect(self.prometheus, self.ingress, 10254, weight=10, request_bytes=300, response_bytes=52_000)
        b.connect(self.prometheus, self.auth, 9102, weight=10, request_bytes=300, response_bytes=24_000)
        b.connect(self.prometheus, self.flags, 9102, weight=10, request_bytes=300, response_bytes=12_000)
        b.connect(self.prometheus, self.coredns, 9153, weight=10, request_bytes=300, response_bytes=18_000)
        for w in (kc, self.prometheus, grafana, self.ingress, fluent, self.auth, self.flags):
            self._dns(w, 120)

    def _dns(self, w: Workload, weight: float, tcp: bool = False) -> None:
        self.connect(w, self.coredns, 53, "udp", weight=weight, request_bytes=74, response_bytes=150, service=self.kube_dns)
        if tcp:
            self.connect(w, self.coredns, 53, "tcp", weight=weight / 40, request_bytes=110, response_bytes=900, service=self.kube_dns)

    def _app_namespace(self, index: int) -> None:
        rng = stable_rng(self.cluster.seed, "namespace", index)
        product = PRODUCTS[index % len(PRODUCTS)] if index < len(PRODUCTS) else rng.choice(PRODUCTS)
        env = rng.choices([e for e, _ in ENVS], weights=[w for _, w in ENVS])[0]
        if index < 3:
            env = ("prod", "staging", "dev")[index]
        name = f"{product}-{env}"
        taken = {ns.name for ns in self.cluster.namespaces}
        if name in taken:
            name = f"{product}-{env}-{index}"
        team = rng.choice(TEAMS)
        archetype = ARCHETYPES[index % len(ARCHETYPES)] if index < 8 else rng.choice(ARCHETYPES)
        ns_labels = {"env": env, "team": team, "app.kubernetes.io/part-of": product}
        if product in ("payments", "billing", "ledger", "fraud") and env == "prod":
            ns_labels["compliance"] = "pci"
        ns = self.namespace(name, **ns_labels)
        ns.egress_allowlist = env == "prod" and rng.random() < 0.5
        build = getattr(self, f"_archetype_{archetype}")
        workloads: dict[str, Workload] = build(rng, ns, product, env, team)
        for w in workloads.values():
            w.policy_managed = env in ("prod", "staging") and w.role not in ("worker", "job")
            self._dns(w, rng.choice((60, 120, 240, 480)), tcp=rng.random() < 0.3)
            if any(p.name == "metrics" for p in w.ports):
                self.connect(self.prometheus, w, w.port("metrics").port, weight=10, request_bytes=310, response_bytes=rng.choice((8_000, 22_000, 64_000)))
        app = _AppNamespace(ns, product, env, archetype, workloads)
        self._cross_namespace(rng, app)
        self.apps.append(app)

    def _deploy(self, rng: random.Random, ns: Namespace, product: str, env: str, team: str, role: str, kind: str = "Deployment", ports: tuple[NamedPort, ...] = (), replicas: int | None = None, extra: dict[str, str] | None = None) -> Workload:
        name = f"{product}-{role}"
        major, minor, patch = rng.randint(1, 4), rng.randint(0, 12), rng.randint(0, 9)
        labels = {
            "app": name,
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": product,
            "env": env,
            "team": team,
            "tier": _TIER_OF_ROLE.get(role, "backend"),
        }
        if kind == "Deployment":
            labels["version"] = f"v{major}.{minor}.{patch}"
        if rng.random() < 0.15:
            labels["release"] = rng.choice(("stable", "canary"))
        if rng.random() < 0.1:
            labels["sidecar.istio.io/inject"] = "false"
        labels.update(extra or {})
        if replicas is None:
            replicas = {"prod": rng.randint(2, 6), "staging": rng.randint(1, 3), "dev": 1}[env]
        revisions = 1 if kind != "Deployment" else rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        return self.workload(
            kind, name, ns.name, role=role, nodes=self._spread(f"{ns.name}/{name}", max(replicas, 1)), replicas=replicas,
            labels=labels, ports=ports, service_account=name if rng.random() < 0.6 else "default", revisions=revisions,
        )  # fmt: skip

    def _archetype_web(self, rng: random.Random, ns: Namespace, product: str, env: str, team: str) -> dict[str, Workload]:
        d = lambda role, **kw: self._deploy(rng, ns, product, env, team, role, **kw)  # noqa: E731
        fe = d("frontend", ports=(NamedPort("http", 8080), NamedPort("metrics", 9113)))
        api = d("api", ports=(NamedPort("http", 8080), NamedPort("metrics", 9102)))
        worker = d("worker", ports=(NamedPort("metrics", 9102),))
        db = d("postgres", kind="StatefulSet", ports=(NamedPort("postgres", 5432), NamedPort("metrics", 9187)), replicas=2 if env == "prod" else 1)
        cache = d("redis", kind="StatefulSet", ports=(NamedPort("redis", 6379),), replicas=1)
        fe_svc, api_svc = self.expose(fe, "http"), self.expose(api, "http")
        db_svc, cache_svc = self.expose(db, "postgres"), self.expose(cache, "redis")
        s = rng.choice((0.5, 1, 2, 4))
        self.connect(fe, api, 8080, weight=2_400 * s, request_bytes=900, response_bytes=14_000, service=api_svc)
        self.connect(api, db, 5432, weight=300 * s, request_bytes=2_200, response_bytes=28_000, service=db_svc, long_lived=True)
        self.connect(api, cache, 6379, weight=180 * s, request_bytes=400, response_bytes=3_200, service=cache_svc, long_lived=True)
        self.connect(worker, db, 5432, weight=40 * s, request_bytes=8_000, response_bytes=90_000, service=db_svc, long_lived=True)
        self.connect(worker, cache, 6379, weight=60 * s, request_bytes=300, response_bytes=1_100, service=cache_svc, long_lived=True)
        if env != "dev":
            self.connect(self.ingress, fe, 8080, weight=1_800 * s, request_bytes=1_300, response_bytes=24_000, service=fe_svc)
        if rng.random() < 0.6:
            self.connect(api, self.cloud_apis, 443, weight=30 * s, request_bytes=3_000, response_bytes=40_000)
        if product in ("payments", "billing", "checkout"):
            self.connect(api, self.partners, 443, weight=80 * s, request_bytes=1_600, response_bytes=2_400)
        if ns.egress_allowlist and rng.random() < 0.6:
            # The worker still tries a mail relay the egress allowlist no longer permits.
            self.connect(worker, self.smtp_relay, 25, weight=6, request_bytes=60, response_bytes=0, verdict="deny-egress")
        return {"frontend": fe, "api": api, "worker": worker, "postgres": db, "redis": cache}

    def _archetype_service(self, rng: random.Random, ns: Namespace, product: str, env: str, team: str) -> dict[str, Workload]:
        d = lambda role, **kw: self._deploy(rng, ns, product, env, team, role, **kw)  # noqa: E731
        api = d("api", ports=(NamedPort("grpc", 9090), NamedPort("metrics", 9102)))
        db = d("postgres", kind="StatefulSet", ports=(NamedPort("postgres", 5432), NamedPort("metrics", 9187)), replicas=2 if env == "prod" else 1)
        cache = d("memcached", kind="StatefulSet", ports=(NamedPort("memcache", 11211),), replicas=2 if env == "prod" else 1)
        api_svc, db_svc, cache_svc = self.expose(api, "grpc"), self.expose(db, "postgres"), self.expose(cache, "memcache")
        s = rng.choice((0.5, 1, 2))
        self.connect(api, db, 5432, weight=260 * s, request_bytes=1_800, response_bytes=22_000, service=db_svc, long_lived=True)
        self.connect(api, cache, 11211, weight=900 * s, request_bytes=200, response_bytes=1_800, service=cache_svc)
        self.service_apis.append((api, api_svc, env))
        return {"api": api, "postgres": db, "memcached": cache}

    def _archetype_pipeline(self, rng: random.Random, ns: Namespace, product: str, env: str, team: str) -> dict[str, Workload]:
        d = lambda role, **kw: self._deploy(rng, ns, product, env, team, role, **kw)  # noqa: E731
        ingest = d("ingest", ports=(NamedPort("http", 8080), NamedPort("metrics", 9102)))
        kafka = d("kafka", kind="StatefulSet", ports=(NamedPort("kafka", 9092), NamedPort("metrics", 9308)), replicas=3 if env == "prod" else 1)
        proc = d("processor", ports=(NamedPort("metrics", 9102),))
        kafka_svc = self.expose(kafka, "kafka")
        on_prem = NetworkSet("on-prem-warehouse", ns.name, {"role": "warehouse"}, ("10.200.0.0/16",), ("10.200.14.7",))
        self.cluster.network_sets.append(on_prem)
        s = rng.choice((0.5, 1, 3))
        self.connect(ingest, kafka, 9092, weight=40 * s, request_bytes=1_200_000, response_bytes=30_000, service=kafka_svc, long_lived=True)
        self.connect(proc, kafka, 9092, weight=30 * s, request_bytes=40_000, response_bytes=900_000, service=kafka_svc, long_lived=True)
        self.connect(proc, on_prem, 5432, weight=12 * s, request_bytes=600_000, response_bytes=20_000, long_lived=True)
        self.connect(proc, self.cloud_apis, 443, weight=20 * s, request_bytes=2_000_000, response_bytes=8_000)
        return {"ingest": ingest, "kafka": kafka, "processor": proc}

    def _archetype_ml(self, rng: random.Random, ns: Namespace, product: str, env: str, team: str) -> dict[str, Workload]:
        d = lambda role, **kw: self._deploy(rng, ns, product, env, team, role, **kw)  # noqa: E731
        model = d("model-server", ports=(NamedPort("grpc", 8500), NamedPort("http", 8501), NamedPort("metrics", 9102)))
        store = d("feature-store", kind="StatefulSet", ports=(NamedPort("redis", 6379),), replicas=1)
        trainer = d("trainer", ports=(NamedPort("metrics", 9102),), replicas=1)
        model_svc, store_svc = self.expose(model, "grpc"), self.expose(store, "redis")
        s = rng.choice((0.5, 1, 2))
        self.connect(model, store, 6379, weight=700 * s, request_bytes=300, response_bytes=6_000, service=store_svc)
        self.connect(trainer, store, 6379, weight=20 * s, request_bytes=900, response_bytes=400_000, service=store_svc, long_lived=True)
        self.connect(trainer, self.cloud_apis, 443, weight=15 * s, request_bytes=40_000, response_bytes=12_000_000)
        self.service_apis.append((model, model_svc, env))
        return {"model-server": model, "feature-store": store, "trainer": trainer}

    def _cross_namespace(self, rng: random.Random, app: _AppNamespace) -> None:
        callers = [w for w in app.workloads.values() if w.role in ("api", "frontend", "ingest", "model-server")]
        for w in callers:
            self.connect(w, self.auth, 9090, weight=rng.choice((40, 120, 400)), request_bytes=600, response_bytes=900, service=self.auth_svc)
            if rng.random() < 0.5:
                self.connect(w, self.flags, 8080, weight=20, request_bytes=300, response_bytes=2_400, service=self.flags_svc)
        # Call service APIs of earlier namespaces in the same environment (earlier only: keeps clusters prefix-stable).
        peers = [(api, svc) for api, svc, env in self.service_apis if env == app.env and api.namespace != app.namespace.name]
        for api, svc in rng.sample(peers, k=min(len(peers), rng.randint(0, 3))):
            caller = callers[0] if callers else None
            if caller is not None and caller is not api:
                port = svc.ports[0].target_port
                # Some new dependencies were never added to the callee's ingress policy: their calls are dropped.
                verdict = "deny-ingress" if api.policy_managed and rng.random() < 0.25 else "allow"
                weight = rng.choice((30, 90, 270)) if verdict == "allow" else rng.choice((3, 9))
                self.connect(caller, api, port, weight=weight, request_bytes=700, response_bytes=5_000, service=svc, verdict=verdict)
        if app.env in ("staging", "dev"):
            prod = next((a for a in self.apps if a.product == app.product and a.env == "prod"), None)
            db = prod.workloads.get("postgres") if prod else None
            caller = next(iter(app.workloads.values()))
            if db is not None:
                # A non-production workload pointed at the production database by mistake: dropped by the database's policy.
                self.connect(caller, db, 5432, weight=4, request_bytes=74, response_bytes=0, service=self.cluster.service_of(db), verdict="deny-ingress")
        if app.env == "prod" and "postgres" in app.workloads and rng.random() < 0.7:
            db = app.workloads["postgres"]
            self.connect(self.prometheus, db, 9187, weight=8, request_bytes=74, response_bytes=0, verdict="deny-ingress")


_TIER_OF_ROLE = {
    "frontend": "web", "api": "api", "worker": "worker", "postgres": "data", "redis": "cache", "memcached": "cache",
    "ingest": "api", "kafka": "queue", "processor": "worker", "model-server": "api", "feature-store": "cache", "trainer": "worker",
}  # fmt: skip


def build_cluster(namespaces: int = 12, seed: int = 1) -> Cluster:
    """A realistic cluster: shared infrastructure (DNS, API server, monitoring, ingress, logging, platform
    services) plus `namespaces` application namespaces of a few archetypes (web app, service, pipeline, ML)."""
    if namespaces < 0:
        raise UsageError(f"namespaces must be 0 or more, got {namespaces}")
    return ScaleClusterBuilder(seed, namespaces).build()
