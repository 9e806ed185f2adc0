"""One small matcher per rule criterion (calico-semantics §4): protocol, ICMP, ports (numbers, ranges, named),
nets, peer selectors (with notSelector, namespace scoping and network sets), services, IP family.

Matchers are three-valued: True, False, or a `Reason` (the criterion depends on a fact the log lacks).
`Reason` stands for Kleene's unknown, so `k_and` / `k_or` / `k_not` combine results and keep the cause.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flowstage.policy.engine.addresses import CIDRs
from flowstage.policy.engine.endpoints import (
    NAMESPACE_PREFIX,
    SERVICE_ACCOUNT_KEY,
    SERVICE_ACCOUNT_PREFIX,
    EndpointFacts,
    EndpointResolver,
)
from flowstage.policy.model import (
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    EntityRule,
    ICMPMatch,
    IPNetwork,
    Ports,
    Rule,
)
from flowstage.policy.traffic import Reason

if TYPE_CHECKING:
    from flowstage.selector import Selector

Tri = bool | Reason  # True, False, or unknown because of Reason
RESULTS_LIMIT = 262_144  # per-endpoint answers a matcher remembers before starting over (bounded memory)

_PROTOCOL_NAMES = {number: name.upper() if name != "icmpv6" else "ICMPv6" for name, number in PROTOCOL_NUMBERS.items()}
_PROTOCOL_NAMES[136] = "UDPLite"


def protocol_name(number: int | None) -> str:
    if number is None:
        return "unknown"
    return _PROTOCOL_NAMES.get(number, str(number))


def k_and(a: Tri, b: Tri) -> Tri:
    if a is False or b is False:
        return False
    return b if a is True else a


def k_or(a: Tri, b: Tri) -> Tri:
    if a is True or b is True:
        return True
    return b if a is False else a


def k_not(a: Tri) -> Tri:
    if a is True:
        return False
    if a is False:
        return True
    return a


def show(value: Tri) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return f"unknown ({value.value})"


class FlowContext:
    """The flow being judged, as matchers see it. `family` None: the IP family is not known."""

    __slots__ = (
        "proto", "family", "src", "dst", "src_port", "dst_port", "icmp_type", "icmp_code", "resolver", "l4_key",
        "src_key", "dst_key", "_per_family",
    )

    def __init__(
        self,
        proto: int | None,
        family: int | None,
        src: EndpointFacts,
        dst: EndpointFacts,
        src_port: int | None,
        dst_port: int | None,
        icmp_type: int | None,
        icmp_code: int | None,
        resolver: EndpointResolver,
    ) -> None:
        self.proto = proto
        self.family = family
        self.src = src
        self.dst = dst
        self.src_port = src_port
        self.dst_port = dst_port
        self.icmp_type = icmp_type
        self.icmp_code = icmp_code
        self.resolver = resolver
        self.l4_key = (proto, dst_port, src_port, icmp_type, icmp_code)
        # per-endpoint cache keys: endpoint id and IP family folded into one int
        code = 0 if family is None else family // 3
        self.src_key = src.id * 3 + code
        self.dst_key = dst.id * 3 + code
        self._per_family: dict[int, FlowContext] | None = None

    def with_family(self, family: int) -> FlowContext:
        """The same flow with its IP family fixed (made once per flow and family)."""
        if self._per_family is None:
            self._per_family = {}
        found = self._per_family.get(family)
        if found is None:
            found = self._per_family[family] = FlowContext(
                self.proto, family, self.src, self.dst, self.src_port, self.dst_port, self.icmp_type,
                self.icmp_code, self.resolver,
            )
        return found

    def side(self, source: bool) -> EndpointFacts:
        return self.src if source else self.dst


def _side_name(source: bool) -> str:
    return "source" if source else "destination"


# -- label selectors over an entity's effective labels ---------------------------------------------------


def selector_reason(selector: Selector, facts: EndpointFacts) -> Reason:
    """Which missing input makes `selector` undecidable on these labels (plain labels before namespace / SA)."""
    keys = facts.unknown_keys(selector.label_keys)
    if any(not k.startswith((NAMESPACE_PREFIX, SERVICE_ACCOUNT_PREFIX)) and k != SERVICE_ACCOUNT_KEY for k in keys):
        return Reason.LABELS_UNKNOWN
    if any(k.startswith(NAMESPACE_PREFIX) for k in keys):
        return Reason.NAMESPACE_LABELS_UNKNOWN
    if keys:
        return Reason.SERVICE_ACCOUNT_UNKNOWN
    return Reason.LABELS_UNKNOWN


def selector_value(selector: Selector, facts: EndpointFacts, cached: bool = False) -> Tri:
    """Does `selector` match the entity's effective labels? Kleene-unknown only when unknown keys decide it.

    `cached` uses the selector's per-label-set memo, worth it only for label sets met again and again."""
    if facts.owned is None:
        return Reason.LABELS_UNKNOWN
    if facts.has_unknowns:
        mentions = facts.mentions_unknown.get(id(selector))
        if mentions is None:
            mentions = any(facts.unknown(k) for k in selector.label_keys)
            facts.mentions_unknown[id(selector)] = mentions
        if mentions:
            result = selector.evaluate(facts.labels, facts.unknown)
            return selector_reason(selector, facts) if result is None else result
    return selector.matches_cached(facts.labels) if cached else selector.matches(facts.labels)


