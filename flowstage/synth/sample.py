"""The committed sample: one small cluster running the staged-policy lesson, logged in four formats.

`write_sample(dir)` regenerates `sample_logs/` byte for byte: the felix flows.log of each node (current and a
rotated, zstd-compressed backup), a later Elasticsearch `_source` export, a Goldmane emitter capture and a Whisker
download, plus the lesson's policies and the cluster's namespaces and pods.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from flowstage.synth.aggregation import Observation, Verdict, aggregate
from flowstage.synth.cluster import (
    CREATED,
    Cluster,
    ClusterBuilder,
    ExternalPeer,
    NamedPort,
    Pod,
    Service,
    ServicePort,
    Workload,
    stable_rng,
)
from flowstage.synth.formats import FlowLogWriter, rotated_name
from flowstage.synth.records import FlowRecord, PolicyHit, ServiceRef, profile_allow

SEED = 2026
CLUSTER_NAME = "cluster"
DAY = int(dt.datetime(2026, 3, 3, tzinfo=dt.UTC).timestamp())
HOUR = 3600

# --- the policies in force, and what they do (derived by hand from calico-semantics §5.2, §5.5, §5.6) ------------
#
#   database-allow-from-backend  GlobalNetworkPolicy, default tier, no order. Selects env == 'prod' && app == 'database'.
#                                Ingress only: rule 0 allows TCP 8080 from env == 'prod' && app == 'backend'.
#   backend-lockdown-staged      StagedGlobalNetworkPolicy, default tier, no order. Selects env == 'prod' && app == 'backend'.
#                                Ingress only, no rules: staged, so it only shows in pending traces.
#
# Nothing governs egress, so every src-reported row is decided by the client's namespace profile `kns.<ns>`.
# Ingress to the database: the enforced policy applies; backend on TCP 8080 matches rule 0, anything else falls to
# the end of the default tier (rule -1, deny). Pending is the same: the staged policy does not select the database.
# Ingress to the backend: no enforced policy selects it, so the default tier is skipped and the profile allows;
# pending evaluation adds the staged lockdown, which selects it and has no rules: end of tier, deny.
# Ingress to every other pod: no policy at all, the namespace profile allows.

DB_RULE_0 = PolicyHit("default", "gnp", "database-allow-from-backend", "allow", 0)
DB_END_OF_TIER = PolicyHit("default", "gnp", "database-allow-from-backend", "deny", -1)
LOCKDOWN_END_OF_TIER = PolicyHit("default", "sgnp", "backend-lockdown-staged", "deny", -1)


def profile(namespace: str) -> Verdict:
    """No policy decided: the pod's namespace profile allows (enforced and pending alike)."""
    hit = (profile_allow(namespace),)
    return Verdict("allow", hit, hit)


DATABASE_FROM_BACKEND = Verdict("allow", (DB_RULE_0,), (DB_RULE_0,))
DATABASE_FROM_ANYONE_ELSE = Verdict("deny", (DB_END_OF_TIER,), (DB_END_OF_TIER,))
BACKEND_INGRESS = Verdict("allow", (profile_allow("prod"),), (LOCKDOWN_END_OF_TIER,))

LESSON_YAML = """\
# The two policies of the staged-policy lesson, as the cluster runs them.
# Enforced: prod/database accepts ingress only from prod/backend on TCP 8080.
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: database-allow-from-backend
spec:
  selector: env == 'prod' && app == 'database'
  types:
  - Ingress
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: env == 'prod' && app == 'backend'
    destination:
      ports: [8080]
---
# Staged: would default-deny the backend's ingress; observe-only until promoted to a GlobalNetworkPolicy.
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: backend-lockdown-staged
spec:
  selector: env == 'prod' && app == 'backend'
  types:
  - Ingress
"""

SAFETY_NET_YAML = """\
# The lesson's safe-mode habit: apply this BEFORE experimenting with denies; remove it LAST.
# Not in force while the sample's logs were written.
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: zzz-final-allow-everything
spec:
  order: 100000 # very high -> evaluated last -> a safety net, not a shield
  types: [Ingress, Egress]
  ingress:
  - action: Allow
  egress:
  - action: Allow
"""

# --- the cluster ---------------------------------------------------------------------------------------------

