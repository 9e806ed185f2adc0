"""Calico v3 and Kubernetes objects (already validated) → model values, the way Calico's update processors do it.

Owns selector rewriting (calico-semantics §2.4, §2.5), defaulting (§3) and NetworkPolicy translation (§6).
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flowstage.policy.model import (
    EMPTY_MAP,
    PROTOCOL_NUMBERS,
    Action,
    Direction,
    EntityRule,
    FrozenMap,
    HostEndpoint,
    HTTPMatch,
    ICMPMatch,
    IPNetwork,
    NamedPort,
    Namespace,
    NetworkSet,
    Pod,
    Policy,
    PolicyKind,
    PortRange,
    Ports,
    Profile,
    Rule,
    ServiceAccountMatch,
    ServiceMatch,
    SourceRef,
    StagedAction,
    Tier,
)
from flowstage.selector import (
    ALL,
    Selector,
    and_selectors,
    has_label,
    label_equals,
    not_selector,
    parse_selector,
)

NAMESPACE_LABEL = "projectcalico.org/namespace"
ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"
NAME_LABEL = "projectcalico.org/name"  # on kns./ksa. profiles, behind the pcns./pcsa. prefix
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every Namespace by the API server
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."
KUBERNETES_POLICY_ORDER = 1000.0
DEFAULT_TIER = "default"
MAX_RULES = 1024


class ObjectKind(enum.Enum):
    """Every object kind flowstage models, keyed by what it is rather than by how its YAML spells it."""

    GLOBAL_NETWORK_POLICY = "GlobalNetworkPolicy"
    NETWORK_POLICY = "NetworkPolicy"
    KUBERNETES_NETWORK_POLICY = "KubernetesNetworkPolicy"
    STAGED_GLOBAL_NETWORK_POLICY = "StagedGlobalNetworkPolicy"
    STAGED_NETWORK_POLICY = "StagedNetworkPolicy"
    STAGED_KUBERNETES_NETWORK_POLICY = "StagedKubernetesNetworkPolicy"
    TIER = "Tier"
    GLOBAL_NETWORK_SET = "GlobalNetworkSet"
    NETWORK_SET = "NetworkSet"
    PROFILE = "Profile"
    HOST_ENDPOINT = "HostEndpoint"
    WORKLOAD_ENDPOINT = "WorkloadEndpoint"
    NAMESPACE = "Namespace"
    POD = "Pod"

    @property
    def policy_kind(self) -> PolicyKind | None:
        return _POLICY_KINDS.get(self)

    @property
    def namespaced(self) -> bool:
        return self in _NAMESPACED

    @property
    def yaml_kind(self) -> str:
        """The `kind:` as written in YAML (a Kubernetes NetworkPolicy is `NetworkPolicy`)."""
        return "NetworkPolicy" if self is ObjectKind.KUBERNETES_NETWORK_POLICY else self.value


_POLICY_KINDS = {
    ObjectKind.GLOBAL_NETWORK_POLICY: PolicyKind.GLOBAL_NETWORK_POLICY,
    ObjectKind.NETWORK_POLICY: PolicyKind.NETWORK_POLICY,
    ObjectKind.KUBERNETES_NETWORK_POLICY: PolicyKind.KUBERNETES_NETWORK_POLICY,
    ObjectKind.STAGED_GLOBAL_NETWORK_POLICY: PolicyKind.STAGED_GLOBAL_NETWORK_POLICY,
    ObjectKind.STAGED_NETWORK_POLICY: PolicyKind.STAGED_NETWORK_POLICY,
    ObjectKind.STAGED_KUBERNETES_NETWORK_POLICY: PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY,
}
_NAMESPACED = frozenset(
    {
        ObjectKind.NETWORK_POLICY,
        ObjectKind.KUBERNETES_NETWORK_POLICY,
        ObjectKind.STAGED_NETWORK_POLICY,
        ObjectKind.STAGED_KUBERNETES_NETWORK_POLICY,
        ObjectKind.NETWORK_SET,
        ObjectKind.WORKLOAD_ENDPOINT,
        ObjectKind.POD,
    }
)

# ---------------------------------------------------------------------------------------------------------
# Field parsers: each turns one YAML value into a model value or raises ValueError in plain words.
# validate.py calls them to check; the converters below call them to build.
# ---------------------------------------------------------------------------------------------------------

# Calico's protocol names are case-sensitive (validator.go protocolRegex).
PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")
_PROTOCOL_BY_NAME = {name: PROTOCOL_NUMBERS[name.lower()] for name in PROTOCOL_NAMES}
_PORT_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_DIGITS = re.compile(r"^[0-9]+$")


def parse_protocol(value: Any) -> int:
    """`TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, `UDPLite`, or a number 1-255 (also as a string of digits)."""
    if isinstance(value, bool):
        raise ValueError(f"protocol must be a name or a number, not {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.match(value):
        number = int(value)
    elif isinstance(value, str):
        if value in _PROTOCOL_BY_NAME:
            return _PROTOCOL_BY_NAME[value]
        proper = next((n for n in PROTOCOL_NAMES if n.lower() == value.lower()), None)
        hint = f" (protocol names are case-sensitive: write '{proper}')" if proper else ""
        raise ValueError(
            f"unknown protocol '{value}'{hint}; use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255"
        )
    else:
        raise ValueError(f"protocol must be a name or a number, not {type(value).__name__}")
    if not 1 <= number <= 255:
        raise ValueError(f"protocol number {number} is invalid: it must be between 1 and 255")
    return number


def parse_port(value: Any) -> PortRange | str:
    """One `ports` entry: a number, a "min:max" range, or a named port (numorstring/port.go)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"a port must be a number, a 'min:max' range or a port name, not {value!r}")
    if isinstance(value, int):
        return PortRange(_port_number(value), _port_number(value))
    if _DIGITS.match(value):
        number = _port_number(int(value))
        return PortRange(number, number)
    if ":" in value:
        low_text, _, high_text = value.partition(":")
        if not (_DIGITS.match(low_text) and _DIGITS.match(high_text)):
            raise ValueError(f"port range '{value}' is invalid: write it as 'min:max', e.g. '8000:8080'")
        low, high = _port_number(int(low_text)), _port_number(int(high_text))
        if low > high:
            raise ValueError(f"port range '{value}' is reversed: write '{high}:{low}'")
        return PortRange(low, high)
    if not _PORT_NAME.match(value):
        raise ValueError(
            f"'{value}' is not a valid port name: use 1-128 letters, digits, '_', '.' or '-', "
            "a number, or a 'min:max' range"
        )
    return value


def _port_number(number: int) -> int:
    if not 1 <= number <= 65535:
        raise ValueError(f"port {number} is invalid: port numbers run from 1 to 65535")
    return number


def parse_ports(values: Iterable[Any]) -> Ports:
    ranges: list[PortRange] = []
    names: list[str] = []
    for value in values:
        parsed = parse_port(value)
        if isinstance(parsed, str):
            names.append(parsed)
        else:
            ranges.append(parsed)
    return Ports(tuple(ranges), tuple(names))


def parse_cidr(value: Any) -> IPNetwork:
    """A CIDR or a bare IP (a /32 or /128), masked to its network as Calico stores it (ParseCIDROrIP)."""
    if not isinstance(value, str):
        raise ValueError(f"expected a CIDR such as '10.0.0.0/8' or an IP address, not {value!r}")
    address, slash, prefix = value.partition("/")
    if slash and not _DIGITS.match(prefix):
        raise ValueError(f"'{value}' is not a valid CIDR: the prefix length after '/' must be a number")
    try:
        ipaddress.ip_address(address)
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"'{value}' is not a valid CIDR or IP address") from None


def parse_ip(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected an IP address, not {value!r}")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"'{value}' is not a valid IP address") from None


def optional_selector(text: str | None) -> Selector | None:
    """None for an absent or blank selector field, else the parsed selector."""
    if text is None or not text.strip(" \t"):
        return None
    return parse_selector(text)


# ---------------------------------------------------------------------------------------------------------
# Selector rewriting (up/networkpolicyprocessor.go, up/globalnetworkpolicyprocessor.go, up/rules.go)
# ---------------------------------------------------------------------------------------------------------


def namespace_term(namespace: str) -> Selector:
    return label_equals(NAMESPACE_LABEL, namespace)


def _and(first: Selector | None, second: Selector) -> Selector:
    return second if first is None else and_selectors(first, second)


def policy_applies_to(
    namespace: str | None,
    policy_selector: str | None,
    namespace_selector: str | None = None,
    service_account_selector: str | None = None,
) -> Selector:
    """Which endpoints a policy governs, after Calico's policy-level rewriting (§2.4)."""
    result = optional_selector(policy_selector)
    if namespace is not None:
        result = _and(result, namespace_term(namespace))
        sa = optional_selector(service_account_selector)
        if sa is not None:
            result = _and(result, sa.prefixed(SERVICE_ACCOUNT_PREFIX))
        return result if result is not None else ALL
    ns_sel = optional_selector(namespace_selector)
    if ns_sel is not None:
        result = _and(result, ns_sel.prefixed(NAMESPACE_PREFIX)).replace_all(has_label(NAMESPACE_LABEL))
    sa = optional_selector(service_account_selector)
    if sa is not None:
        result = _and(result, sa.prefixed(SERVICE_ACCOUNT_PREFIX)).replace_all(
            has_label(SERVICE_ACCOUNT_LABEL)
        )
    return result if result is not None else ALL


@dataclasses.dataclass(frozen=True)
class EntityFields:
    """The selector-bearing fields of one EntityRule, as written (strings), before rewriting."""

    selector: str | None = None
    not_selector: str | None = None
    namespace_selector: str | None = None
    service_account_names: tuple[str, ...] = ()
    service_account_selector: str | None = None
    has_service_accounts: bool = False


def entity_effective_selector(fields: EntityFields, namespace: str | None) -> Selector | None:
    """The positive selector felix matches a rule's peer against (§2.5 steps 1-5); None: no constraint."""
    sa_sel: Selector | None = None
    if fields.has_service_accounts:
        prefixed = optional_selector(fields.service_account_selector)
        if prefixed is not None:
            sa_sel = prefixed.prefixed(SERVICE_ACCOUNT_PREFIX)
        if fields.service_account_names:
            names = parse_selector(_in_set(SERVICE_ACCOUNT_LABEL, fields.service_account_names))
            sa_sel = _and(sa_sel, names)
    endpoint_sel = optional_selector(fields.selector)
    sel = sa_sel if endpoint_sel is None else _and(sa_sel, endpoint_sel)

    ns_written = optional_selector(fields.namespace_selector)
    ns_sel: Selector | None = None
    if ns_written is not None:
        ns_sel = (
            ns_written.prefixed(NAMESPACE_PREFIX)
            .replace_all(has_label(NAMESPACE_LABEL))
            .replace_global(not_selector(has_label(NAMESPACE_LABEL)))
        )
    elif namespace is not None:
        ns_sel = namespace_term(namespace)

    scoped = sel is not None or optional_selector(fields.not_selector) is not None or ns_written is not None
    if ns_sel is not None and scoped:
        sel = ns_sel if sel is None else and_selectors(ns_sel, sel)
    return sel


def _in_set(key: str, values: Iterable[str], operator: str = "in") -> str:
    return f"{key} {operator} {{ {', '.join(_quote(v) for v in values)} }}"


def _quote(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


# ---------------------------------------------------------------------------------------------------------
# Calico v3 policies, profiles and rules
# ---------------------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def parse_icmp(value: Mapping[str, Any] | None) -> ICMPMatch | None:
    if not value or value.get("type") is None:
        return None
    code = value.get("code")
    return ICMPMatch(int(value["type"]), None if code is None else int(code))


def parse_http(value: Mapping[str, Any] | None) -> HTTPMatch | None:
    if value is None:
        return None
    paths: list[tuple[str, str]] = []
    for entry in _list(value.get("paths")):
        for how in ("exact", "prefix"):
            if _map(entry).get(how):
                paths.append((how, entry[how]))
    return HTTPMatch(tuple(_list(value.get("methods"))), tuple(paths))


def entity_rule(raw: Mapping[str, Any] | None, namespace: str | None) -> EntityRule:
    """A Calico v3 EntityRule (`source` / `destination`) with its effective selector (§2.5)."""
    raw = _map(raw)
    accounts = raw.get("serviceAccounts")
    accounts_map = _map(accounts)
    fields = EntityFields(
        selector=_text(raw.get("selector")),
        not_selector=_text(raw.get("notSelector")),
        namespace_selector=_text(raw.get("namespaceSelector")),
        service_account_names=tuple(_list(accounts_map.get("names"))),
        service_account_selector=_text(accounts_map.get("selector")),
        has_service_accounts=accounts is not None,
    )
    service_accounts = None
    if accounts is not None:
        service_accounts = ServiceAccountMatch(
            fields.service_account_names, optional_selector(fields.service_account_selector)
        )
    services = None
    if raw.get("services") is not None:
        svc = _map(raw["services"])
        services = ServiceMatch(str(svc.get("name") or ""), str(svc.get("namespace") or namespace or ""))
    return EntityRule(
        nets=tuple(parse_cidr(n) for n in _list(raw.get("nets"))),
        not_nets=tuple(parse_cidr(n) for n in _list(raw.get("notNets"))),
        selector=optional_selector(fields.selector),
        not_selector=optional_selector(fields.not_selector),
        namespace_selector=optional_selector(fields.namespace_selector),
        service_accounts=service_accounts,
        services=services,
        ports=parse_ports(raw["ports"]) if raw.get("ports") else None,
        not_ports=parse_ports(raw["notPorts"]) if raw.get("notPorts") else None,
        effective_selector=entity_effective_selector(fields, namespace),
    )


def calico_rule(raw: Mapping[str, Any], index: int, namespace: str | None, path: str) -> Rule:
    protocol = raw.get("protocol")
    not_protocol = raw.get("notProtocol")
    return Rule(
        action=Action(raw["action"]),
        index=index,
        protocol=None if protocol is None else parse_protocol(protocol),
        not_protocol=None if not_protocol is None else parse_protocol(not_protocol),
        ip_version=raw.get("ipVersion"),
        icmp=parse_icmp(raw.get("icmp")),
        not_icmp=parse_icmp(raw.get("notICMP")),
        source=entity_rule(raw.get("source"), namespace),
        destination=entity_rule(raw.get("destination"), namespace),
        http=parse_http(raw.get("http")),
        path=path,
    )


def calico_rules(raw_rules: Any, namespace: str | None, path: str) -> tuple[Rule, ...]:
    return tuple(
        calico_rule(_map(raw), index, namespace, f"{path}[{index}]")
        for index, raw in enumerate(_list(raw_rules))
    )


def default_types(spec: Mapping[str, Any]) -> frozenset[Direction]:
    """Calico's API defaulting of `types` (api/pkg/defaults/networkpolicy.go, §3.3)."""
    written = _list(spec.get("types"))
    if written:
        return frozenset(Direction(t) for t in written)
    has_ingress = bool(_list(spec.get("ingress")))
    has_egress = bool(_list(spec.get("egress")))
    if has_egress and not has_ingress:
        return frozenset({Direction.EGRESS})
    if has_egress:
        return frozenset({Direction.INGRESS, Direction.EGRESS})
    return frozenset({Direction.INGRESS})


def parse_order(value: Any) -> float | None:
    return None if value is None else float(value)


def staged_action_of(spec: Mapping[str, Any]) -> StagedAction:
    return StagedAction(spec.get("stagedAction") or StagedAction.SET.value)


def calico_policy(
    kind: PolicyKind, doc: Mapping[str, Any], namespace: str | None, origin: SourceRef
) -> Policy:
    """A Calico v3 (Staged)NetworkPolicy or (Staged)GlobalNetworkPolicy; staged Delete objects carry no rules."""
    meta = _map(doc.get("metadata"))
    spec = _map(doc.get("spec"))
    staged_action = staged_action_of(spec) if kind.staged else None
    tier = _text(spec.get("tier")) or DEFAULT_TIER
    name = str(meta["name"])
    if staged_action is StagedAction.DELETE:
        return Policy(
            kind=kind,
            name=name,
            namespace=namespace,
            tier=tier,
            order=None,
            selector=ALL,
            applies_to=policy_applies_to(namespace, None),
            types=frozenset(),
            staged_action=staged_action,
            origin=origin,
        )
    ns_selector = _text(spec.get("namespaceSelector")) if kind.is_global else None
    sa_selector = _text(spec.get("serviceAccountSelector"))
    return Policy(
        kind=kind,
        name=name,
        namespace=namespace,
        tier=tier,
        order=parse_order(spec.get("order")),
        selector=optional_selector(_text(spec.get("selector"))) or ALL,
        applies_to=policy_applies_to(namespace, _text(spec.get("selector")), ns_selector, sa_selector),
        types=default_types(spec),
        ingress=calico_rules(spec.get("ingress"), namespace, "spec.ingress"),
        egress=calico_rules(spec.get("egress"), namespace, "spec.egress"),
        namespace_selector=optional_selector(ns_selector),
        service_account_selector=optional_selector(sa_selector),
        staged_action=staged_action,
        do_not_track=bool(spec.get("doNotTrack")),
        pre_dnat=bool(spec.get("preDNAT")),
        apply_on_forward=bool(spec.get("applyOnForward")),
        origin=origin,
    )


def tier(doc: Mapping[str, Any], origin: SourceRef) -> Tier:
    spec = _map(doc.get("spec"))
    # The v1 conversion maps anything but Pass to Deny (up/tierprocessor.go).
    action = Action.PASS if spec.get("defaultAction") == "Pass" else Action.DENY
    return Tier(str(_map(doc.get("metadata"))["name"]), parse_order(spec.get("order")), action, origin=origin)


def profile(doc: Mapping[str, Any], origin: SourceRef) -> Profile:
    spec = _map(doc.get("spec"))
    return Profile(
        name=str(_map(doc.get("metadata"))["name"]),
        ingress=calico_rules(spec.get("ingress"), None, "spec.ingress"),
        egress=calico_rules(spec.get("egress"), None, "spec.egress"),
        labels_to_apply=labels(spec.get("labelsToApply")),
        origin=origin,
    )


def labels(value: Any) -> FrozenMap:
    if not isinstance(value, Mapping) or not value:
        return EMPTY_MAP
    return FrozenMap({str(k): str(v) for k, v in value.items()})


def network_set(doc: Mapping[str, Any], namespace: str | None, origin: SourceRef) -> NetworkSet:
    meta = _map(doc.get("metadata"))
    return NetworkSet(
        name=str(meta["name"]),
        namespace=namespace,
        labels=labels(meta.get("labels")),
        nets=tuple(parse_cidr(n) for n in _list(_map(doc.get("spec")).get("nets"))),
        origin=origin,
    )


def named_port(raw: Mapping[str, Any], port_key: str = "port") -> NamedPort | None:
    name = raw.get("name")
    if not name or raw.get(port_key) is None:
        return None
    return NamedPort(str(name), parse_protocol(raw.get("protocol") or "TCP"), int(raw[port_key]))


def host_endpoint(doc: Mapping[str, Any], origin: SourceRef) -> HostEndpoint:
    meta = _map(doc.get("metadata"))
    spec = _map(doc.get("spec"))
    ports = (named_port(_map(p)) for p in _list(spec.get("ports")))
    return HostEndpoint(
        name=str(meta["name"]),
        node=_text(spec.get("node")),
        interface_name=_text(spec.get("interfaceName")),
        expected_ips=tuple(parse_ip(ip) for ip in _list(spec.get("expectedIPs"))),
        labels=labels(meta.get("labels")),
        profiles=tuple(str(p) for p in _list(spec.get("profiles"))),
        ports=tuple(p for p in ports if p is not None),
        origin=origin,
    )


def namespace(doc: Mapping[str, Any], origin: SourceRef) -> Namespace:
    meta = _map(doc.get("metadata"))
    name = str(meta["name"])
    # The API server labels every Namespace with its name (Kubernetes 1.21+); older dumps lack it.
    own = {NAMESPACE_NAME_LABEL: name, **dict(labels(meta.get("labels")))}
    return Namespace(name, FrozenMap(own), origin=origin)


def pod(doc: Mapping[str, Any], pod_namespace: str, origin: SourceRef) -> Pod:
    meta = _map(doc.get("metadata"))
    spec = _map(doc.get("spec"))
    status = _map(doc.get("status"))
    ips = [str(_map(entry).get("ip")) for entry in _list(status.get("podIPs")) if _map(entry).get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    ports: list[NamedPort] = []
    for container in [*_list(spec.get("containers")), *_list(spec.get("initContainers"))]:
        for raw in _list(_map(container).get("ports")):
            port = named_port(_map(raw), "containerPort")
            if port is not None:
                ports.append(port)
    # The API server's ServiceAccount admission gives every pod one: "default" unless named.
    account = _text(spec.get("serviceAccountName")) or _text(spec.get("serviceAccount")) or "default"
    return Pod(
        namespace=pod_namespace,
        name=str(meta["name"]),
        labels=labels(meta.get("labels")),
        ips=tuple(ips),
        service_account=account,
        ports=tuple(ports),
        generate_name=_text(meta.get("generateName")),
        node=_text(spec.get("nodeName")),
        host_network=bool(spec.get("hostNetwork")),
        origin=origin,
    )


_WEP_OWN_LABELS = (NAMESPACE_LABEL, ORCHESTRATOR_LABEL, SERVICE_ACCOUNT_LABEL)


def workload_endpoint(doc: Mapping[str, Any], wep_namespace: str, origin: SourceRef) -> Pod:
    """A WorkloadEndpoint (calicoctl output) read back as the Pod it stands for."""
    meta = _map(doc.get("metadata"))
    spec = _map(doc.get("spec"))
    own = labels(meta.get("labels"))
    account = own.get(SERVICE_ACCOUNT_LABEL)
    if account is None:
        prefix = f"ksa.{wep_namespace}."
        account = next(
            (p[len(prefix) :] for p in _list(spec.get("profiles")) if str(p).startswith(prefix)), None
        )
    ports = (named_port(_map(p)) for p in _list(spec.get("ports")))
    return Pod(
        namespace=wep_namespace,
        name=_text(spec.get("pod")) or str(meta["name"]),
        labels=FrozenMap({k: v for k, v in own.items() if k not in _WEP_OWN_LABELS}),
        ips=tuple(str(parse_cidr(n).network_address) for n in _list(spec.get("ipNetworks"))),
        service_account=account,
        ports=tuple(p for p in ports if p is not None),
        generate_name=_text(meta.get("generateName")),
        node=_text(spec.get("node")),
        origin=origin,
    )


# ---------------------------------------------------------------------------------------------------------
# Kubernetes NetworkPolicy → Calico (lcg/backend/k8s/conversion/conversion.go, §6)
# ---------------------------------------------------------------------------------------------------------


def kubernetes_selector_text(value: Mapping[str, Any] | None, for_pods: bool) -> str:
    """k8sSelectorToCalico: a LabelSelector as Calico selector text ("" for an absent namespace selector)."""
    terms = [f"{ORCHESTRATOR_LABEL} == 'k8s'"] if for_pods else []
    if value is None:
        return " && ".join(terms)
    match_labels = _map(value.get("matchLabels"))
    expressions = _list(value.get("matchExpressions"))
    if not for_pods and not match_labels and not expressions:
        return "all()"
    terms += [f"{key} == {_quote(str(match_labels[key]))}" for key in sorted(match_labels)]
    for raw in expressions:
        expr = _map(raw)
        key, operator = expr.get("key"), expr.get("operator")
        values = [str(v) for v in _list(expr.get("values"))]
        if operator == "In":
            terms.append(_in_set(str(key), values))
        elif operator == "NotIn":
            terms.append(_in_set(str(key), values, "not in"))
        elif operator == "Exists":
            terms.append(f"has({key})")
        elif operator == "DoesNotExist":
            terms.append(f"! has({key})")
    return " && ".join(terms)


def kubernetes_policy_types(spec: Mapping[str, Any], api_server_defaults: bool) -> frozenset[Direction]:
    """policyTypes as Calico sees them: the API server fills them for a real NetworkPolicy, nothing does for a
    StagedKubernetesNetworkPolicy, and Calico reads an empty list as Ingress only (§6.1)."""
    written = _list(spec.get("policyTypes"))
    if not written and api_server_defaults:
        written = ["Ingress", *(["Egress"] if _list(spec.get("egress")) else [])]
    types = frozenset(Direction(t) for t in written)
    return types or frozenset({Direction.INGRESS})


def _simplify_ports(ports: Sequence[PortRange | str]) -> Ports:
    """SimplifyPorts: numeric ports merged into the fewest ranges; named ports kept as they are."""
    names = tuple(p for p in ports if isinstance(p, str))
    numeric = [p for p in ports if isinstance(p, PortRange)]
    if len(ports) <= 1 or len(numeric) <= 1:
        return Ports(tuple(numeric), names)
    merged: list[PortRange] = []
    for low, high in sorted((r.first, r.last) for r in numeric):
        if merged and low <= merged[-1].last + 1:
            merged[-1] = PortRange(merged[-1].first, max(merged[-1].last, high))
        else:
            merged.append(PortRange(low, high))
    return Ports(tuple(merged), names)


def kubernetes_port(raw: Mapping[str, Any]) -> tuple[str, PortRange | str | None]:
    """One NetworkPolicyPort: (protocol, port or None for all ports of that protocol); TCP by default."""
    protocol = str(raw.get("protocol") or "TCP")
    port = raw.get("port")
    if port is None:
        return protocol, None
    end = raw.get("endPort")
    if end is not None:
        return protocol, parse_port(f"{port}:{end}")
    return protocol, parse_port(port)


def _peer_fields(
    peer: Mapping[str, Any] | None,
) -> tuple[EntityFields, tuple[IPNetwork, ...], tuple[IPNetwork, ...]]:
    if peer is None:
        return EntityFields(), (), ()
    block = peer.get("ipBlock")
    if block is not None:
        nets = (parse_cidr(_map(block).get("cidr")),)
        return EntityFields(), nets, tuple(parse_cidr(c) for c in _list(_map(block).get("except")))
    pod_text = kubernetes_selector_text(_optional_map(peer.get("podSelector")), for_pods=True)
    ns_text = kubernetes_selector_text(_optional_map(peer.get("namespaceSelector")), for_pods=False)
    return EntityFields(selector=pod_text, namespace_selector=ns_text or None), (), ()


def _optional_map(value: Any) -> Mapping[str, Any] | None:
    return None if value is None else _map(value)


def kubernetes_rules(raw_rules: Any, namespace: str, ingress: bool, path: str) -> tuple[Rule, ...]:
    """k8sRuleToCalico for every rule: one Allow rule per (protocol × peer), protocols sorted."""
    rules: list[Rule] = []
    peer_key = "from" if ingress else "to"
    for k8s_index, raw in enumerate(_list(raw_rules)):
        raw = _map(raw)
        peers: list[Mapping[str, Any] | None] = [_map(p) for p in _list(raw.get(peer_key))] or [None]
        by_protocol: dict[str, list[PortRange | str] | None] = {}
        for port_raw in _list(raw.get("ports")) or [None]:
            if port_raw is None:
                by_protocol = {"": None}
                break
            protocol, port = kubernetes_port(_map(port_raw))
            if port is None:
                by_protocol[protocol] = None
            elif protocol not in by_protocol or by_protocol[protocol]:
                by_protocol.setdefault(protocol, [])
                ports = by_protocol[protocol]
                assert ports is not None
                ports.append(port)
        for protocol_name in sorted(by_protocol):
            port_list = by_protocol[protocol_name]
            ports = _simplify_ports(port_list) if port_list else None
            protocol = parse_protocol(protocol_name) if protocol_name else None
            for peer_index, peer in enumerate(peers):
                fields, nets, not_nets = _peer_fields(peer)
                peer_side = EntityRule(
                    nets=nets,
                    not_nets=not_nets,
                    selector=optional_selector(fields.selector),
                    namespace_selector=optional_selector(fields.namespace_selector),
                    effective_selector=entity_effective_selector(fields, namespace),
                )
                # Ingress: the peer is the source and the ports are the local destination's; egress: both
                # describe the destination.
                if ingress:
                    source, destination = peer_side, EntityRule(ports=ports)
                else:
                    source, destination = EntityRule(), dataclasses.replace(peer_side, ports=ports)
                rule_path = f"{path}[{k8s_index}]"
                if peer is not None:
                    rule_path += f".{peer_key}[{peer_index}]"
                rules.append(
                    Rule(
                        action=Action.ALLOW,
                        index=len(rules),
                        protocol=protocol,
                        source=source,
                        destination=destination,
                        path=rule_path,
                    )
                )
    return tuple(rules)


def kubernetes_policy(
    kind: PolicyKind, doc: Mapping[str, Any], policy_namespace: str, origin: SourceRef
) -> Policy:
    """A networking.k8s.io/v1 NetworkPolicy or a StagedKubernetesNetworkPolicy, translated as Calico does."""
    meta = _map(doc.get("metadata"))
    spec = _map(doc.get("spec"))
    name = str(meta["name"])
    staged_action = staged_action_of(spec) if kind.staged else None
    if staged_action is StagedAction.DELETE:
        return Policy(
            kind=kind,
            name=name,
            namespace=policy_namespace,
            tier=DEFAULT_TIER,
            order=KUBERNETES_POLICY_ORDER,
            selector=ALL,
            applies_to=policy_applies_to(policy_namespace, None),
            types=frozenset(),
            staged_action=staged_action,
            origin=origin,
        )
    pod_selector = kubernetes_selector_text(_map(spec.get("podSelector")), for_pods=True)
    return Policy(
        kind=kind,
        name=name,
        namespace=policy_namespace,
        tier=DEFAULT_TIER,
        order=KUBERNETES_POLICY_ORDER,
        selector=parse_selector(pod_selector),
        applies_to=policy_applies_to(policy_namespace, pod_selector),
        types=kubernetes_policy_types(spec, api_server_defaults=not kind.staged),
        ingress=kubernetes_rules(spec.get("ingress"), policy_namespace, True, "spec.ingress"),
        egress=kubernetes_rules(spec.get("egress"), policy_namespace, False, "spec.egress"),
        staged_action=staged_action,
        origin=origin,
    )


def policy(
    kind: PolicyKind, doc: Mapping[str, Any], policy_namespace: str | None, origin: SourceRef
) -> Policy:
    """Any policy kind; pass a staged object's `kind.enforced` to get the policy it promotes to."""
    if kind in (PolicyKind.KUBERNETES_NETWORK_POLICY, PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY):
        assert policy_namespace is not None
        return kubernetes_policy(kind, doc, policy_namespace, origin)
    return calico_policy(kind, doc, None if kind.is_global else policy_namespace, origin)