# -- criteria ---------------------------------------------------------------------------------------------


class Criterion:
    """One condition of a rule. `test` is called per flow; `describe` says what it asks, for `explain`."""

    def test(self, ctx: FlowContext) -> Tri:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def observed(self, ctx: FlowContext) -> str:
        """What the flow has for this criterion, for `explain`."""
        return ""

    def explain(self, ctx: FlowContext) -> str:
        result = self.test(ctx)
        seen = self.observed(ctx)
        return f"{self.describe()}: {show(result)}" + (f" ({seen})" if seen else "")


class ProtocolMatch(Criterion):
    def __init__(self, protocol: int, negate: bool) -> None:
        self.protocol = protocol
        self.negate = negate

    def test(self, ctx: FlowContext) -> Tri:
        if ctx.proto is None:
            return Reason.PROTOCOL_UNKNOWN
        return (ctx.proto == self.protocol) != self.negate

    def describe(self) -> str:
        return f"{'notProtocol' if self.negate else 'protocol'} {protocol_name(self.protocol)}"

    def observed(self, ctx: FlowContext) -> str:
        return f"flow protocol {protocol_name(ctx.proto)}"


class ICMPTypeMatch(Criterion):
    def __init__(self, icmp: ICMPMatch, negate: bool) -> None:
        self.type = icmp.type
        self.code = icmp.code
        self.negate = negate

    def test(self, ctx: FlowContext) -> Tri:
        if ctx.proto is None:
            return Reason.PROTOCOL_UNKNOWN
        if ctx.proto not in (1, 58):
            return False  # the icmp match module only ever matches ICMP packets
        if ctx.icmp_type is None or (self.code is not None and ctx.icmp_code is None):
            return Reason.ICMP_TYPE_UNKNOWN
        hit = ctx.icmp_type == self.type and (self.code is None or ctx.icmp_code == self.code)
        return hit != self.negate

    def describe(self) -> str:
        code = "" if self.code is None else f" code {self.code}"
        return f"{'notICMP' if self.negate else 'icmp'} type {self.type}{code}"

    def observed(self, ctx: FlowContext) -> str:
        return f"flow ICMP type {ctx.icmp_type if ctx.icmp_type is not None else 'unknown'}" + (
            f" code {ctx.icmp_code}" if ctx.icmp_code is not None else ""
        )


