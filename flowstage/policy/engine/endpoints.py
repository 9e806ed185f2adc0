"""What the engine knows about one flow endpoint: Calico's effective labels, which keys the log cannot tell,
its possible addresses, named ports and profiles — from the logged row plus the supplied inventory.

Effective labels of a pod (workload endpoint, calico-semantics §2.1): the logged labels (or, when the row
carries none, those of the Pod the row names in the Pod inventory) without any `pcns.*` / `pcsa.*` key, plus
`projectcalico.org/namespace`, `projectcalico.org/orchestrator=k8s`, `projectcalico.org/serviceaccount` (when
the Pod inventory tells it), `pcns.*` from the Namespace inventory (`pcns.projectcalico.org/name` and
`pcns.kubernetes.io/metadata.name` always, being the namespace's name), `pcsa.projectcalico.org/name`, and the
`labelsToApply` of its profiles (an endpoint's own labels win; then profiles in list order). An explicit
`kns.<ns>` Profile object contributes its `labelsToApply` on top of the namespace's `pcns.*` labels, which
Calico derives from the Namespace itself.

Aggregated rows log the labels their pods share. A key absent from them is taken as absent: pods behind one
aggregated name come from one template and share its labels. Pods are linked to a row by (namespace, name),
or, for an aggregated name `prefix-*`, by (namespace, generateName `prefix-`); when several linked pods
disagree on a key, that key is unknown.

The `unknown(key)` predicate says which keys the log and inventory cannot tell: every key when labels were not
logged (and no pod links), other `pcns.*` keys without the Namespace, `projectcalico.org/serviceaccount` and
`pcsa.*` without a linked Pod (`pcsa.*` beyond the name also need an explicit `ksa.<ns>.<sa>` Profile, as
flowstage reads no ServiceAccount objects).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from flowstage.policy.engine.addresses import ANY_ADDRESS, PRIVATE, PUBLIC, AddressSpace, CIDRs, merge
from flowstage.policy.model import (
    EMPTY_MAP,
    Action,
    FrozenMap,
    HostEndpoint,
    Inventory,
    NamedPort,
    NetworkSet,
    Pod,
    Profile,
    Rule,
)
from flowstage.policy.traffic import Endpoint, EndpointType, Reason

NAMESPACE_KEY = "projectcalico.org/namespace"
ORCHESTRATOR_KEY = "projectcalico.org/orchestrator"
SERVICE_ACCOUNT_KEY = "projectcalico.org/serviceaccount"
NAMESPACE_PREFIX = "pcns."
SERVICE_ACCOUNT_PREFIX = "pcsa."
NAME_KEY = "projectcalico.org/name"
METADATA_NAME_KEY = "kubernetes.io/metadata.name"
DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"

_ALLOW_BOTH = {"ingress": (Rule(Action.ALLOW, 0),), "egress": (Rule(Action.ALLOW, 0),)}


def namespace_profile(namespace: str, namespace_labels: FrozenMap | None) -> Profile:
    """Calico's generated `kns.<ns>` profile: allow both ways, `pcns.*` labels to apply."""
    labels = {f"{NAMESPACE_PREFIX}{k}": v for k, v in (namespace_labels or {}).items()}
    labels[f"{NAMESPACE_PREFIX}{METADATA_NAME_KEY}"] = namespace
    labels[f"{NAMESPACE_PREFIX}{NAME_KEY}"] = namespace
    return Profile(f"kns.{namespace}", labels_to_apply=FrozenMap(labels), **_ALLOW_BOTH)


def service_account_profile(namespace: str, service_account: str) -> Profile:
    """Calico's generated `ksa.<ns>.<sa>` profile: no rules; `pcsa.projectcalico.org/name` to apply."""
    labels = FrozenMap({f"{SERVICE_ACCOUNT_PREFIX}{NAME_KEY}": service_account})
    return Profile(f"ksa.{namespace}.{service_account}", labels_to_apply=labels)


DEFAULT_ALLOW = Profile(DEFAULT_ALLOW_PROFILE, **_ALLOW_BOTH)

_ids = itertools.count(1)
_FACTS_LIMIT = 262_144  # endpoints remembered before the memo starts over (bounded memory)