INTERNET = ExternalPeer("internet-clients", ("81.2.69.160", "93.184.216.34", "185.199.108.153", "151.101.65.69"))
PAYMENTS_API = ExternalPeer("payments-provider", ("198.51.100.40",), ("api.payments.example.com",))
LOG_SAAS = ExternalPeer("log-saas", ("34.120.54.55",), ("logs.observability.example.com",))
UPSTREAM_DNS = ExternalPeer("upstream-dns", ("8.8.8.8", "1.1.1.1"))
API_SERVER = ExternalPeer("kube-apiserver", ("10.0.0.10",))  # host-networked on the control plane: `net` / `pvt`

IMAGES = {
    "coredns": "registry.k8s.io/coredns/coredns:v1.11.3",
    "calico-kube-controllers": "quay.io/tigera/kube-controllers:v3.23.0",
    "prometheus": "quay.io/prometheus/prometheus:v3.2.1",
    "ingress-nginx-controller": "registry.k8s.io/ingress-nginx/controller:v1.12.1",
    "fluent-bit": "cr.fluentbit.io/fluent/fluent-bit:3.2.4",
}


@dataclass
class SampleCluster:
    cluster: Cluster
    services: dict[str, Service]

    def w(self, ref: str) -> Workload:
        return self.cluster.workload(ref)


