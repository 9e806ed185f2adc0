"""The policy model: frozen values for every Calico and Kubernetes object the engine evaluates.

YAML never reaches this module's users: `flowstage.policy.loader` builds these values, the engine reads them.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowstage.selector import Selector

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FrozenMap(Mapping[str, str]):
    """An immutable, hashable str→str mapping (labels), so model values can be compared and cached."""

    __slots__ = ("_items", "_hash", "_dict")

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        d = dict(items or {})
        self._dict = d
        self._items = tuple(sorted(d.items()))
        self._hash = hash(self._items)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._dict == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._dict!r})"


EMPTY_MAP = FrozenMap()


class Action(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    PASS = "Pass"
    LOG = "Log"

    @property
    def flow_log(self) -> str:
        """Spelling in flow-log policy strings: allow, deny, pass, log."""
        return self.value.lower()


class Direction(enum.Enum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class StagedAction(enum.Enum):
    SET = "Set"
    DELETE = "Delete"
    LEARN = "Learn"
    IGNORE = "Ignore"


class PolicyKind(enum.Enum):
    """Every policy kind the engine evaluates, named as Calico's v3.32+ policy identity names them."""

    GLOBAL_NETWORK_POLICY = "GlobalNetworkPolicy"
    NETWORK_POLICY = "NetworkPolicy"  # projectcalico.org/v3 NetworkPolicy
    KUBERNETES_NETWORK_POLICY = "KubernetesNetworkPolicy"  # networking.k8s.io/v1 NetworkPolicy, translated
    STAGED_GLOBAL_NETWORK_POLICY = "StagedGlobalNetworkPolicy"
    STAGED_NETWORK_POLICY = "StagedNetworkPolicy"
    STAGED_KUBERNETES_NETWORK_POLICY = "StagedKubernetesNetworkPolicy"

    @property
    def short(self) -> str:
        """Short kind used in flow-log strings (`gnp:`, `np:`, `knp:`, `sgnp:`, `snp:`, `sknp:`)."""
        return _SHORT[self]

    @property
    def staged(self) -> bool:
        return self in _ENFORCED_OF

    @property
    def enforced(self) -> PolicyKind:
        """The kind this kind becomes on promotion (itself when not staged)."""
        return _ENFORCED_OF.get(self, self)

    @property
    def is_global(self) -> bool:
        return self in (PolicyKind.GLOBAL_NETWORK_POLICY, PolicyKind.STAGED_GLOBAL_NETWORK_POLICY)


_SHORT = {
    PolicyKind.GLOBAL_NETWORK_POLICY: "gnp",
    PolicyKind.NETWORK_POLICY: "np",
    PolicyKind.KUBERNETES_NETWORK_POLICY: "knp",
    PolicyKind.STAGED_GLOBAL_NETWORK_POLICY: "sgnp",
    PolicyKind.STAGED_NETWORK_POLICY: "snp",
    PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY: "sknp",
}
_ENFORCED_OF = {
    PolicyKind.STAGED_GLOBAL_NETWORK_POLICY: PolicyKind.GLOBAL_NETWORK_POLICY,
    PolicyKind.STAGED_NETWORK_POLICY: PolicyKind.NETWORK_POLICY,
    PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY: PolicyKind.KUBERNETES_NETWORK_POLICY,
}

# Protocol numbers Calico knows by name (`checker/match.go` stringToProto); names are lower-case internally.
PROTOCOL_NUMBERS: Mapping[str, int] = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132, "udplite": 136}
PORT_PROTOCOLS = frozenset({6, 17, 132})  # only TCP, UDP and SCTP carry ports


@dataclass(frozen=True)
class SourceRef:
    """Where an object was written: file, 1-based document number, and `kind namespace/name`."""

    file: str
    document: int
    object: str = ""

    def __str__(self) -> str:
        where = f"{self.file} (document {self.document})"
        return f"{where} {self.object}" if self.object else where


@dataclass(frozen=True)
class PortRange:
    first: int
    last: int

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last


