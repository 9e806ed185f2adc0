"""The distinct flows of a synthetic cluster's logs: exactly `keys` replay keys, each with the traffic it carries.

A replay key is reporter × source (type, namespace, name, labels, IP as logged) × destination (the same) × protocol ×
port. Keys come from the traffic pattern connection by connection, so the two halves of a pod-to-pod connection
(`src` and `dst` reporter) stay together; the cluster grows by namespaces until it has enough of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from flowstage.errors import UsageError
from flowstage.synth.cluster import (
    Cluster,
    Connection,
    ExternalPeer,
    NetworkSet,
    Node,
    Peer,
    Pod,
    Workload,
    build_cluster,
)
from flowstage.synth.intent import Intent, derive_intent
from flowstage.synth.records import FlowKey, LoggedEndpoint, PolicyHit, ServiceRef

DEFAULT_ALLOWED_LEVEL = 2  # felix's flowLogsFileAggregationKindForAllowed default
DEFAULT_DENIED_LEVEL = 1  # …KindForDenied default


@dataclass
class KeyTraffic:
    """Per-key traffic profile: arrays aligned with `KeyTable.keys`."""

    volume: np.ndarray  # mean connections (short-lived) or traffic units (long-lived) per 5-minute window
    request_bytes: np.ndarray  # client → server bytes per connection
    response_bytes: np.ndarray  # server → client bytes per connection
    src_reported: np.ndarray  # bool: the client measured it (bytes_out = request)
    long_lived: np.ndarray  # bool: a few connections held open
    attempt_only: np.ndarray  # bool: dropped connection attempts (SYNs only, nothing comes back)
    udp: np.ndarray  # bool


@dataclass
class KeyTable:
    cluster: Cluster
    intent: Intent
    keys: list[FlowKey]
    traffic: KeyTraffic
    nat_ports: list[tuple[int, ...] | None]  # SNAT source ports for src rows leaving the cluster


def _pod_group_endpoint(pods: list[Pod], level: int) -> LoggedEndpoint:
    # Aggregated labels are the intersection over the group's pods (identical within one ReplicaSet).
    return pods[0].logged(level)


def _logged(peer: Peer | list[Pod], level: int) -> LoggedEndpoint:
    if isinstance(peer, list):
        return _pod_group_endpoint(peer, level)
    if isinstance(peer, ExternalPeer):
        return peer.logged(level, peer.ips[0])
    if isinstance(peer, NetworkSet):
        return peer.logged(level, peer.members[0] if peer.members else None)
    if isinstance(peer, Node):
        hep = peer.logged()
        if level < 2:
            return LoggedEndpoint(hep.type, hep.name_aggr, None, hep.labels, peer.name, peer.ip)
        return hep
    raise TypeError(f"not a flow endpoint: {peer!r}")


def _identities(peer: Peer) -> list[tuple[Peer | list[Pod], float]]:
    """The aggregated identities of a peer with each one's share of its traffic (newer ReplicaSets carry more)."""
    if isinstance(peer, Workload):
        groups = peer.identities()
        sizes = [len(g) for g in groups]
        total = sum(sizes)
        return [(g, s / total) for g, s in zip(groups, sizes, strict=True)]
    return [(peer, 1.0)]


def _node_of(identity: Peer | list[Pod]) -> str:
    return identity[0].node.name if isinstance(identity, list) else ""


def _nat_ports(conn: Connection, salt: int) -> tuple[int, ...] | None:
    if isinstance(conn.server, ExternalPeer | NetworkSet) and isinstance(conn.client, Workload):
        base = 20_000 + (salt * 7919) % 40_000
        return tuple(sorted({base, base + 1 + salt % 997, base + 2 + salt % 4001}))[: 1 + salt % 3]
    return None


@dataclass
class _Unit:
    keys: list[FlowKey]
    volume: float
    conn: Connection