@dataclass(eq=False)
class EndpointFacts:
    """One endpoint as the engine sees it. Interned: equal rows share one object (and its caches)."""

    type: EndpointType | None
    namespace: str | None
    name: str | None
    labels: FrozenMap  # effective labels whose values are known
    addresses: AddressSpace
    owned: bool | None  # a Calico entity (wep, hep, network set) owns the address; None: type unknown
    named_ports: tuple[NamedPort, ...] | None  # None: not known (no linked Pod / HostEndpoint)
    # Profiles in Calico's order; None for the list = not known (host endpoint missing from the inventory);
    # a Reason for an item = a profile that cannot be identified or was not supplied.
    profiles: tuple[Profile | Reason, ...] | None
    labels_known: bool = True  # own (non-derived) labels known
    namespace_labels_known: bool = True
    service_account_known: bool = True
    service_account_labels_known: bool = True
    uncertain: frozenset[str] = frozenset()  # keys linked pods disagree on
    derived: frozenset[str] = frozenset()  # keys known whatever else is unknown (namespace name terms)
    display: str = ""
    source: str = ""  # where the facts came from, for `explain`
    id: int = field(default_factory=lambda: next(_ids))
    # Network sets owning part of this endpoint's addresses, per IP family (filled by EndpointResolver).
    network_sets: dict[int | None, tuple[tuple[EndpointFacts, bool | None], ...]] = field(default_factory=dict)
    # Per selector (by id): whether it mentions a key this endpoint cannot tell (filled by the matchers).
    mentions_unknown: dict[int, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.has_unknowns = not (
            self.labels_known
            and self.namespace_labels_known
            and self.service_account_known
            and self.service_account_labels_known
            and not self.uncertain
        )

    def unknown(self, key: str) -> bool:
        """Whether the presence and value of label `key` cannot be told from the log and inventory."""
        if key in self.derived:
            return False
        if key in self.uncertain:
            return True
        if key.startswith(NAMESPACE_PREFIX):
            return not self.namespace_labels_known
        if key.startswith(SERVICE_ACCOUNT_PREFIX):
            return not self.service_account_labels_known
        if key == SERVICE_ACCOUNT_KEY:
            return not self.service_account_known
        return not self.labels_known

    def unknown_keys(self, keys: Iterable[str]) -> list[str]:
        return sorted(k for k in keys if self.unknown(k))


def _shared(values: list[FrozenMap]) -> tuple[dict[str, str], frozenset[str]]:
    """Labels every map agrees on, and the keys they disagree on."""
    first = values[0]
    agreed = {k: v for k, v in first.items() if all(m.get(k) == v for m in values[1:])}
    keys = set().union(*(m.keys() for m in values))
    return agreed, frozenset(k for k in keys if k not in agreed)


class EndpointResolver:
    """Turns logged endpoints into EndpointFacts using the inventory; caches one facts object per row identity."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._pods_by_name: dict[tuple[str, str], Pod] = {}
        self._pods_by_prefix: dict[tuple[str, str], list[Pod]] = {}
        for pod in inventory.pods or ():
            self._pods_by_name[(pod.namespace, pod.name)] = pod
            if pod.generate_name:
                self._pods_by_prefix.setdefault((pod.namespace, pod.generate_name), []).append(pod)
        self._heps_by_name = {h.name: h for h in inventory.host_endpoints}
        self._heps_by_node: dict[str, list[HostEndpoint]] = {}
        for hep in inventory.host_endpoints:
            if hep.node:
                self._heps_by_node.setdefault(hep.node, []).append(hep)
        self._explicit_ksa = {name.rsplit(".", 1)[0] for name in inventory.profiles if name.startswith("ksa.")}
        self._cache: dict[tuple, EndpointFacts] = {}
        self._mentions: dict[tuple, dict[int, bool]] = {}
        # Generated kns.<ns> and ksa.<ns>.<sa> profiles, built once each and shared by the endpoints they apply to.
        self._namespace_profiles: dict[str, Profile] = {}
        self._account_profiles: dict[tuple[str, str], Profile] = {}
        self.network_sets = tuple(self._network_set(ns) for ns in inventory.network_sets)
        self._network_set_cidrs = tuple(CIDRs(ns.nets) for ns in inventory.network_sets)
        # Every network set interval per family as (first, last, set index): one pass finds the sets holding
        # an address (most logged endpoints have exactly one).
        self._network_set_intervals = {
            family: tuple(
                (first, last, i) for i, cidrs in enumerate(self._network_set_cidrs) for first, last in cidrs.family(family)
            )
            for family in (4, 6)
        }

    # -- public ------------------------------------------------------------------------------------------

    def resolve(self, endpoint: Endpoint) -> EndpointFacts:
        # id() of the type: enum members are singletons, and hashing them costs a Python-level call
        key = (id(endpoint.type), endpoint.namespace, endpoint.name, endpoint.name_aggr, endpoint.labels, endpoint.ip)
        facts = self._cache.get(key)
        if facts is None:
            if len(self._cache) >= _FACTS_LIMIT:
                self._cache.clear()  # ids are never reused, so matcher memos keyed by them stay correct
            facts = self._build(endpoint)
            # endpoints that cannot tell the same keys share one "mentions an unknown key" memo per selector
            signature = (
                facts.owned, facts.labels_known, facts.namespace_labels_known, facts.service_account_known,
                facts.service_account_labels_known, facts.uncertain, facts.derived,
            )
            facts.mentions_unknown = self._mentions.setdefault(signature, {})
            self._cache[key] = facts
        return facts

    def owners(self, facts: EndpointFacts, family: int | None) -> tuple[tuple[EndpointFacts, bool | None], ...]:
        """Network sets whose CIDRs may hold this endpoint's address: (set, True = surely / None = maybe)."""
        found = facts.network_sets.get(family)
        if found is None:
            space = facts.addresses.only(family)
            point = space.point
            if point is not None:
                facts.network_sets[family] = found = self._holding(facts, *point)
                return found
            hits = []
            for ns_facts, cidrs in zip(self.network_sets, self._network_set_cidrs, strict=True):
                if facts.type is EndpointType.NS and (ns_facts.namespace, ns_facts.name) == (facts.namespace, facts.name):
                    continue  # the endpoint itself, already matched by its own labels
                inside = space.within(cidrs)
                if inside is not False:
                    hits.append((ns_facts, True if inside else None))
            found = tuple(hits)
            facts.network_sets[family] = found
        return found

    def _holding(self, facts: EndpointFacts, family: int, address: int) -> tuple[tuple[EndpointFacts, bool | None], ...]:
        """owners() of an endpoint with exactly one address: the sets whose CIDRs hold it, each surely."""
        held = {i for first, last, i in self._network_set_intervals[family] if first <= address <= last}
        if not held:
            return ()
        hits = []
        for i in sorted(held):
            ns_facts = self.network_sets[i]
            if facts.type is EndpointType.NS and (ns_facts.namespace, ns_facts.name) == (facts.namespace, facts.name):
                continue  # the endpoint itself, already matched by its own labels
            hits.append((ns_facts, True))
        return tuple(hits)

    # -- building ----------------------------------------------------------------------------------------

    def _namespace_profile(self, namespace: str) -> Profile:
        """The generated `kns.<namespace>` profile (with the inventory's labels of the namespace, if given)."""
        found = self._namespace_profiles.get(namespace)
        if found is None:
            namespaces = self.inventory.namespaces
            known = namespaces.get(namespace) if namespaces is not None else None
            found = self._namespace_profiles[namespace] = namespace_profile(namespace, known.labels if known else None)
        return found

    def _build(self, ep: Endpoint) -> EndpointFacts:
        if ep.type is EndpointType.WEP:
            return self._workload(ep)
        if ep.type is EndpointType.HEP:
            return self._host(ep)
        if ep.type is EndpointType.NS:
            return self._logged_network_set(ep)
        addresses = self._addresses(ep)
        if ep.type is EndpointType.NET:
            return EndpointFacts(
                type=ep.type, namespace=None, name=ep.name, labels=EMPTY_MAP, addresses=addresses, owned=False,
                named_ports=(), profiles=(), display=f"net {ep.name or ep.name_aggr or ep.ip or '?'}",
                source="not a Calico entity",
            )
        return EndpointFacts(
            type=None, namespace=ep.namespace, name=ep.name, labels=EMPTY_MAP, addresses=addresses, owned=None,
            named_ports=None, profiles=None, labels_known=False, namespace_labels_known=False,
            service_account_known=False, service_account_labels_known=False,
            display=f"endpoint of unknown type {ep.name or ep.name_aggr or ep.ip or '?'}",
            source="endpoint type not logged",
        )

    @staticmethod
    def _addresses(ep: Endpoint, known: Iterable[str] = ()) -> AddressSpace:
        if ep.ip is not None:
            return AddressSpace.of_ips([ep.ip])
        known = tuple(known)
        if known:
            return AddressSpace.of_ips(known)
        if ep.name_aggr == "pvt":
            return PRIVATE
        if ep.name_aggr == "pub":
            return PUBLIC
        return ANY_ADDRESS

    def _linked_pods(self, ep: Endpoint) -> tuple[list[Pod], bool]:
        """Pods in the inventory this row stands for, and whether the link is by exact name."""
        if self.inventory.pods is None or ep.namespace is None:
            return [], False
        if ep.name:
            pod = self._pods_by_name.get((ep.namespace, ep.name))
            if pod is not None:
                return [pod], True
        if ep.name_aggr and ep.name_aggr.endswith("*"):
            return list(self._pods_by_prefix.get((ep.namespace, ep.name_aggr[:-1]), ())), False
        return [], False

    def _workload(self, ep: Endpoint) -> EndpointFacts:
        ns = ep.namespace or ""
        pods, exact = self._linked_pods(ep)
        uncertain: frozenset[str] = frozenset()
        if ep.labels is not None:
            own, labels_known, source = dict(ep.labels), True, "labels as logged"
        elif pods:
            own, uncertain = _shared([p.labels for p in pods])
            labels_known, source = True, f"labels from {len(pods)} linked pod(s)"
        else:
            own, labels_known, source = {}, False, "labels not logged"
        own = {k: v for k, v in own.items() if not k.startswith((NAMESPACE_PREFIX, SERVICE_ACCOUNT_PREFIX))}

        accounts = {p.service_account for p in pods}
        sa_known = len(accounts) == 1
        service_account = next(iter(accounts)) if sa_known else None
        ports_seen = {tuple(sorted(p.ports, key=lambda n: (n.name, n.protocol, n.port))) for p in pods}
        named_ports = next(iter(ports_seen)) if len(ports_seen) == 1 else None

        namespaces = self.inventory.namespaces
        namespace = namespaces.get(ns) if namespaces is not None else None
        labels = dict(own)
        labels[NAMESPACE_KEY] = ns
        labels[ORCHESTRATOR_KEY] = "k8s"
        derived = {NAMESPACE_KEY, ORCHESTRATOR_KEY, f"{NAMESPACE_PREFIX}{NAME_KEY}", f"{NAMESPACE_PREFIX}{METADATA_NAME_KEY}"}
        if sa_known and service_account:
            labels[SERVICE_ACCOUNT_KEY] = service_account
        if sa_known:
            derived.add(SERVICE_ACCOUNT_KEY)
            derived.add(f"{SERVICE_ACCOUNT_PREFIX}{NAME_KEY}")

        kns_name = f"kns.{ns}"
        explicit_kns = self.inventory.profiles.get(kns_name)
        generated_kns = self._namespace_profile(ns)
        profiles: list[Profile | Reason] = [explicit_kns or generated_kns]
        inherited = [generated_kns.labels_to_apply]
        if explicit_kns is not None:
            inherited.append(explicit_kns.labels_to_apply)
        sa_labels_known = True
        if sa_known and service_account:
            ksa_name = f"ksa.{ns}.{service_account}"
            explicit_ksa = self.inventory.profiles.get(ksa_name)
            generated_ksa = self._account_profiles.get((ns, service_account))
            if generated_ksa is None:
                generated_ksa = service_account_profile(ns, service_account)
                self._account_profiles[(ns, service_account)] = generated_ksa
            profiles.append(explicit_ksa or generated_ksa)
            inherited.append(generated_ksa.labels_to_apply)
            if explicit_ksa is not None:
                inherited.append(explicit_ksa.labels_to_apply)
            else:
                sa_labels_known = False  # other pcsa.* keys come from the ServiceAccount, which is not read
        elif not sa_known:
            sa_labels_known = False
            if f"ksa.{ns}" in self._explicit_ksa:
                profiles.append(Reason.SERVICE_ACCOUNT_UNKNOWN)  # an explicit ksa.<ns>.<sa> profile may apply
        for extra in inherited:
            for k, v in extra.items():
                labels.setdefault(k, v)

        name = ep.name or ep.name_aggr or "?"
        return EndpointFacts(
            type=EndpointType.WEP,
            namespace=ns,
            name=ep.name,
            labels=FrozenMap({k: v for k, v in labels.items() if k not in uncertain}),
            addresses=self._addresses(ep, pods[0].ips if exact else ()),
            owned=True,
            named_ports=named_ports,
            profiles=tuple(profiles),
            labels_known=labels_known,
            namespace_labels_known=namespace is not None or explicit_kns is not None,
            service_account_known=sa_known,
            service_account_labels_known=sa_labels_known,
            uncertain=uncertain,
            derived=frozenset(derived),
            display=f"wep {ns}/{name}",
            source=source + (f"; {len(pods)} pod(s) linked" if pods else "; no pod linked"),
        )

    def _host(self, ep: Endpoint) -> EndpointFacts:
        hep = self._heps_by_name.get(ep.name) if ep.name else None
        if hep is None and ep.name_aggr:
            on_node = self._heps_by_node.get(ep.name_aggr, [])
            if len({(h.labels, h.profiles, h.ports) for h in on_node}) == 1:
                hep = on_node[0]
        if ep.labels is not None:
            own, labels_known = dict(ep.labels), True
        elif hep is not None:
            own, labels_known = dict(hep.labels), True
        else:
            own, labels_known = {}, False
        profiles: tuple[Profile | Reason, ...] | None = None
        if hep is not None:
            resolved: list[Profile | Reason] = []
            for name in hep.profiles:
                profile = self.inventory.profiles.get(name)
                if profile is None and name == DEFAULT_ALLOW_PROFILE:
                    profile = DEFAULT_ALLOW
                resolved.append(Reason.PROFILE_UNKNOWN if profile is None else profile)
            profiles = tuple(resolved)
            for profile in resolved:
                if isinstance(profile, Profile):
                    for k, v in profile.labels_to_apply.items():
                        own.setdefault(k, v)
        name = ep.name or ep.name_aggr or "?"
        return EndpointFacts(
            type=EndpointType.HEP,
            namespace=None,
            name=ep.name,
            labels=FrozenMap(own),
            addresses=self._addresses(ep, hep.expected_ips if hep is not None else ()),
            owned=True,
            named_ports=hep.ports if hep is not None else None,
            profiles=profiles,
            labels_known=labels_known,
            display=f"hep {name}",
            source="HostEndpoint from the inventory" if hep is not None else "host endpoint not in the inventory",
        )

    def _network_set(self, ns: NetworkSet) -> EndpointFacts:
        """A network set from the inventory, as an owner of addresses rule selectors can match."""
        labels = dict(ns.labels)
        known = True
        derived: set[str] = set()
        if ns.namespace is not None:
            labels[NAMESPACE_KEY] = ns.namespace
            namespaces = self.inventory.namespaces
            namespace = namespaces.get(ns.namespace) if namespaces is not None else None
            for k, v in self._namespace_profile(ns.namespace).labels_to_apply.items():
                labels.setdefault(k, v)
            known = namespace is not None
            derived = {NAMESPACE_KEY, f"{NAMESPACE_PREFIX}{NAME_KEY}", f"{NAMESPACE_PREFIX}{METADATA_NAME_KEY}"}
        where = f"{ns.namespace}/{ns.name}" if ns.namespace else ns.name
        return EndpointFacts(
            type=EndpointType.NS, namespace=ns.namespace, name=ns.name, labels=FrozenMap(labels),
            addresses=_space_of(ns.nets, where), owned=True, named_ports=(), profiles=(),
            namespace_labels_known=known, derived=frozenset(derived), display=f"network set {where}",
            source="NetworkSet from the inventory",
        )

    def _logged_network_set(self, ep: Endpoint) -> EndpointFacts:
        match = next(
            (
                facts
                for facts in self.network_sets
                if facts.name in (ep.name, ep.name_aggr) and facts.namespace == ep.namespace
            ),
            None,
        )
        if ep.labels is None and match is not None and ep.ip is None:
            return match
        labels = dict(ep.labels) if ep.labels is not None else (dict(match.labels) if match else {})
        derived: set[str] = set()
        ns_known = True
        if ep.namespace:
            labels[NAMESPACE_KEY] = ep.namespace
            namespaces = self.inventory.namespaces
            namespace = namespaces.get(ep.namespace) if namespaces is not None else None
            for k, v in self._namespace_profile(ep.namespace).labels_to_apply.items():
                labels.setdefault(k, v)
            ns_known = namespace is not None
            derived = {NAMESPACE_KEY, f"{NAMESPACE_PREFIX}{NAME_KEY}", f"{NAMESPACE_PREFIX}{METADATA_NAME_KEY}"}
        name = ep.name or ep.name_aggr or "?"
        addresses = self._addresses(ep) if ep.ip is not None or match is None else match.addresses
        return EndpointFacts(
            type=EndpointType.NS, namespace=ep.namespace, name=ep.name or ep.name_aggr, labels=FrozenMap(labels),
            addresses=addresses, owned=True, named_ports=(), profiles=(),
            labels_known=ep.labels is not None or match is not None, namespace_labels_known=ns_known,
            derived=frozenset(derived), display=f"network set {ep.namespace + '/' if ep.namespace else ''}{name}",
            source="labels as logged" if ep.labels is not None else "labels from the inventory",
        )


def _space_of(nets: Iterable, label: str) -> AddressSpace:
    cidrs = CIDRs(nets)
    return AddressSpace(merge(cidrs.v4), merge(cidrs.v6), label)