@dataclass(frozen=True)
class Ports:
    """A `ports` / `notPorts` list: numeric ports and ranges, plus named ports resolved against endpoints."""

    ranges: tuple[PortRange, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ICMPMatch:
    type: int
    code: int | None = None


@dataclass(frozen=True)
class ServiceAccountMatch:
    names: tuple[str, ...] = ()
    selector: Selector | None = None


@dataclass(frozen=True)
class ServiceMatch:
    name: str
    namespace: str


@dataclass(frozen=True)
class HTTPMatch:
    """Application-layer match; felix's L3/L4 dataplane ignores it (calico-semantics §4.4)."""

    methods: tuple[str, ...] = ()
    paths: tuple[tuple[str, str], ...] = ()  # ("exact" | "prefix", path)


@dataclass(frozen=True)
class EntityRule:
    """A rule's `source` or `destination`. Fields present are ANDed; items within a list are ORed."""

    nets: tuple[IPNetwork, ...] = ()
    not_nets: tuple[IPNetwork, ...] = ()
    selector: Selector | None = None  # as written
    not_selector: Selector | None = None  # as written; never namespace-scoped (§2.5 step 6)
    namespace_selector: Selector | None = None  # as written, may be `global()`
    service_accounts: ServiceAccountMatch | None = None
    services: ServiceMatch | None = None
    ports: Ports | None = None  # None: no port constraint
    not_ports: Ports | None = None
    # The positive selector after Calico's rewriting (§2.5): namespace scoping, pcns./pcsa. prefixes,
    # all()/global() replacement. None means "no selector constraint" (any IP, known to Calico or not).
    effective_selector: Selector | None = None

    @property
    def is_empty(self) -> bool:
        return self == EMPTY_ENTITY_RULE


EMPTY_ENTITY_RULE = EntityRule()


@dataclass(frozen=True)
class Rule:
    action: Action
    index: int  # 0-based position in its policy's ingress or egress list, Log rules included
    protocol: int | None = None
    not_protocol: int | None = None
    ip_version: int | None = None  # as written; see effective_ip_version
    icmp: ICMPMatch | None = None
    not_icmp: ICMPMatch | None = None
    source: EntityRule = EMPTY_ENTITY_RULE
    destination: EntityRule = EMPTY_ENTITY_RULE
    http: HTTPMatch | None = None
    path: str = ""  # field path where it was written, e.g. `spec.ingress[1]`

    @property
    def effective_ip_version(self) -> int | None:
        """ipVersion, or the family ICMP / ICMPv6 implies (rule_convert.go ipVersionToProtoIPVersion)."""
        if self.ip_version is not None:
            return self.ip_version
        if self.protocol == 1:
            return 4
        if self.protocol == 58:
            return 6
        return None


@dataclass(frozen=True)
class Policy:
    """One policy after Calico's conversion: Kubernetes NetworkPolicies arrive here already translated (§6)."""

    kind: PolicyKind
    name: str  # resource name as written
    namespace: str | None  # None for global kinds
    tier: str
    order: float | None  # None sorts last (+inf)
    selector: Selector  # spec.selector as written (translated podSelector for Kubernetes kinds)
    applies_to: Selector  # effective policy selector after §2.4 rewriting: which endpoints it governs
    types: frozenset[Direction]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    namespace_selector: Selector | None = None  # GlobalNetworkPolicy only, as written
    service_account_selector: Selector | None = None  # as written
    staged_action: StagedAction | None = None  # staged kinds only (default Set)
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False
    origin: SourceRef | None = field(default=None, compare=False)

    @property
    def staged(self) -> bool:
        return self.kind.staged

    @property
    def identity(self) -> tuple[PolicyKind, str | None, str]:
        """(enforced kind, namespace, name): a staged object and the enforced object it promotes to share it."""
        return (self.kind.enforced, self.namespace, self.name)

    @property
    def display_name(self) -> str:
        """As flowstage names policies in reports: `name` for global kinds, `namespace/name` otherwise."""
        return self.name if self.namespace is None else f"{self.namespace}/{self.name}"

    @property
    def flow_log_id(self) -> str:
        """Calico 3.32+ flow-log id, e.g. `gnp:name`, `knp:ns/name`."""
        return f"{self.kind.short}:{self.display_name}"

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress

    @property
    def sort_key(self) -> tuple[float, str]:
        """Order within a tier (felix policy_sorter.go, v3.32+): order (missing = +inf), then name/namespace/Kind."""
        order = math.inf if self.order is None else self.order
        return (order, f"{self.name}/{self.namespace or ''}/{self.kind.value}")


@dataclass(frozen=True)
class Tier:
    name: str
    order: float | None  # None sorts after every tier with an order
    default_action: Action = Action.DENY  # Deny or Pass
    defined: bool = True  # False: referenced by a policy but no Tier object given (sorted after all valid tiers)
    origin: SourceRef | None = field(default=None, compare=False)

    @property
    def sort_key(self) -> tuple[int, int, float, str]:
        """felix TierLess: defined first, then with an order first, then order, then name."""
        return (
            0 if self.defined else 1,
            0 if self.order is not None else 1,
            self.order if self.order is not None else 0.0,
            self.name,
        )


DEFAULT_TIER_ORDER = 1_000_000.0  # Calico's built-in `default` tier (lcg/clientv3/client.go)


@dataclass(frozen=True)
class Profile:
    """A Calico Profile: rules without a selector, applied to endpoints that list it, plus labels to inherit."""

    name: str
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    labels_to_apply: FrozenMap = EMPTY_MAP
    origin: SourceRef | None = field(default=None, compare=False)

    def rules(self, direction: Direction) -> tuple[Rule, ...]:
        return self.ingress if direction is Direction.INGRESS else self.egress


@dataclass(frozen=True)
class NamedPort:
    name: str
    protocol: int
    port: int


@dataclass(frozen=True)
class NetworkSet:
    """A NetworkSet (namespace set) or GlobalNetworkSet (namespace None): labelled CIDRs for rule selectors."""

    name: str
    namespace: str | None
    labels: FrozenMap = EMPTY_MAP
    nets: tuple[IPNetwork, ...] = ()
    origin: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class HostEndpoint:
    name: str
    node: str | None = None
    interface_name: str | None = None
    expected_ips: tuple[str, ...] = ()
    labels: FrozenMap = EMPTY_MAP
    profiles: tuple[str, ...] = ()
    ports: tuple[NamedPort, ...] = ()
    origin: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: FrozenMap = EMPTY_MAP
    origin: SourceRef | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: FrozenMap = EMPTY_MAP
    ips: tuple[str, ...] = ()
    service_account: str | None = None
    ports: tuple[NamedPort, ...] = ()  # named container ports (init containers included)
    generate_name: str | None = None  # metadata.generateName: links a pod to aggregated names `prefix-*`
    node: str | None = None
    origin: SourceRef | None = field(default=None, compare=False)
    host_network: bool = False  # spec.hostNetwork: not a Calico workload endpoint; its traffic is the host's


@dataclass(frozen=True)
class Inventory:
    """Cluster facts that are not policy: they sharpen verdicts. None means "not supplied" (unknown), not empty."""

    namespaces: Mapping[str, Namespace] | None = None
    pods: tuple[Pod, ...] | None = None
    network_sets: tuple[NetworkSet, ...] = ()
    host_endpoints: tuple[HostEndpoint, ...] = ()
    profiles: Mapping[str, Profile] = field(default_factory=dict)


class SetName(enum.Enum):
    CURRENT = "current"  # enforced now; staged objects ignored
    PROPOSED = "proposed"  # after promoting every staged Set object (Delete removes; Learn/Ignore not promoted)
    PENDING = "pending"  # Calico's pending semantics: staged evaluated alongside enforced (§5.6)


@dataclass(frozen=True)
class PolicySet:
    """What one evaluation sees: tiers in evaluation order and, per tier, its policies in evaluation order."""

    name: SetName
    tiers: tuple[Tier, ...]
    policies: Mapping[str, tuple[Policy, ...]]  # tier name -> policies sorted by Policy.sort_key
    inventory: Inventory = field(default_factory=Inventory)

    def tier_policies(self, tier: str) -> tuple[Policy, ...]:
        return self.policies.get(tier, ())

    def all_policies(self) -> Iterator[Policy]:
        for tier in self.tiers:
            yield from self.tier_policies(tier.name)