class _KeyMaker:
    def __init__(self, cluster: Cluster, intent: Intent, allowed_level: int, denied_level: int, legacy_all_policies: bool) -> None:
        self.cluster = cluster
        self.intent = intent
        self.allowed_level = allowed_level
        self.denied_level = denied_level
        self.legacy = legacy_all_policies

    def level(self, action: str) -> int:
        return self.allowed_level if action == "allow" else self.denied_level

    def key(
        self, conn: Connection, reporter: str, action: str, trace: tuple[tuple[PolicyHit, ...], tuple[PolicyHit, ...]],
        client: Peer | list[Pod], server: Peer | list[Pod], host: str,
    ) -> FlowKey:  # fmt: skip
        level = self.level(action)
        service = None
        if conn.service is not None:
            sp = conn.service_port
            assert sp is not None
            service = ServiceRef(conn.service.namespace, conn.service.name, sp.name, sp.port)
        enforced, pending = trace
        domains = conn.server.domains if isinstance(conn.server, ExternalPeer) and conn.server.domains else None
        return FlowKey(
            reporter=reporter,
            action=action,
            source=_logged(client, level),
            dest=_logged(server, level),
            proto=conn.proto,
            dest_port=None if level >= 3 else conn.port,
            service=service,
            enforced=enforced,
            pending=pending,
            host=host,
            dest_domains=domains,
            all_policies=legacy_all(enforced, pending) if self.legacy else None,
            aggregated_service_port=level >= 3,
        )

    def units(self, conn: Connection) -> list[_Unit]:
        client_is_pod = isinstance(conn.client, Workload)
        server_is_pod = isinstance(conn.server, Workload)
        egress = self.intent.egress_trace(conn) if client_is_pod else None
        ingress = self.intent.ingress_trace(conn) if server_is_pod else None
        if conn.verdict != "allow":
            return [self._denied_unit(conn, egress, ingress)]
        units = []
        for client, client_share in _identities(conn.client):
            for server, server_share in _identities(conn.server):
                keys = []
                if egress is not None:
                    keys.append(self.key(conn, "src", egress[0], egress[1:], client, server, _node_of(client)))  # type: ignore[arg-type]
                if ingress is not None:
                    keys.append(self.key(conn, "dst", ingress[0], ingress[1:], client, server, _node_of(server)))  # type: ignore[arg-type]
                units.append(_Unit(keys, conn.weight * client_share * server_share, conn))
        return units

    def _denied_unit(self, conn: Connection, egress: tuple | None, ingress: tuple | None) -> _Unit:
        # Denied rows keep pod names and IPs (aggregation level 1): one client pod tried one server pod.
        client: Peer | list[Pod] = [conn.client.pods[0]] if isinstance(conn.client, Workload) else conn.client
        server: Peer | list[Pod] = [conn.server.pods[0]] if isinstance(conn.server, Workload) else conn.server
        keys = []
        if egress is not None:
            src_client = _identities(conn.client)[0][0] if egress[0] == "allow" else client
            src_server = _identities(conn.server)[0][0] if egress[0] == "allow" else server
            keys.append(self.key(conn, "src", egress[0], egress[1:], src_client, src_server, _node_of(client)))
        if ingress is not None and (egress is None or egress[0] == "allow"):
            keys.append(self.key(conn, "dst", ingress[0], ingress[1:], client, server, _node_of(server)))
        return _Unit(keys, conn.weight, conn)


def legacy_all(enforced: tuple[PolicyHit, ...], pending: tuple[PolicyHit, ...]) -> tuple[PolicyHit, ...]:
    """The pre-2025 `all_policies` list: the staged hits the dataplane saw, then the enforced trace after them."""
    return tuple(h for h in pending if h.staged) + enforced


def _candidate_units(cluster: Cluster, maker: _KeyMaker) -> Iterator[_Unit]:
    for conn in cluster.connections:
        yield from maker.units(conn)


def estimate_namespaces(keys: int) -> int:
    """Application namespaces a cluster needs to yield `keys` distinct keys (each yields about 50)."""
    return max(1, -(-keys // 45))


def key_table(
    keys: int,
    seed: int = 1,
    namespaces: int | None = None,
    allowed_level: int = DEFAULT_ALLOWED_LEVEL,
    denied_level: int = DEFAULT_DENIED_LEVEL,
    legacy_all_policies: bool = False,
) -> KeyTable:
    """Exactly `keys` distinct flow keys of a seeded cluster, in traffic-pattern order, with their traffic."""
    if keys < 1:
        raise UsageError(f"--keys must be at least 1, got {keys}")
    for name, level in (("allowed", allowed_level), ("denied", denied_level)):
        if level not in (0, 1, 2, 3):
            raise UsageError(f"aggregation level for {name} flows must be 0, 1, 2 or 3, got {level}")
    n = namespaces if namespaces is not None else estimate_namespaces(keys)
    while True:
        cluster = build_cluster(n, seed)
        intent = derive_intent(cluster)
        maker = _KeyMaker(cluster, intent, allowed_level, denied_level, legacy_all_policies)
        units = _candidate_units(cluster, maker)
        chosen, volumes, conns = _take(units, keys)
        if len(chosen) == keys:
            break
        if namespaces is not None:
            raise UsageError(
                f"a cluster of {namespaces} application namespaces has only {len(chosen)} distinct flow keys, fewer than "
                f"--keys {keys}: raise --namespaces (about {estimate_namespaces(keys)} gives enough) or leave it out"
            )
        n = max(n + 1, int(n * 1.5))
    traffic = _traffic(chosen, volumes, conns)
    nat = [_nat_ports(c, i) if k.reporter == "src" else None for i, (k, c) in enumerate(zip(chosen, conns, strict=True))]
    return KeyTable(cluster, intent, chosen, traffic, nat)


def _take(units: Iterable[_Unit], wanted: int) -> tuple[list[FlowKey], list[float], list[Connection]]:
    seen: set[FlowKey] = set()
    keys: list[FlowKey] = []
    volumes: list[float] = []
    conns: list[Connection] = []
    for unit in units:
        for key in unit.keys:
            if len(keys) == wanted:
                return keys, volumes, conns
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            volumes.append(unit.volume)
            conns.append(unit.conn)
    return keys, volumes, conns


def _traffic(keys: list[FlowKey], volumes: list[float], conns: list[Connection]) -> KeyTraffic:
    return KeyTraffic(
        volume=np.asarray(volumes, dtype=np.float64),
        request_bytes=np.asarray([c.request_bytes for c in conns], dtype=np.float64),
        response_bytes=np.asarray([c.response_bytes for c in conns], dtype=np.float64),
        src_reported=np.asarray([k.reporter == "src" for k in keys]),
        long_lived=np.asarray([c.long_lived for c in conns]),
        attempt_only=np.asarray([c.verdict != "allow" for c in conns]),
        udp=np.asarray([c.proto == "udp" for c in conns]),
    )
