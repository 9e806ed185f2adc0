"""Flow-log records as felix produces them, before any file format: endpoints, policy hits, keys and counters.

A `FlowKey` is what a record shares with the same flow in other windows; a `FlowRecord` adds a window and counters.
"""

from __future__ import annotations

from dataclasses import dataclass

PROFILE_TIER = "__PROFILE__"

# Short kind (flow-log grammar of Calico 3.32+) → Goldmane PolicyKind enum number and name (formats doc §2.3).
GOLDMANE_KINDS: dict[str, tuple[int, str]] = {
    "np": (1, "CalicoNetworkPolicy"),
    "gnp": (2, "GlobalNetworkPolicy"),
    "snp": (3, "StagedNetworkPolicy"),
    "sgnp": (4, "StagedGlobalNetworkPolicy"),
    "sknp": (5, "StagedKubernetesNetworkPolicy"),
    "knp": (6, "NetworkPolicy"),
    "pro": (9, "Profile"),
    "kcnp": (11, "ClusterNetworkPolicy"),
}
END_OF_TIER_KIND = (10, "EndOfTier")
GOLDMANE_ACTIONS = {"allow": (1, "Allow"), "deny": (2, "Deny"), "pass": (3, "Pass")}
GOLDMANE_REPORTERS = {"src": (1, "Src"), "dst": (2, "Dst")}
GOLDMANE_ENDPOINT_TYPES = {"wep": 1, "hep": 2, "ns": 3, "net": 4}
STAGED_KINDS = frozenset({"sgnp", "snp", "sknp"})
PROTOCOL_NUMBERS = {"icmp": 1, "ipip": 4, "tcp": 6, "udp": 17, "esp": 50, "icmp6": 58, "sctp": 132}


@dataclass(frozen=True)
class PolicyHit:
    """One step of a policy trace: the tier, the policy (or profile) and what it did."""

    tier: str  # `__PROFILE__` for profiles
    kind: str  # short kind: gnp np knp sgnp snp sknp pro
    name: str  # resource name as stored (profile: `kns.<ns>`)
    action: str  # allow / deny / pass
    rule_index: int  # 0-based rule; -1 = end of tier (the tier's default action; `name` is the trigger)
    namespace: str | None = None

    @property
    def staged(self) -> bool:
        return self.kind in STAGED_KINDS

    @property
    def end_of_tier(self) -> bool:
        return self.rule_index == -1

    def flow_log(self, index: int) -> str:
        """The 3.32+ flow-log string `index|tier|kind:[ns/]name|action|rule`."""
        scoped = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{index}|{self.tier}|{self.kind}:{scoped}|{self.action}|{self.rule_index}"

    def goldmane(self, index: int) -> dict:
        """The Goldmane PolicyHit as Go's encoding/json writes it: enum numbers, zero values omitted."""
        action = GOLDMANE_ACTIONS[self.action][0]
        if self.end_of_tier:
            trigger = _omit_empty({"kind": GOLDMANE_KINDS[self.kind][0], "namespace": self.namespace, "name": self.name, "tier": self.tier})
            return _omit_empty(
                {"kind": END_OF_TIER_KIND[0], "tier": self.tier, "action": action, "policy_index": index, "rule_index": -1, "trigger": trigger}
            )
        tier = "" if self.kind == "pro" else self.tier
        return _omit_empty(
            {
                "kind": GOLDMANE_KINDS[self.kind][0],
                "namespace": self.namespace,
                "name": self.name,
                "tier": tier,
                "action": action,
                "policy_index": index,
                "rule_index": self.rule_index,
            }
        )

    def whisker(self, index: int) -> dict:
        """The whisker-backend PolicyHit: enum names, every key present."""
        action = GOLDMANE_ACTIONS[self.action][1]
        if self.end_of_tier:
            trigger = _whisker_hit(GOLDMANE_KINDS[self.kind][1], self.name, self.namespace, self.tier, "ActionUnspecified", 0, 0, None)
            return _whisker_hit(END_OF_TIER_KIND[1], "", None, self.tier, action, index, -1, trigger)
        tier = "" if self.kind == "pro" else self.tier
        return _whisker_hit(GOLDMANE_KINDS[self.kind][1], self.name, self.namespace, tier, action, index, self.rule_index, None)


def _whisker_hit(kind: str, name: str, namespace: str | None, tier: str, action: str, index: int, rule: int, trigger: dict | None) -> dict:
    return {
        "kind": kind,
        "name": name,
        "namespace": namespace or "",
        "tier": tier,
        "action": action,
        "policy_index": index,
        "rule_index": rule,
        "trigger": trigger,
    }


def _omit_empty(fields: dict) -> dict:
    return {k: v for k, v in fields.items() if v not in (None, "", 0)}


def profile_allow(namespace: str) -> PolicyHit:
    """The hit of a pod's namespace profile `kns.<ns>`, which allows everything no policy decided."""
    return PolicyHit(PROFILE_TIER, "pro", f"kns.{namespace}", "allow", 0)


@dataclass(frozen=True)
class LoggedEndpoint:
    """One end of a flow as felix logs it (what is left of it at the record's aggregation level)."""

    type: str  # wep (pod), hep (host endpoint), ns (network set), net (anything else)
    name_aggr: str  # pod prefix `frontend-7d9c6b5f4-*`, pod name for StatefulSets, node name, set name, pub / pvt
    namespace: str | None = None  # None: cluster-scoped or not namespaced (logged as `-`)
    labels: tuple[str, ...] | None = ()  # `key=value`, sorted; None when labels are not logged
    name: str | None = None  # exact name; only below aggregation level 2
    ip: str | None = None  # only below aggregation level 2


@dataclass(frozen=True)
class ServiceRef:
    """The Kubernetes Service a client addressed (pre-DNAT)."""

    namespace: str
    name: str
    port_name: str | None  # None when the service port is unnamed
    port: int


@dataclass(frozen=True)
class FlowKey:
    """Everything a flow-log record shares with the same flow in other windows."""

    reporter: str  # src / dst
    action: str  # allow / deny, the enforced verdict
    source: LoggedEndpoint
    dest: LoggedEndpoint
    proto: str  # tcp udp icmp … or the number as text
    dest_port: int | None  # post-DNAT; None at aggregation level 3 and for ICMP
    service: ServiceRef | None
    enforced: tuple[PolicyHit, ...]
    pending: tuple[PolicyHit, ...]
    host: str  # node whose felix wrote the record
    dest_domains: tuple[str, ...] | None = None
    all_policies: tuple[PolicyHit, ...] | None = None  # legacy mixed trace; None: not written
    aggregated_service_port: bool = False  # aggregation level 3: service port name logged as `-`

    @property
    def proto_num(self) -> int:
        return PROTOCOL_NUMBERS.get(self.proto) or int(self.proto)


@dataclass(slots=True)
class FlowRecord:
    """One flow-log record: a key in one aggregation window, with that window's counters."""

    key: FlowKey
    start_time: int  # Unix seconds
    end_time: int
    bytes_in: int  # received by the reporting endpoint
    bytes_out: int  # sent by the reporting endpoint
    packets_in: int
    packets_out: int
    num_flows: int
    num_flows_started: int
    num_flows_completed: int
    nat_outgoing_ports: tuple[int, ...] | None = None
    source_port: int | None = None  # only at aggregation level 0