class EntitySelector:
    """Calico's test for a rule side's selectors: does an entity owning the address match?

    Positive selector P (already rewritten, §2.5) with optional notSelector N: some owner matches P and not N.
    Only N: no owner matches N. Owners: the endpoint itself when Calico owns it (wep, hep, network set), plus
    every inventory network set whose CIDRs hold the address (§2.3). A `net` address has no owner.
    """

    def __init__(self, source: bool, positive: Selector | None, negative: Selector | None, cached: bool) -> None:
        self.source = source
        self.positive = positive
        self.negative = negative
        self.cached = cached

    def entity(self, facts: EndpointFacts, cached: bool = False) -> Tri:
        """The selectors on one entity's labels; `cached` for entities met again and again (network sets)."""
        value: Tri = True
        if self.positive is not None:
            value = selector_value(self.positive, facts, cached)
        if self.negative is not None and value is not False:
            if self.positive is None:
                return selector_value(self.negative, facts, cached)
            value = k_and(value, k_not(selector_value(self.negative, facts, cached)))
        return value

    def owned_match(self, facts: EndpointFacts, ctx: FlowContext) -> Tri:
        """Kleene OR over the owners of the address of `facts` of the entity test."""
        if facts.owned is None:
            found: Tri = Reason.LABELS_UNKNOWN
        elif facts.owned:
            found = self.entity(facts)
        else:
            found = False
        if found is True:
            return True
        ip_reason = Reason.SOURCE_IP_UNKNOWN if self.source else Reason.DEST_IP_UNKNOWN
        for owner, surely in ctx.resolver.owners(facts, ctx.family):
            found = k_or(found, k_and(self.entity(owner, self.cached), True if surely else ip_reason))
            if found is True:
                return True
        return found

    def test(self, ctx: FlowContext) -> Tri:
        found = self.owned_match(ctx.side(self.source), ctx)
        return found if self.positive is not None else k_not(found)


class SelectorMatch(Criterion):
    """A rule side's selector / notSelector / namespaceSelector / serviceAccounts, as one IP-set match."""

    def __init__(self, source: bool, entity_rule: EntityRule, pool: MatcherPool) -> None:
        self.source = source
        self.entity_rule = entity_rule
        self.matcher, self._results = pool.selector(source, entity_rule.effective_selector, entity_rule.not_selector)
        self.cached = pool.cached
        if not pool.cached:
            self.test = self.matcher.test  # type: ignore[method-assign]
        elif source:
            self.test = self._test_source  # type: ignore[method-assign]

    def test(self, ctx: FlowContext) -> Tri:
        found = self._results.get(ctx.dst_key)
        if found is None:
            found = self._remember(ctx.dst_key, self.matcher.test(ctx))
        return found

    def _test_source(self, ctx: FlowContext) -> Tri:
        found = self._results.get(ctx.src_key)
        if found is None:
            found = self._remember(ctx.src_key, self.matcher.test(ctx))
        return found

    def _remember(self, key: int, found: Tri) -> Tri:
        if len(self._results) >= RESULTS_LIMIT:
            self._results.clear()
        self._results[key] = found
        return found

    def describe(self) -> str:
        rule = self.entity_rule
        parts = []
        if rule.selector is not None:
            parts.append(f"selector {rule.selector}")
        if rule.namespace_selector is not None:
            parts.append(f"namespaceSelector {rule.namespace_selector}")
        if rule.service_accounts is not None:
            sa = rule.service_accounts
            names = f"names {list(sa.names)}" if sa.names else ""
            sel = f"selector {sa.selector}" if sa.selector is not None else ""
            parts.append("serviceAccounts " + " ".join(p for p in (names, sel) if p))
        if rule.not_selector is not None:
            parts.append(f"notSelector {rule.not_selector}")
        effective = rule.effective_selector
        text = f"{_side_name(self.source)} " + ", ".join(parts)
        if effective is not None:
            text += f" [effective: {effective}]"
        return text

    def observed(self, ctx: FlowContext) -> str:
        facts = ctx.side(self.source)
        owners = ctx.resolver.owners(facts, ctx.family)
        text = f"{facts.display} labels {dict(facts.labels)}" if facts.owned else f"{facts.display}, owned by no Calico entity"
        keys = set()
        for selector in (self.entity_rule.effective_selector, self.entity_rule.not_selector):
            if selector is not None:
                keys |= selector.label_keys
        unknown = facts.unknown_keys(keys) if facts.owned and facts.has_unknowns else []
        if unknown:
            text += f"; unknown: {', '.join(unknown)} ({facts.source})"
        if owners:
            text += "; network sets holding the address: " + ", ".join(
                o.display + ("" if surely else " (maybe)") for o, surely in owners
            )
        return text


