"""How felix and Goldmane turn observed connections into flow-log records.

An `Observation` is what one client endpoint exchanged with one server endpoint in one window. felix logs it on
the client's node (reporter `src`, if the client is a pod) and on the server's node (reporter `dst`, if the server
is a pod and the client's egress let it out), aggregated per node and window at the level its verdict calls for;
Goldmane aggregates the same across the whole cluster, always at level 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flowstage.synth.cluster import ExternalPeer, Pod
from flowstage.synth.records import FlowKey, FlowRecord, LoggedEndpoint, PolicyHit, ServiceRef

NAT_PORT_LIMIT = 3  # felix's flowLogsFileNatOutgoingPortLimit default


@dataclass(frozen=True)
class Verdict:
    """What one side's policy did, as the flow log records it."""

    action: str  # allow / deny
    enforced: tuple[PolicyHit, ...]
    pending: tuple[PolicyHit, ...]


@dataclass
class Observation:
    window: int
    client: Pod | ExternalPeer
    server: Pod | ExternalPeer
    client_ip: str
    server_ip: str
    port: int
    proto: str
    service: ServiceRef | None
    egress: Verdict | None  # None when the client is not a Calico endpoint
    ingress: Verdict | None  # None when the server is not a Calico endpoint
    connections: int  # active in the window
    started: int
    completed: int
    bytes_up: int  # client → server
    bytes_down: int
    packets_up: int
    packets_down: int
    domains: tuple[str, ...] | None = None
    nat_ports: tuple[int, ...] = ()


def _endpoint(peer: Pod | ExternalPeer, ip: str, level: int) -> LoggedEndpoint:
    return peer.logged(level) if isinstance(peer, Pod) else peer.logged(level, ip)


@dataclass
class _Sum:
    key: FlowKey
    window: int
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0
    num_flows: int = 0
    started: int = 0
    completed: int = 0
    nat: frozenset[int] = frozenset()


WindowBounds = Callable[[str, int], tuple[int, int]]  # (node, window index) → (start, end)


def aggregate(
    observations: Iterable[Observation], bounds: WindowBounds, allowed_level: int = 2, denied_level: int = 1, per_node: bool = True
) -> list[FlowRecord]:
    """Flow-log records for the observations: felix's per-node files, or (per_node=False) Goldmane's cluster view."""
    sums: dict[tuple[int, FlowKey], _Sum] = {}

    def add(key: FlowKey, o: Observation, received: tuple[int, int], sent: tuple[int, int], nat: tuple[int, ...]) -> None:
        s = sums.get((o.window, key))
        if s is None:
            s = sums[(o.window, key)] = _Sum(key, o.window)
        s.bytes_in += received[0]
        s.packets_in += received[1]
        s.bytes_out += sent[0]
        s.packets_out += sent[1]
        s.num_flows += o.connections
        s.started += o.started
        s.completed += o.completed
        s.nat = s.nat | frozenset(nat)

    def key_for(o: Observation, reporter: str, verdict: Verdict, host: str) -> FlowKey:
        level = allowed_level if verdict.action == "allow" else denied_level
        return FlowKey(
            reporter=reporter,
            action=verdict.action,
            source=_endpoint(o.client, o.client_ip, level),
            dest=_endpoint(o.server, o.server_ip, level),
            proto=o.proto,
            dest_port=o.port,
            service=o.service,
            enforced=verdict.enforced,
            pending=verdict.pending,
            host=host if per_node else "",
            dest_domains=o.domains,
        )

    for o in observations:
        if isinstance(o.client, Pod) and o.egress is not None:
            key = key_for(o, "src", o.egress, o.client.node.name)
            add(key, o, (o.bytes_down, o.packets_down), (o.bytes_up, o.packets_up), o.nat_ports)
        let_out = o.egress is None or o.egress.action == "allow"
        if isinstance(o.server, Pod) and o.ingress is not None and let_out:
            key = key_for(o, "dst", o.ingress, o.server.node.name)
            add(key, o, (o.bytes_up, o.packets_up), (o.bytes_down, o.packets_down), ())
    records = []
    for s in sums.values():
        start, end = bounds(s.key.host, s.window)
        nat = tuple(sorted(s.nat)[:NAT_PORT_LIMIT]) or None
        records.append(
            FlowRecord(s.key, start, end, s.bytes_in, s.bytes_out, s.packets_in, s.packets_out, s.num_flows, s.started, s.completed, nat)
        )
    records.sort(key=_record_order)
    return records


def _record_order(r: FlowRecord) -> tuple:
    k = r.key
    return (r.start_time, k.host, k.reporter, k.source.namespace or "", k.source.name_aggr, k.source.name or "",
            k.dest.namespace or "", k.dest.name_aggr, k.dest.name or "", k.proto, k.dest_port or 0)  # fmt: skip