def build_sample_cluster() -> SampleCluster:
    """Three nodes, the lesson's prod namespace, a staging load generator, monitoring, ingress, logging, DNS."""
    b = ClusterBuilder(SEED)
    cp = b.node("k8s-cp-0", "10.0.0.10", "192.168.20.64/26", role="control-plane", zone="eu-west-1a")
    w1 = b.node("k8s-worker-1", "10.0.0.11", "192.168.124.0/26", zone="eu-west-1a")
    w2 = b.node("k8s-worker-2", "10.0.0.12", "192.168.61.192/26", zone="eu-west-1b")
    for name, labels in (
        ("default", {}), ("kube-system", {}), ("calico-system", {"name": "calico-system"}),
        ("prod", {"env": "prod"}), ("staging", {"env": "staging"}), ("monitoring", {"team": "platform"}),
        ("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}), ("logging", {"team": "platform"}),
    ):  # fmt: skip
        b.namespace(name, **labels)
    workload = b.workload
    coredns = workload(
        "Deployment", "coredns", "kube-system", role="dns", nodes=[cp, w1], replicas=2, labels={"k8s-app": "kube-dns"},
        ports=(NamedPort("dns", 53, "UDP"), NamedPort("dns-tcp", 53), NamedPort("metrics", 9153)), service_account="coredns",
    )  # fmt: skip
    workload("Deployment", "calico-kube-controllers", "calico-system", role="controller", nodes=[cp],
             labels={"k8s-app": "calico-kube-controllers"}, service_account="calico-kube-controllers")  # fmt: skip
    frontend = workload(
        "Deployment", "frontend", "prod", role="frontend", nodes=[w1, w2, w2], replicas=3,
        labels={"app": "frontend", "env": "prod", "tier": "web", "version": "v1.14.2"}, ports=(NamedPort("http", 8080),),
        service_account="frontend",
    )  # fmt: skip
    backend = workload(
        "Deployment", "backend", "prod", role="api", nodes=[w1, w2, w1], replicas=3,
        labels={"app": "backend", "env": "prod", "tier": "api", "version": "v2.3.0"},
        ports=(NamedPort("http", 8080), NamedPort("metrics", 9090)), service_account="backend",
    )  # fmt: skip
    database = workload(
        "StatefulSet", "database", "prod", role="database", nodes=[w1, w2], replicas=2,
        labels={"app": "database", "env": "prod", "tier": "data"}, ports=(NamedPort("http", 8080), NamedPort("metrics", 9187)),
        service_account="database",
    )  # fmt: skip
    workload("Deployment", "loadgen", "staging", role="loadgen", nodes=[w2],
             labels={"app": "loadgen", "env": "staging", "version": "v0.9.1"})  # fmt: skip
    workload(
        "StatefulSet", "prometheus", "monitoring", role="monitoring", nodes=[w1],
        labels={"app": "prometheus", "app.kubernetes.io/name": "prometheus"}, ports=(NamedPort("web", 9090),),
        service_account="prometheus",
    )  # fmt: skip
    ingress = workload(
        "Deployment", "ingress-nginx-controller", "ingress-nginx", role="ingress", nodes=[w1, w2], replicas=2,
        labels={"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
        ports=(NamedPort("http", 80), NamedPort("https", 443)), service_account="ingress-nginx",
    )  # fmt: skip
    workload("DaemonSet", "fluent-bit", "logging", role="logging", nodes=[cp, w1, w2],
             labels={"app.kubernetes.io/name": "fluent-bit"}, service_account="fluent-bit")  # fmt: skip
    services = {
        "kubernetes": b.service(None, "kubernetes", "default", (ServicePort("https", 443, 6443),), "10.96.0.1"),
        "kube-dns": b.service(coredns, "kube-dns", "kube-system",
                              (ServicePort("dns", 53, 53, "UDP"), ServicePort("dns-tcp", 53, 53), ServicePort("metrics", 9153, 9153)), "10.96.0.10"),  # fmt: skip
        "frontend": b.service(frontend, "frontend", "prod", (ServicePort("http", 80, 8080),), "10.96.112.40"),
        "backend": b.service(backend, "backend", "prod", (ServicePort("http", 8080, 8080), ServicePort("metrics", 9090, 9090)), "10.96.87.3"),
        "database": b.service(database, "database", "prod", (ServicePort("http", 8080, 8080),), "10.96.5.211"),
        "ingress": b.service(ingress, "ingress-nginx-controller", "ingress-nginx",
                             (ServicePort("http", 80, 80), ServicePort("https", 443, 443)), "10.96.200.17"),  # fmt: skip
    }
    b.cluster.externals += [INTERNET, PAYMENTS_API, LOG_SAAS, UPSTREAM_DNS, API_SERVER]
    return SampleCluster(b.cluster, services)


# --- who talks to whom, and what each side's policy says ---------------------------------------------------------


@dataclass(frozen=True)
class FlowClass:
    client: str  # `ns/workload`, or an external peer's label
    server: str
    port: int
    proto: str
    per_window: float  # connections per 5-minute window across all pod pairs (long-lived: per pod pair, held open)
    request_bytes: int
    response_bytes: int
    ingress: Verdict | None  # the server's ingress verdict; None when the server is not a pod
    service: tuple[str, str] | None = None  # (service key, port name) the client addressed
    active: float = 1.0  # share of windows in which it happens at all
    long_lived: bool = False
    attempts_only: bool = False  # every attempt is dropped: SYNs out, nothing back


DNS_QUERIES_PER_POD = {
    "prod/frontend": 150, "prod/backend": 420, "prod/database": 30, "staging/loadgen": 90, "monitoring/prometheus": 240,
    "ingress-nginx/ingress-nginx-controller": 260, "calico-system/calico-kube-controllers": 40, "logging/fluent-bit": 60,
}  # fmt: skip

FLOW_CLASSES: tuple[FlowClass, ...] = (
    # The lesson's scenario.
    FlowClass("prod/frontend", "prod/backend", 8080, "tcp", 3600, 900, 14_000, BACKEND_INGRESS, ("backend", "http")),
    FlowClass("prod/backend", "prod/database", 8080, "tcp", 900, 1_400, 22_000, DATABASE_FROM_BACKEND, ("database", "http")),
    # North-south: the internet reaches the ingress controller, which proxies to the frontend pods directly.
    FlowClass("internet-clients", "ingress-nginx/ingress-nginx-controller", 443, "tcp", 1400, 1_500, 28_000, profile("ingress-nginx"), ("ingress", "https")),
    FlowClass("internet-clients", "ingress-nginx/ingress-nginx-controller", 80, "tcp", 200, 420, 380, profile("ingress-nginx"), ("ingress", "http")),
    FlowClass("ingress-nginx/ingress-nginx-controller", "prod/frontend", 8080, "tcp", 1500, 1_300, 26_000, profile("prod")),
    FlowClass("prod/backend", "payments-provider", 443, "tcp", 120, 2_100, 3_400, None),
    # Cross-namespace: staging load tests prod, monitoring scrapes it.
    FlowClass("staging/loadgen", "prod/frontend", 8080, "tcp", 300, 700, 18_000, profile("prod"), ("frontend", "http")),
    FlowClass("monitoring/prometheus", "prod/backend", 9090, "tcp", 60, 310, 21_000, BACKEND_INGRESS),
    FlowClass("monitoring/prometheus", "kube-system/coredns", 9153, "tcp", 40, 300, 16_000, profile("kube-system")),
    # Denied at the database: nobody but the backend gets in.
    FlowClass("monitoring/prometheus", "prod/database", 9187, "tcp", 40, 74, 0, DATABASE_FROM_ANYONE_ELSE, attempts_only=True),
    FlowClass("staging/loadgen", "prod/database", 8080, "tcp", 4, 74, 0, DATABASE_FROM_ANYONE_ELSE, ("database", "http"), active=0.4, attempts_only=True),
    FlowClass("prod/frontend", "prod/database", 8080, "tcp", 3, 74, 0, DATABASE_FROM_ANYONE_ELSE, ("database", "http"), active=0.3, attempts_only=True),
    # The Kubernetes API server (host-networked on the control plane: logged as `pvt` after DNAT to 10.0.0.10:6443).
    FlowClass("calico-system/calico-kube-controllers", "kube-apiserver", 6443, "tcp", 2, 24_000, 310_000, None, ("kubernetes", "https"), long_lived=True),
    FlowClass("monitoring/prometheus", "kube-apiserver", 6443, "tcp", 3, 9_000, 160_000, None, ("kubernetes", "https"), long_lived=True),
    FlowClass("logging/fluent-bit", "kube-apiserver", 6443, "tcp", 1, 3_000, 40_000, None, ("kubernetes", "https"), long_lived=True),
    # Leaving the cluster.
    FlowClass("logging/fluent-bit", "log-saas", 443, "tcp", 1, 1_600_000, 6_000, None, long_lived=True),
    FlowClass("kube-system/coredns", "upstream-dns", 53, "udp", 700, 72, 140, None),
    # Everyone resolves names through CoreDNS (UDP; large answers retry over TCP).
    *(FlowClass(ref, "kube-system/coredns", 53, "udp", q, 74, 152, profile("kube-system"), ("kube-dns", "dns"))
      for ref, q in DNS_QUERIES_PER_POD.items()),
    *(FlowClass(ref, "kube-system/coredns", 53, "tcp", q / 50, 110, 920, profile("kube-system"), ("kube-dns", "dns-tcp"), active=0.5)
      for ref, q in DNS_QUERIES_PER_POD.items() if q >= 150),
)  # fmt: skip


# --- the timeline ---------------------------------------------------------------------------------------------

FELIX_START = DAY + 8 * HOUR  # rotated backups: 08:00 – 10:00; live flows.log: 10:00 – 10:20 (each node's own timer)
FELIX_WINDOWS = range(0, 28)
ROTATED_WINDOWS = range(0, 24)
ELASTIC_WINDOWS = range(30, 33)  # 10:30 – 10:45, exported from Elasticsearch
GOLDMANE_START = DAY + 11 * HOUR  # 11:00 – 11:30, six 5-minute emitter windows
GOLDMANE_WINDOWS = 6
WHISKER_START = DAY + 11 * HOUR + 45 * 60  # 11:45:00 – 11:46:00, four 15-second buckets
WHISKER_BUCKETS = 4
NODE_TIMER_OFFSET = {"k8s-cp-0": 17, "k8s-worker-1": 41, "k8s-worker-2": 88}


def felix_bounds(node: str, window: int) -> tuple[int, int]:
    """A node's flush window: 5 minutes on its own timer, each flush a few seconds late, windows back to back."""

    def edge(i: int) -> int:
        return FELIX_START + NODE_TIMER_OFFSET[node] + 300 * i + stable_rng(SEED, "flush", node, i).randrange(0, 14)

    return edge(window), edge(window + 1)


def _diurnal(start: int) -> float:
    hours = (start - DAY) / HOUR
    return 0.55 + 0.45 * math.sin((hours - 6.0) / 24.0 * 2 * math.pi)


class _Observer:
    """Plays the flow classes over the cluster, window by window, pod pair by pod pair."""

    def __init__(self, sample: SampleCluster) -> None:
        self.sample = sample
        self.externals = {p.label: p for p in sample.cluster.externals}

    def endpoints(self, ref: str) -> list[Pod | ExternalPeer]:
        if ref in self.externals:
            return [self.externals[ref]]
        return list(self.sample.w(ref).pods)

    def observe(self, source: str, window: int, start: int, seconds: int = 300) -> list[Observation]:
        """What happened in one window; `source` names the pipeline that watched it (felix, goldmane, whisker)."""
        rng = stable_rng(SEED, "observe", source, window, seconds)
        scale = _diurnal(start) * seconds / 300
        observations: list[Observation] = []
        for fc in FLOW_CLASSES:
            if rng.random() >= fc.active:
                continue
            clients, servers = self.endpoints(fc.client), self.endpoints(fc.server)
            pairs = [(c, s) for c in clients for s in servers]
            total = fc.per_window * scale * rng.lognormvariate(0.0, 0.15)
            for client, server in pairs:
                obs = self._pair(rng, fc, client, server, total / len(pairs), window, seconds)
                if obs is not None:
                    observations.append(obs)
        return observations

    def _pair(self, rng: random.Random, fc: FlowClass, client: Pod | ExternalPeer, server: Pod | ExternalPeer, mean: float, window: int, seconds: int) -> Observation | None:
        client_ip = client.ip if isinstance(client, Pod) else rng.choice(client.ips)
        server_ip = server.ip if isinstance(server, Pod) else server.ips[0]
        service = None
        if fc.service is not None:
            svc = self.sample.services[fc.service[0]]
            sp = next(p for p in svc.ports if p.name == fc.service[1])
            service = ServiceRef(svc.namespace, svc.name, sp.name, sp.port)
        egress = profile(client.namespace) if isinstance(client, Pod) else None
        if fc.long_lived:
            live = 1 if mean < 1.5 else round(mean)
            volume = max(mean, 1.0) * rng.uniform(0.6, 1.4)
            started = 1 if rng.random() < 0.05 else 0
            completed = 1 if started and rng.random() < 0.5 else 0
            up, down = int(volume * fc.request_bytes * seconds / 300), int(volume * fc.response_bytes * seconds / 300)
            p_up, p_down = max(1, up // 1400 + 2), max(1, down // 1400 + 2)
            connections = live
        else:
            connections = int(mean * rng.uniform(0.7, 1.3))
            if rng.random() < mean * rng.uniform(0.7, 1.3) - connections:
                connections += 1
            if connections == 0:
                return None
            started = max(0, connections - rng.randrange(0, 1 + connections // 25))
            completed = max(0, connections - rng.randrange(0, 1 + connections // 20))
            if fc.attempts_only:
                # SYN, two retransmissions, no answer: nothing completes.
                p_up, p_down, completed, started = connections * 3, 0, 0, connections
                up, down = p_up * 60, 0
            else:
                up = int(connections * fc.request_bytes * rng.uniform(0.8, 1.2))
                down = int(connections * fc.response_bytes * rng.uniform(0.8, 1.2))
                handshake = 1 if fc.proto == "udp" else 3
                p_up = connections * handshake + up // 1400
                p_down = connections * (1 if fc.proto == "udp" else 2) + down // 1400
        nat: tuple[int, ...] = ()
        if isinstance(server, ExternalPeer) and server.name_aggr == "pub" and isinstance(client, Pod):
            nat = tuple(sorted(rng.sample(range(20_000, 60_000), k=min(connections, 2))))
        return Observation(
            window, client, server, client_ip, server_ip, fc.port, fc.proto, service, egress, fc.ingress,
            connections, started, completed, up, down, p_up, p_down,
            server.domains if isinstance(server, ExternalPeer) and server.domains else None, nat,
        )  # fmt: skip


# --- writing --------------------------------------------------------------------------------------------------


def _write(path: Path, fmt: str, records: list[FlowRecord]) -> None:
    with FlowLogWriter(path, fmt, CLUSTER_NAME) as writer:
        writer.write_all(records)


def write_sample(output: Path) -> list[Path]:
    """Regenerate the sample into `output` (its `logs/`, `policies/` and `inventory/` are replaced)."""
    sample = build_sample_cluster()
    observer = _Observer(sample)
    for sub in ("logs", "policies", "inventory"):
        shutil.rmtree(output / sub, ignore_errors=True)
    written: list[Path] = []

    felix = aggregate((o for w in FELIX_WINDOWS for o in observer.observe("felix", w, felix_bounds("k8s-cp-0", w)[0])), felix_bounds)
    for node in NODE_TIMER_OFFSET:
        node_dir = output / "logs" / "felix" / node
        rotated = [r for r in felix if r.key.host == node and _window_of(node, r.start_time) in ROTATED_WINDOWS]
        live = [r for r in felix if r.key.host == node and _window_of(node, r.start_time) not in ROTATED_WINDOWS]
        rotated_at = felix_bounds(node, ROTATED_WINDOWS[-1])[1] + 2 + stable_rng(SEED, "rotate", node).randrange(1000) / 1000
        backup = node_dir / rotated_name("flows.log", rotated_at)
        _write(backup, "felix", rotated)
        _write(node_dir / "flows.log", "felix", live)
        written += [backup, node_dir / "flows.log"]

    # The same felix pipeline, shipped by fluentd to Elasticsearch half an hour later.
    elastic = aggregate((o for w in ELASTIC_WINDOWS for o in observer.observe("felix", w, felix_bounds("k8s-cp-0", w)[0])), felix_bounds)
    elastic.sort(key=lambda r: (r.end_time, r.key.host))
    path = output / "logs" / "elasticsearch" / "flows-export.jsonl"
    _write(path, "elastic", elastic)
    written.append(path)

    def goldmane_bounds(_node: str, window: int) -> tuple[int, int]:
        return GOLDMANE_START + 300 * window, GOLDMANE_START + 300 * (window + 1)

    gm_observations = (o for w in range(GOLDMANE_WINDOWS) for o in observer.observe("goldmane", w, goldmane_bounds("", w)[0]))
    goldmane = aggregate(gm_observations, goldmane_bounds, denied_level=2, per_node=False)
    path = output / "logs" / "goldmane" / "emitter.ndjson"
    _write(path, "goldmane", goldmane)
    written.append(path)

    def whisker_bounds(_node: str, bucket: int) -> tuple[int, int]:
        return WHISKER_START + 15 * bucket, WHISKER_START + 15 * (bucket + 1)

    wh_observations = (o for b in range(WHISKER_BUCKETS) for o in observer.observe("whisker", b, whisker_bounds("", b)[0], seconds=15))
    whisker = aggregate(wh_observations, whisker_bounds, denied_level=2, per_node=False)
    path = output / "logs" / "whisker" / "flows.json"
    _write(path, "whisker", whisker)
    written.append(path)

    written += _write_policies(output)
    written += _write_inventory(output, sample)
    return written


def _window_of(node: str, start: int) -> int:
    return (start - FELIX_START - NODE_TIMER_OFFSET[node] + 150) // 300


def _write_policies(output: Path) -> list[Path]:
    paths = [output / "policies" / "lesson.yaml", output / "policies" / "safety-net.yaml"]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(LESSON_YAML)
    paths[1].write_text(SAFETY_NET_YAML)
    return paths


def _kubectl_list(items: list[dict]) -> str:
    # kubectl prints YAML with keys sorted, inside a v1 List.
    doc = {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=200)


def _write_inventory(output: Path, sample: SampleCluster) -> list[Path]:
    cluster = sample.cluster
    namespaces = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"creationTimestamp": CREATED, "labels": ns.labels, "name": ns.name, "resourceVersion": str(200 + i), "uid": ns.uid},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        for i, ns in enumerate(cluster.namespaces)
    ]
    pods = [_pod_manifest(pod, w, i) for i, (w, pod) in enumerate((w, p) for w in cluster.workloads for p in w.pods)]
    pods.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    paths = [output / "inventory" / "namespaces.yaml", output / "inventory" / "pods.yaml"]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(_kubectl_list(namespaces))
    paths[1].write_text(_kubectl_list(pods))
    return paths


def _pod_manifest(pod: Pod, w: Workload, index: int) -> dict:
    image = IMAGES.get(w.name, f"registry.example.com/shop/{w.name}:{w.labels.get('version', 'v1.0.0')}")
    container: dict = {"image": image, "imagePullPolicy": "IfNotPresent", "name": w.name.removesuffix("-controller")}
    if pod.ports:
        container["ports"] = [{"containerPort": p.port, "name": p.name, "protocol": p.protocol} for p in pod.ports]
    metadata: dict = {
        "creationTimestamp": CREATED,
        "labels": dict(pod.labels),
        "name": pod.name,
        "namespace": pod.namespace,
        "ownerReferences": [
            {"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True, "kind": pod.owner_kind, "name": pod.owner_name,
             "uid": _owner_uid(pod)}
        ],  # fmt: skip
        "resourceVersion": str(4100 + index * 37),
        "uid": pod.uid,
    }
    if pod.generate_name:
        metadata["generateName"] = pod.generate_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "nodeName": pod.node.name,
            "serviceAccount": pod.service_account,
            "serviceAccountName": pod.service_account,
        },
        "status": {
            "hostIP": pod.node.ip,
            "hostIPs": [{"ip": pod.node.ip}],
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
        },
    }


def _owner_uid(pod: Pod) -> str:
    r = stable_rng(SEED, "owner", pod.namespace, pod.owner_name)
    return str(uuid.UUID(int=r.getrandbits(128), version=4))