class NetsMatch(Criterion):
    """`nets` (inside any CIDR) or `notNets` (inside none), on the side's address, for the flow's family."""

    def __init__(self, source: bool, cidrs: CIDRs, negate: bool, cached: bool = True) -> None:
        self.source = source
        self.cidrs = cidrs
        self.negate = negate
        self.cached = cached
        self._results: dict[int, Tri] = {}

    def test(self, ctx: FlowContext) -> Tri:
        key = ctx.src_key if self.source else ctx.dst_key
        found = self._results.get(key)
        if found is None:
            facts = ctx.src if self.source else ctx.dst
            inside = facts.addresses.only(ctx.family).within(self.cidrs)
            if inside is None:
                found = Reason.SOURCE_IP_UNKNOWN if self.source else Reason.DEST_IP_UNKNOWN
            else:
                found = inside != self.negate
            if self.cached:
                if len(self._results) >= RESULTS_LIMIT:
                    self._results.clear()
                self._results[key] = found
        return found

    def describe(self) -> str:
        return f"{_side_name(self.source)} {'notNets' if self.negate else 'nets'} [{self.cidrs.text}]"

    def observed(self, ctx: FlowContext) -> str:
        facts = ctx.side(self.source)
        return f"address {facts.addresses.label}" + (f", IPv{ctx.family}" if ctx.family else "")


class PortsMatch(Criterion):
    """`ports` / `notPorts` on one side: numbers and ranges, or named ports of the address's owner (§4.5)."""

    def __init__(self, source: bool, ports: Ports, negate: bool, named_selector: EntitySelector) -> None:
        self.source = source
        self.ranges = tuple((r.first, r.last) for r in ports.ranges)
        self.names = frozenset(ports.names)
        self.ports = ports
        self.negate = negate
        self.named_selector = named_selector
        self.covers_all = any(first <= 1 and last >= 65535 for first, last in self.ranges)

    def _numeric(self, ctx: FlowContext, port: int | None) -> Tri:
        if not self.ranges:
            return False
        if port is None:
            if ctx.proto is not None and ctx.proto not in PORT_PROTOCOLS:
                return False
            if self.covers_all and ctx.proto is not None:
                return True
            return Reason.SOURCE_PORT_UNKNOWN if self.source else Reason.DEST_PORT_UNKNOWN
        return any(first <= port <= last for first, last in self.ranges)

    def _named(self, ctx: FlowContext, port: int | None) -> Tri:
        if not self.names:
            return False
        facts = ctx.side(self.source)
        if facts.owned is False:
            return False  # only workload and host endpoints carry named ports
        if ctx.proto is None:
            return Reason.PROTOCOL_UNKNOWN
        if ctx.proto not in PORT_PROTOCOLS:
            return False
        if port is None:
            return Reason.SOURCE_PORT_UNKNOWN if self.source else Reason.DEST_PORT_UNKNOWN
        if facts.owned is None or facts.named_ports is None:
            return Reason.NAMED_PORT_UNKNOWN
        if not any(
            np.name in self.names and np.protocol == ctx.proto and np.port == port for np in facts.named_ports
        ):
            return False
        return self.named_selector.entity(facts)

    def test(self, ctx: FlowContext) -> Tri:
        port = ctx.src_port if self.source else ctx.dst_port
        found = self._numeric(ctx, port)
        if found is not True and self.names:
            found = k_or(found, self._named(ctx, port))
        return k_not(found) if self.negate else found

    def describe(self) -> str:
        items = [str(a) if a == b else f"{a}:{b}" for a, b in self.ranges] + sorted(self.names)
        return f"{_side_name(self.source)} {'notPorts' if self.negate else 'ports'} [{', '.join(items)}]"

    def observed(self, ctx: FlowContext) -> str:
        port = ctx.src_port if self.source else ctx.dst_port
        text = f"port {port if port is not None else 'unknown'}"
        if self.names:
            facts = ctx.side(self.source)
            if facts.named_ports is None:
                text += f"; named ports of {facts.display} unknown"
            else:
                text += f"; named ports of {facts.display}: " + (
                    ", ".join(f"{n.name}={protocol_name(n.protocol)}/{n.port}" for n in facts.named_ports) or "none"
                )
        return text


class ServicesMatch(Criterion):
    """`services`: needs the Service's EndpointSlices, which flowstage does not load."""

    def __init__(self, source: bool, name: str, namespace: str) -> None:
        self.source = source
        self.name = name
        self.namespace = namespace

    def test(self, ctx: FlowContext) -> Tri:
        return Reason.SERVICE_ENDPOINTS_UNKNOWN

    def describe(self) -> str:
        return f"{_side_name(self.source)} services {self.namespace}/{self.name}"


