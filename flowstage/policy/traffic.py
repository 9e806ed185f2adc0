"""What the engine is asked and what it answers: a flow's endpoints (as far as the log knows them) and a verdict.

Unknown facts are None, never guessed: the engine turns them into `unknown` verdicts only when they matter.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from flowstage.policy.model import Direction, FrozenMap


class EndpointType(enum.Enum):
    WEP = "wep"  # workload endpoint (pod)
    HEP = "hep"  # host endpoint
    NS = "ns"  # NetworkSet / GlobalNetworkSet
    NET = "net"  # anything Calico does not own (pub / pvt)


_PRIVATE_V4 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow. None = not in the log (aggregated away, not collected)."""

    type: EndpointType | None
    namespace: str | None = None
    name: str | None = None  # exact name (pod, host endpoint, network set)
    name_aggr: str | None = None  # aggregated identity: `frontend-7d9c-*`, node name, `pub` / `pvt`
    labels: FrozenMap | None = None  # labels as logged; None = labels not logged
    ip: str | None = None
    port: int | None = None

    @property
    def private(self) -> bool | None:
        """Whether the address is RFC 1918 private: from the IP when logged, else from `pvt` / `pub`."""
        if self.ip is not None:
            addr = ipaddress.ip_address(self.ip)
            return addr.version == 4 and any(addr in net for net in _PRIVATE_V4)
        if self.name_aggr == "pvt":
            return True
        if self.name_aggr == "pub":
            return False
        return None


@dataclass(frozen=True)
class Traffic:
    """A connection in its initiating direction (replies are accepted by conntrack before any policy)."""

    source: Endpoint
    destination: Endpoint
    protocol: int | None  # IP protocol number; None if unknown
    icmp_type: int | None = None
    icmp_code: int | None = None
    ip_version: int | None = None  # None: derive from the IPs, else unknown

    @property
    def family(self) -> int | None:
        if self.ip_version is not None:
            return self.ip_version
        for ep in (self.source, self.destination):
            if ep.ip is not None:
                return ipaddress.ip_address(ep.ip).version
        return None


class Reason(enum.Enum):
    """Why a verdict is `unknown`: the fact the log lacks, and the input that would supply it."""

    SOURCE_IP_UNKNOWN = "source_ip_unknown"  # a rule matches on source nets; the log aggregated the IP away
    DEST_IP_UNKNOWN = "dest_ip_unknown"
    SOURCE_PORT_UNKNOWN = "source_port_unknown"
    DEST_PORT_UNKNOWN = "dest_port_unknown"
    NAMED_PORT_UNKNOWN = "named_port_unknown"  # named port and no Pod inventory to resolve it
    NAMESPACE_LABELS_UNKNOWN = "namespace_labels_unknown"  # namespaceSelector and no Namespace inventory
    SERVICE_ACCOUNT_UNKNOWN = "service_account_unknown"  # serviceAccounts match and no Pod inventory
    LABELS_UNKNOWN = "labels_unknown"  # the log carries no labels for an endpoint a selector must match
    IP_VERSION_UNKNOWN = "ip_version_unknown"  # a rule depends on the IP family and no IP is logged
    ICMP_TYPE_UNKNOWN = "icmp_type_unknown"  # ICMP type/code match; flow logs do not carry them
    SERVICE_ENDPOINTS_UNKNOWN = "service_endpoints_unknown"  # `services` match needs EndpointSlices
    FORWARDED_NOT_MODELLED = "forwarded_not_modelled"  # reporter fwd: host-endpoint forward policy not replayed
    NOT_A_POLICY_ENDPOINT = "not_a_policy_endpoint"  # the reporting side is not a wep/hep (or its type is unknown)
    PROTOCOL_UNKNOWN = "protocol_unknown"  # a rule matches on the protocol and the row has none
    HOST_ENDPOINT_UNKNOWN = "host_endpoint_unknown"  # a host endpoint's profiles decide; it is not in the inventory
    PROFILE_UNKNOWN = "profile_unknown"  # an endpoint's profile decides; the Profile object was not supplied

    @property
    def remedy(self) -> str:
        return _REMEDY[self]