# -- a whole rule -----------------------------------------------------------------------------------------


_BOTH_FAMILIES = frozenset({4, 6})


def _families(rule: Rule) -> frozenset[int]:
    """IP families felix renders the rule for (§4.7): ipVersion, and every non-empty nets list needs a CIDR."""
    families = set()
    for family in (4, 6):
        version = rule.effective_ip_version
        if version is not None and version != family:
            continue
        lists = [side.nets for side in (rule.source, rule.destination)] + [
            side.not_nets for side in (rule.source, rule.destination)
        ]
        if any(nets and not any(n.version == family for n in nets) for nets in lists):
            continue
        if any(n.version == family and n.prefixlen == 0 for side in (rule.source, rule.destination) for n in side.not_nets):
            continue
        families.add(family)
    return frozenset(families)


class MatcherPool:
    """Shares matchers, and their per-endpoint result caches, between rules with equal criteria: policy sets
    repeat peer selectors and CIDR lists, so each (criterion, endpoint) answer is computed once."""

    def __init__(self, cached: bool = True, network_sets: bool = False) -> None:
        self.cached = cached
        self.network_sets = network_sets  # selector answers then depend on the address, hence the IP family
        self._selectors: dict[tuple, tuple[EntitySelector, dict[int, Tri]]] = {}
        self._nets: dict[tuple, NetsMatch] = {}

    def selector(
        self, source: bool, positive: Selector | None, negative: Selector | None
    ) -> tuple[EntitySelector, dict[int, Tri]]:
        key = (source, None if positive is None else str(positive), None if negative is None else str(negative))
        found = self._selectors.get(key)
        if found is None:
            found = (EntitySelector(source, positive, negative, self.cached), {})
            self._selectors[key] = found
        return found

    def nets(self, source: bool, nets: tuple[IPNetwork, ...], negate: bool) -> NetsMatch:
        key = (source, nets, negate)
        found = self._nets.get(key)
        if found is None:
            found = NetsMatch(source, CIDRs(nets), negate, self.cached)
            self._nets[key] = found
        return found


class CompiledRule:
    """A rule turned into its criteria, cheapest first; `match` is the Kleene AND of them.

    Criteria on the protocol, numeric ports and ICMP type (`l4`) depend on the flow's L4 fields alone, so
    `residual` can settle them once per (protocol, ports, ICMP) and leave only the endpoint criteria.
    """

    __slots__ = ("rule", "criteria", "l4", "tests", "rest_tests", "renders", "family_sensitive", "decision")

    def __init__(self, rule: Rule, pool: MatcherPool | None = None, decision: object = None) -> None:
        pool = pool or MatcherPool()
        self.rule = rule
        self.decision = decision  # what the rule decides when it matches (Allow / Deny), as its owner names it
        l4: list[Criterion] = []
        rest: list[Criterion] = []
        if rule.protocol is not None:
            l4.append(ProtocolMatch(rule.protocol, False))
        if rule.not_protocol is not None:
            l4.append(ProtocolMatch(rule.not_protocol, True))
        if rule.icmp is not None:
            l4.append(ICMPTypeMatch(rule.icmp, False))
        if rule.not_icmp is not None:
            l4.append(ICMPTypeMatch(rule.not_icmp, True))
        for source, side in ((False, rule.destination), (True, rule.source)):
            named = pool.selector(source, side.effective_selector, None)[0]
            for ports, negate in ((side.ports, False), (side.not_ports, True)):
                if ports is not None:
                    (rest if ports.names else l4).append(PortsMatch(source, ports, negate, named))
        for source, side in ((True, rule.source), (False, rule.destination)):
            if side.effective_selector is not None or side.not_selector is not None:
                rest.append(SelectorMatch(source, side, pool))
            if side.nets:
                rest.append(pool.nets(source, side.nets, False))
            if side.not_nets:
                rest.append(pool.nets(source, side.not_nets, True))
            if side.services is not None:
                rest.append(ServicesMatch(source, side.services.name, side.services.namespace))
        self.l4 = tuple(l4)
        self.criteria = tuple(l4 + rest)
        self.tests: tuple[Callable[[FlowContext], Tri], ...] = tuple(c.test for c in self.criteria)
        self.rest_tests: tuple[Callable[[FlowContext], Tri], ...] = tuple(c.test for c in rest)
        self.renders = _families(rule)
        # With the family unknown, the rule is judged once per family and the answers combined. A single
        # nets criterion gives that combination by itself (its address space spans both families), so only
        # rules whose answers could correlate across criteria, or that do not render for both, are split.
        nets = sum(isinstance(c, NetsMatch) for c in rest)
        by_address = pool.network_sets and any(isinstance(c, SelectorMatch) for c in rest)
        self.family_sensitive = self.renders != _BOTH_FAMILIES or nets > 1 or (by_address and nets > 0)

    def match(self, ctx: FlowContext) -> Tri:
        return _match(self, self.tests, True, ctx)

    def residual(self, ctx: FlowContext) -> ResidualRule | None:
        """This rule with its L4 criteria settled for the flow's protocol, ports and ICMP fields;
        None when they rule it out."""
        first: Tri = True
        for criterion in self.l4:
            found = criterion.test(ctx)
            if found is False:
                return None
            if first is True:
                first = found
        return ResidualRule(self, first)

    def explain(self, ctx: FlowContext) -> str:
        """Every criterion with its answer, e.g. `protocol TCP: yes; destination ports [8080]: no (port 80)`."""
        if not self.criteria and not self.family_sensitive:
            return "no criteria: matches every packet"
        parts = []
        if self.family_sensitive:
            families = "/".join(f"IPv{f}" for f in sorted(self.renders)) or "no IP family"
            seen = f"IPv{ctx.family}" if ctx.family else "of unknown family"
            parts.append(f"renders for {families} (flow {seen})")
        ctx_for = ctx if ctx.family is not None or not self.family_sensitive else None
        for criterion in self.criteria:
            if ctx_for is None:
                parts.append(
                    f"{criterion.describe()}: IPv4 {show(criterion.test(ctx.with_family(4)))}, "
                    f"IPv6 {show(criterion.test(ctx.with_family(6)))}"
                )
            else:
                parts.append(criterion.explain(ctx_for))
        if self.rule.http is not None:
            parts.append("http match ignored (felix's L3/L4 dataplane does not evaluate it)")
        return "; ".join(parts)