_REMEDY = {
    Reason.SOURCE_IP_UNKNOWN: "log with less aggregation (flowLogsFileAggregationKind 0 or 1) so source IPs are kept",
    Reason.DEST_IP_UNKNOWN: "log with less aggregation (flowLogsFileAggregationKind 0 or 1) so destination IPs are kept",
    Reason.SOURCE_PORT_UNKNOWN: "log with aggregation level 0 so source ports are kept",
    Reason.DEST_PORT_UNKNOWN: "log with aggregation below level 3 so destination ports are kept",
    Reason.NAMED_PORT_UNKNOWN: "supply a Pod list (--pods, `kubectl get pods -A -o yaml`) to resolve named ports",
    Reason.NAMESPACE_LABELS_UNKNOWN: "supply a Namespace list (--namespaces, `kubectl get ns -o yaml`)",
    Reason.SERVICE_ACCOUNT_UNKNOWN: "supply a Pod list (--pods) so service accounts are known",
    Reason.LABELS_UNKNOWN: "enable flowLogsFileIncludeLabels so endpoint labels are logged",
    Reason.IP_VERSION_UNKNOWN: "log with less aggregation so IPs (and their family) are kept",
    Reason.ICMP_TYPE_UNKNOWN: "flow logs never carry ICMP type/code; such rules can only be judged by hand",
    Reason.SERVICE_ENDPOINTS_UNKNOWN: "`services` rules need the Service's EndpointSlices, which flowstage does not load",
    Reason.FORWARDED_NOT_MODELLED: "forwarded (fwd) rows are judged by host-endpoint applyOnForward policy, not replayed",
    Reason.NOT_A_POLICY_ENDPOINT: "only pods (wep) and host endpoints (hep) have policy; check the row's endpoint type",
    Reason.PROTOCOL_UNKNOWN: "the row carries no protocol; check the ingested proto / proto_num columns",
    Reason.HOST_ENDPOINT_UNKNOWN: "supply the HostEndpoint objects (`calicoctl get hostendpoints -o yaml`) with the policies",
    Reason.PROFILE_UNKNOWN: "supply the Profile objects the endpoint lists (`calicoctl get profiles -o yaml`)",
}


class Outcome(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    UNKNOWN = "unknown"


PROFILE_TIER = "__PROFILE__"


@dataclass(frozen=True)
class TraceStep:
    """One step of an evaluation, for `flowstage explain`: a tier entered, a policy tried, a rule tried."""

    tier: str
    policy: str | None  # display name (`name` or `namespace/name`), profile name, or None
    rule: int | None  # rule index; -1 end of tier
    outcome: str  # matched / no_match / unknown / applied / skipped / end_of_tier / profile
    detail: str  # why, in plain words: "source selector app == 'web' does not match labels {...}"
    direction: Direction | None = None  # set on whole-connection traces, which hold both directions


@dataclass(frozen=True)
class Verdict:
    """The decision for one direction of one flow, and what decided it."""

    outcome: Outcome
    direction: Direction | None
    tier: str | None = None  # deciding tier; `__PROFILE__` for profiles
    policy: str | None = None  # deciding policy as written (`name` / `namespace/name`), or profile (`kns.prod`)
    policy_kind: str | None = None  # short kind of the deciding policy (gnp, np, knp, sgnp, snp, sknp, pro)
    rule: int | None = None  # deciding rule index; -1 end of tier (policy names the trigger)
    staged: bool = False  # the deciding policy came from a staged object
    reason: Reason | None = None  # set iff outcome is UNKNOWN
    trace: tuple[TraceStep, ...] = field(default=(), compare=False)