class ResidualRule:
    """A compiled rule whose L4 criteria are already answered (`first`: True or the Reason they left).

    `match` is chosen once: the lone remaining test itself when there is one, so the common case costs a
    single call.
    """

    __slots__ = ("compiled", "rule", "action", "first", "tests", "match", "decision")

    def __init__(self, compiled: CompiledRule, first: Tri) -> None:
        self.compiled = compiled
        self.rule = compiled.rule
        self.action = compiled.rule.action
        self.decision = compiled.decision
        self.first = first
        self.tests = compiled.rest_tests
        self.match: Callable[[FlowContext], Tri] = self._generic
        if first is True and not compiled.family_sensitive:
            if not self.tests:
                self.match = _always
            elif len(self.tests) == 1:
                self.match = self.tests[0]

    @property
    def family_sensitive(self) -> bool:
        return self.compiled.family_sensitive

    @property
    def renders(self) -> frozenset[int]:
        return self.compiled.renders

    def _generic(self, ctx: FlowContext) -> Tri:
        return _match(self, self.tests, self.first, ctx)

    def explain(self, ctx: FlowContext) -> str:
        return self.compiled.explain(ctx)


def _always(ctx: FlowContext) -> Tri:
    return True


def _match(rule: CompiledRule | ResidualRule, tests: tuple, first: Tri, ctx: FlowContext) -> Tri:
    """Kleene AND of the tests (after `first`), for the flow's IP family or, when unknown, for both."""
    if rule.family_sensitive:
        if ctx.family is None:
            renders = rule.renders
            v4 = _match(rule, tests, first, ctx.with_family(4)) if 4 in renders else False
            v6 = _match(rule, tests, first, ctx.with_family(6)) if 6 in renders else False
            if v4 == v6:
                return v4
            if not isinstance(v4, bool):
                return v4
            if not isinstance(v6, bool):
                return v6
            return Reason.IP_VERSION_UNKNOWN
        if ctx.family not in rule.renders:
            return False
    for test in tests:
        found = test(ctx)
        if found is True:
            continue
        if found is False:
            return False
        if first is True:
            first = found
    return first
