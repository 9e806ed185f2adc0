"""The policy engine decides flows exactly as Calico does (calico-semantics.md §4, §5, §9).

Policies are built by hand here, already in the form the loader gives them (selectors rewritten as Calico's
update processors do, §2.4 / §2.5), so each case shows one rule of the semantics on its own.
"""

from __future__ import annotations

import ipaddress
import math

import pytest

from flowstage.policy.engine import Engine, UnknownReporter, format_trace, parse_failsafe_ports, trace_table
from flowstage.policy.model import (
    Action,
    Direction,
    EntityRule,
    FrozenMap,
    HostEndpoint,
    HTTPMatch,
    ICMPMatch,
    Inventory,
    NamedPort,
    Namespace,
    NetworkSet,
    Pod,
    Policy,
    PolicyKind,
    PolicySet,
    PortRange,
    Ports,
    Profile,
    Rule,
    ServiceAccountMatch,
    ServiceMatch,
    SetName,
    StagedAction,
    Tier,
)
from flowstage.policy.traffic import Endpoint, EndpointType, Outcome, Reason, Traffic, Verdict
from flowstage.selector import Selector, and_selectors, has_label, label_equals, not_selector, parse_selector

NS_KEY = "projectcalico.org/namespace"
TCP, UDP, ICMP, ICMPV6, UDPLITE = 6, 17, 1, 58, 136
INGRESS, EGRESS = Direction.INGRESS, Direction.EGRESS

# -- building policies the way the loader hands them over ------------------------------------------------


def S(text: str) -> Selector:
    return parse_selector(text)


def ports(*items: int | str) -> Ports:
    ranges, names = [], []
    for item in items:
        if isinstance(item, int):
            ranges.append(PortRange(item, item))
        elif ":" in item:
            first, last = item.split(":")
            ranges.append(PortRange(int(first), int(last)))
        else:
            names.append(item)
    return Ports(tuple(ranges), tuple(names))


def side(
    selector: str | None = None,
    not_selector: str | None = None,
    namespace_selector: str | None = None,
    sa_names: tuple[str, ...] = (),
    nets: tuple[str, ...] = (),
    not_nets: tuple[str, ...] = (),
    ports: Ports | None = None,
    not_ports: Ports | None = None,
    services: ServiceMatch | None = None,
) -> EntityRule:
    return EntityRule(
        nets=tuple(ipaddress.ip_network(n) for n in nets),
        not_nets=tuple(ipaddress.ip_network(n) for n in not_nets),
        selector=S(selector) if selector is not None else None,
        not_selector=S(not_selector) if not_selector is not None else None,
        namespace_selector=S(namespace_selector) if namespace_selector is not None else None,
        service_accounts=ServiceAccountMatch(names=sa_names) if sa_names else None,
        services=services,
        ports=ports,
        not_ports=not_ports,
    )


def rule(action: str = "Allow", **fields) -> Rule:
    for key in ("protocol", "not_protocol"):
        if isinstance(fields.get(key), str):
            fields[key] = {"TCP": TCP, "UDP": UDP, "ICMP": ICMP, "ICMPv6": ICMPV6, "UDPLite": UDPLITE}[fields[key]]
    return Rule(Action(action), 0, **fields)


def _scoped(entity: EntityRule, namespace: str | None) -> EntityRule:
    """§2.5: the positive selector after service-account, namespace and scoping rewrites."""
    parts = []
    if entity.service_accounts is not None:
        names = ", ".join(f'"{n}"' for n in entity.service_accounts.names)
        parts.append(S(f"projectcalico.org/serviceaccount in {{{names}}}"))
    if entity.selector is not None:
        parts.append(entity.selector)
    sel = and_selectors(*parts) if parts else None
    ns_sel = None
    if entity.namespace_selector is not None:
        ns_sel = (
            entity.namespace_selector.prefixed("pcns.")
            .replace_all(has_label(NS_KEY))
            .replace_global(not_selector(has_label(NS_KEY)))
        )
    elif namespace is not None:
        ns_sel = label_equals(NS_KEY, namespace)
    if ns_sel is not None and (sel is not None or entity.not_selector is not None or entity.namespace_selector):
        sel = and_selectors(ns_sel, sel) if sel is not None else ns_sel
    return EntityRule(**{**entity.__dict__, "effective_selector": sel})


def policy(
    kind: PolicyKind,
    name: str,
    namespace: str | None = None,
    *,
    tier: str = "default",
    order: float | None = None,
    selector: str = "",
    namespace_selector: str | None = None,
    types: tuple[str, ...] | None = None,
    ingress: tuple[Rule, ...] = (),
    egress: tuple[Rule, ...] = (),
    **flags,
) -> Policy:
    written = S(selector)
    applies = written
    if namespace is not None:
        applies = and_selectors(written, label_equals(NS_KEY, namespace)) if not written.is_all else label_equals(
            NS_KEY, namespace
        )
    elif namespace_selector is not None:
        ns = S(namespace_selector).prefixed("pcns.")
        applies = (and_selectors(written, ns) if not written.is_all else ns).replace_all(has_label(NS_KEY))
    if types is None:  # §3.3 defaulting
        types = ("Egress",) if egress and not ingress else ("Ingress", "Egress") if egress else ("Ingress",)

    def finish(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        return tuple(
            Rule(**{**r.__dict__, "index": i, "source": _scoped(r.source, namespace),
                    "destination": _scoped(r.destination, namespace)})
            for i, r in enumerate(rules)
        )

    return Policy(
        kind=kind, name=name, namespace=namespace, tier=tier, order=order, selector=written, applies_to=applies,
        types=frozenset(Direction(t) for t in types), ingress=finish(ingress), egress=finish(egress),
        namespace_selector=S(namespace_selector) if namespace_selector else None,
        staged_action=StagedAction.SET if kind.staged else None, **flags,
    )


def gnp(name: str, **kw) -> Policy:
    return policy(PolicyKind.GLOBAL_NETWORK_POLICY, name, **kw)


def sgnp(name: str, **kw) -> Policy:
    return policy(PolicyKind.STAGED_GLOBAL_NETWORK_POLICY, name, **kw)


def np(namespace: str, name: str, **kw) -> Policy:
    return policy(PolicyKind.NETWORK_POLICY, name, namespace, **kw)


def snp(namespace: str, name: str, **kw) -> Policy:
    return policy(PolicyKind.STAGED_NETWORK_POLICY, name, namespace, **kw)


DEFAULT_TIER = Tier("default", 1_000_000.0)


def policy_set(
    *policies: Policy, tiers: tuple[Tier, ...] = (), name: SetName = SetName.PROPOSED, inventory: Inventory | None = None
) -> PolicySet:
    all_tiers = {t.name: t for t in (DEFAULT_TIER, *tiers)}
    ordered = tuple(sorted(all_tiers.values(), key=lambda t: t.sort_key))
    per_tier = {t.name: tuple(sorted((p for p in policies if p.tier == t.name), key=lambda p: p.sort_key)) for t in ordered}
    return PolicySet(name, ordered, per_tier, inventory or Inventory())


# -- flows -----------------------------------------------------------------------------------------------


def pod(namespace: str, name: str, labels: dict | None = None, *, ip: str | None = None, port: int | None = None,
        aggr: bool = False) -> Endpoint:
    return Endpoint(
        EndpointType.WEP, namespace, None if aggr else name, f"{name}-*" if aggr else name,
        None if labels is None else FrozenMap(labels), ip, port,
    )


def net(ip: str | None = None, aggr: str = "pub", port: int | None = None) -> Endpoint:
    return Endpoint(EndpointType.NET, None, None, aggr, FrozenMap({}), ip, port)


def host(name: str, labels: dict | None = None, *, ip: str | None = None, port: int | None = None) -> Endpoint:
    return Endpoint(EndpointType.HEP, None, name, name, None if labels is None else FrozenMap(labels), ip, port)


def flow(source: Endpoint, destination: Endpoint, protocol: int | None = TCP, **kw) -> Traffic:
    return Traffic(source, destination, protocol, **kw)


def decided(verdict: Verdict) -> tuple:
    """(outcome, tier, policy, rule) — what a user reads first."""
    return (verdict.outcome.value, verdict.tier, verdict.policy, verdict.rule)


FRONTEND = pod("prod", "frontend", {"app": "frontend", "env": "prod"}, ip="10.0.0.1")
BACKEND = pod("prod", "backend", {"app": "backend", "env": "prod"}, ip="10.0.0.2", port=8080)
DATABASE = pod("prod", "database", {"app": "database", "env": "prod"}, ip="10.0.0.3", port=8080)
PUB = net("203.0.113.9", port=443)


# -- §9.1 Allow / Deny / Pass / Log ----------------------------------------------------------------------

SECURITY = Tier("security", 100.0)
PASS_TIER = Tier("platform", 200.0, default_action=Action.PASS)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # an Allow in an earlier tier ends the direction: the later Deny never runs
        ([rule("Allow")], [rule("Deny")], ("allow", "security", "first", 0)),
        # a Deny drops at once
        ([rule("Deny")], [rule("Allow")], ("deny", "security", "first", 0)),
        # Pass skips the rest of the tier (its default deny included) and goes to the next tier
        ([rule("Pass"), rule("Deny")], [rule("Allow")], ("allow", "default", "second", 0)),
        # Log never decides: the next rule does (rule indexes count the Log rule)
        ([rule("Log"), rule("Deny")], [rule("Allow")], ("deny", "security", "first", 1)),
    ],
    ids=["allow-ends", "deny-drops", "pass-next-tier", "log-continues"],
)
def test_actions_across_tiers(first, second, expected):
    pset = policy_set(
        gnp("first", tier="security", ingress=tuple(first)), gnp("second", ingress=tuple(second)), tiers=(SECURITY,)
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)) == expected


def test_pass_out_of_the_last_tier_reaches_the_namespace_profile():
    pset = policy_set(gnp("hand-over", ingress=(rule("Pass"),)))
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert decided(verdict) == ("allow", "__PROFILE__", "kns.prod", 0)
    assert verdict.policy_kind == "pro"


def test_tier_default_pass_continues_to_the_next_tier():
    pset = policy_set(
        gnp("platform-rules", tier="platform", ingress=(rule("Allow", protocol="UDP"),)),
        gnp("app-rules", ingress=(rule("Deny"),)),
        tiers=(PASS_TIER,),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)) == ("deny", "default", "app-rules", 0)


# -- §9.2 no verdict, end of tier, skipped tiers ---------------------------------------------------------


def test_a_policy_without_a_matching_rule_is_no_verdict_the_next_policy_decides():
    pset = policy_set(
        gnp("a-udp-only", order=10, ingress=(rule("Allow", protocol="UDP"),)),
        gnp("b-tcp", order=20, ingress=(rule("Allow", protocol="TCP"),)),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)) == ("allow", "default", "b-tcp", 0)


def test_end_of_tier_denies_when_every_applicable_policy_fell_through_and_names_the_first():
    pset = policy_set(
        gnp("a-udp-only", order=10, ingress=(rule("Allow", protocol="UDP"),)),
        gnp("b-sctp-only", order=20, ingress=(rule("Allow", protocol=132),)),
    )
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert decided(verdict) == ("deny", "default", "a-udp-only", -1)
    assert verdict.policy_kind == "gnp" and not verdict.staged


def test_end_of_tier_names_the_first_staged_policy_when_the_tier_has_one():
    pset = policy_set(
        gnp("a-udp-only", order=10, ingress=(rule("Allow", protocol="UDP"),)),
        sgnp("z-lockdown", order=20, selector="app == 'backend'"),
    )
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert decided(verdict) == ("deny", "default", "z-lockdown", -1)
    assert verdict.staged and verdict.policy_kind == "sgnp"


def test_a_tier_without_an_applicable_policy_is_skipped_with_its_default_action():
    pset = policy_set(
        gnp("only-databases", tier="security", selector="app == 'database'", ingress=(rule("Deny"),)),
        tiers=(SECURITY,),
    )
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS, explain=True)
    assert decided(verdict) == ("allow", "__PROFILE__", "kns.prod", 0)
    assert ("security", "skipped") in {(s.tier, s.outcome) for s in verdict.trace}


def test_an_ingress_only_policy_with_no_rules_isolates_ingress_and_leaves_egress_alone():
    pset = policy_set(gnp("isolate", selector="app == 'backend'", types=("Ingress",)))
    engine = Engine(pset)
    assert decided(engine.decide(flow(FRONTEND, BACKEND), INGRESS)) == ("deny", "default", "isolate", -1)
    assert decided(engine.decide(flow(BACKEND, DATABASE), EGRESS))[0] == "allow"


def test_an_egress_only_policy_does_not_count_for_ingress():
    pset = policy_set(gnp("egress-lockdown", types=("Egress",), egress=(rule("Allow", protocol="UDP"),)))
    engine = Engine(pset)
    assert decided(engine.decide(flow(FRONTEND, BACKEND), INGRESS))[0:2] == ("allow", "__PROFILE__")
    assert decided(engine.decide(flow(FRONTEND, BACKEND), EGRESS)) == ("deny", "default", "egress-lockdown", -1)


# -- §9.3 profiles --------------------------------------------------------------------------------------


def test_no_policy_at_all_means_the_pods_namespace_profile_allows():
    assert decided(Engine(policy_set()).decide(flow(PUB, BACKEND), INGRESS)) == ("allow", "__PROFILE__", "kns.prod", 0)


def test_explicit_profiles_with_deny_rules_deny_and_name_the_profile():
    deny_all = Profile("kns.prod", ingress=(Rule(Action.DENY, 0),), egress=(Rule(Action.DENY, 0),))
    pset = policy_set(inventory=Inventory(profiles={"kns.prod": deny_all}))
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert decided(verdict) == ("deny", "__PROFILE__", "kns.prod", 0)


def test_profile_labels_to_apply_are_visible_to_selectors_but_own_labels_win():
    kns = Profile(
        "kns.prod", ingress=(Rule(Action.ALLOW, 0),), egress=(Rule(Action.ALLOW, 0),),
        labels_to_apply=FrozenMap({"zone": "dmz", "app": "from-profile"}),
    )
    pset = policy_set(
        gnp("dmz-only", selector="zone == 'dmz' && app == 'backend'", ingress=(rule("Deny"),)),
        inventory=Inventory(profiles={"kns.prod": kns}),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)) == ("deny", "default", "dmz-only", 0)


def test_a_pass_inside_a_profile_moves_to_the_next_profile():
    inventory = Inventory(
        pods=(Pod("prod", "backend", FrozenMap({"app": "backend"}), service_account="api"),),
        profiles={
            "kns.prod": Profile("kns.prod", ingress=(Rule(Action.PASS, 0),)),
            "ksa.prod.api": Profile("ksa.prod.api", ingress=(Rule(Action.DENY, 0),)),
        },
    )
    verdict = Engine(policy_set(inventory=inventory)).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert decided(verdict) == ("deny", "__PROFILE__", "ksa.prod.api", 0)


# -- §9.4 order ------------------------------------------------------------------------------------------


def test_missing_order_sorts_last_within_the_tier():
    pset = policy_set(
        gnp("a-no-order", ingress=(rule("Deny"),)),
        gnp("z-ordered", order=100_000, ingress=(rule("Allow"),)),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)) == ("allow", "default", "z-ordered", 0)


def test_equal_orders_are_tried_by_name():
    pset = policy_set(
        gnp("b-allow", order=5, ingress=(rule("Allow"),)),
        gnp("a-deny", order=5, ingress=(rule("Deny"),)),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS))[:3] == ("deny", "default", "a-deny")


def test_tier_order_dominates_policy_order():
    pset = policy_set(
        gnp("early-order-late-tier", order=1, ingress=(rule("Allow"),)),
        gnp("late-order-early-tier", tier="security", order=math.inf, ingress=(rule("Deny"),)),
        tiers=(SECURITY,),
    )
    assert decided(Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS))[:3] == ("deny", "security", "late-order-early-tier")


# -- §9.6 selector corners in policy selectors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "applies"),
    [
        ("app != 'database'", True),  # != is true when the key is absent or differs
        ("tier not in {'db'}", True),  # not in: true when absent
        ("tier == 'db'", False),
        ("", True),  # empty selector: all()
        ("has(app) && !has(tier)", True),
    ],
)
def test_policy_selector_corner_cases(selector, applies):
    pset = policy_set(gnp("probe", selector=selector, ingress=(rule("Deny"),)))
    outcome = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS).outcome
    assert outcome is (Outcome.DENY if applies else Outcome.ALLOW)


def test_a_namespaced_policy_only_governs_its_own_namespace():
    pset = policy_set(np("staging", "deny-all", ingress=(rule("Deny"),)))
    assert Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS).outcome is Outcome.ALLOW


# -- §9.7 / §9.8 rule selector scoping and notSelector --------------------------------------------------

STAGING_WEB = pod("staging", "web", {"app": "frontend"}, ip="10.1.0.1")


@pytest.mark.parametrize(
    ("source", "peer", "matches"),
    [
        # a namespaced rule with only ports/nets matches any peer, even outside the namespace
        (side(ports=None), STAGING_WEB, True),
        (side(), PUB, True),
        # with a selector it is confined to the policy's namespace
        (side(selector="app == 'frontend'"), FRONTEND, True),
        (side(selector="app == 'frontend'"), STAGING_WEB, False),
        # namespaceSelector replaces the own-namespace restriction
        (side(selector="app == 'frontend'", namespace_selector="all()"), STAGING_WEB, True),
        (side(namespace_selector="projectcalico.org/name == 'staging'"), STAGING_WEB, True),
        (side(namespace_selector="projectcalico.org/name == 'staging'"), FRONTEND, False),
        # notSelector in a namespaced policy: own namespace && !N — external IPs never match
        (side(not_selector="app == 'frontend'"), pod("prod", "x", {"app": "other"}), True),
        (side(not_selector="app == 'frontend'"), FRONTEND, False),
        (side(not_selector="app == 'frontend'"), PUB, False),
        (side(not_selector="app == 'frontend'"), STAGING_WEB, False),
    ],
)
def test_namespaced_rule_selector_scoping(source, peer, matches):
    pset = policy_set(np("prod", "guard", selector="app == 'backend'", ingress=(rule("Deny", source=source),)))
    verdict = Engine(pset).decide(flow(peer, BACKEND), INGRESS)
    assert decided(verdict) == (("deny", "default", "prod/guard", 0) if matches else ("deny", "default", "prod/guard", -1))


@pytest.mark.parametrize(
    ("source", "peer", "matches"),
    [
        # a GNP notSelector alone matches every IP no matching entity owns, external ones included
        (side(not_selector="app == 'frontend'"), PUB, True),
        (side(not_selector="app == 'frontend'"), FRONTEND, False),
        (side(not_selector="app == 'frontend'"), STAGING_WEB, False),
        # a GNP selector matches in every namespace
        (side(selector="app == 'frontend'"), STAGING_WEB, True),
        # positive selectors never match an IP no Calico entity owns, not even all() or !has()
        (side(selector="all()"), PUB, False),
        (side(selector="!has(app)"), PUB, False),
        # `selector: !has(x)` matches known entities only; `notSelector: has(x)` also unknown sources
        (side(not_selector="has(app)"), PUB, True),
        # global(): non-namespaced entities only (host endpoints, global network sets)
        (side(namespace_selector="global()"), FRONTEND, False),
        (side(namespace_selector="global()"), host("node-1", {"role": "node"}, ip="192.168.0.10"), True),
        # namespaceSelector all(): every namespaced entity, no host endpoints
        (side(namespace_selector="all()"), STAGING_WEB, True),
        (side(namespace_selector="all()"), host("node-1", {"role": "node"}, ip="192.168.0.10"), False),
    ],
)
def test_global_rule_selectors_and_not_selector(source, peer, matches):
    pset = policy_set(gnp("guard", selector="app == 'backend'", ingress=(rule("Deny", source=source),)))
    verdict = Engine(pset).decide(flow(peer, BACKEND), INGRESS)
    assert verdict.rule == (0 if matches else -1)


def test_service_accounts_fold_into_the_selector():
    inventory = Inventory(pods=(
        Pod("prod", "frontend", FrozenMap({"app": "frontend"}), service_account="web"),
        Pod("prod", "worker", FrozenMap({"app": "worker"}), service_account="batch"),
    ))
    pset = policy_set(
        np("prod", "by-account", selector="app == 'backend'", ingress=(rule("Allow", source=side(sa_names=("web",))),)),
        inventory=inventory,
    )
    engine = Engine(pset)
    assert engine.decide(flow(pod("prod", "frontend", {"app": "frontend"}), BACKEND), INGRESS).rule == 0
    assert engine.decide(flow(pod("prod", "worker", {"app": "worker"}), BACKEND), INGRESS).rule == -1


# -- §9.9 network sets -----------------------------------------------------------------------------------


def test_a_network_set_makes_every_ip_in_its_cidr_match_its_labels():
    inventory = Inventory(network_sets=(
        NetworkSet("partners", None, FrozenMap({"role": "partner"}), (ipaddress.ip_network("203.0.113.0/24"),)),
    ))
    pset = policy_set(
        gnp("partners-in", selector="app == 'backend'", ingress=(rule("Allow", source=side(selector="role == 'partner'")),)),
        inventory=inventory,
    )
    engine = Engine(pset)
    assert decided(engine.decide(flow(PUB, BACKEND), INGRESS)) == ("allow", "default", "partners-in", 0)
    outside = net("198.51.100.7")
    assert decided(engine.decide(flow(outside, BACKEND), INGRESS)) == ("deny", "default", "partners-in", -1)
    # even a pod inside the CIDR matches: selectors match addresses, not endpoints
    inside_pod = pod("prod", "odd", {"app": "odd"}, ip="203.0.113.50")
    assert engine.decide(flow(inside_pod, BACKEND), INGRESS).rule == 0


def test_a_namespaced_network_set_carries_its_namespace_for_namespaced_rules():
    inventory = Inventory(
        namespaces={"prod": Namespace("prod", FrozenMap({"team": "a"}))},
        network_sets=(NetworkSet("office", "prod", FrozenMap({"kind": "office"}), (ipaddress.ip_network("198.51.100.0/24"),)),),
    )
    pset = policy_set(
        np("prod", "office-in", selector="app == 'backend'",
           ingress=(rule("Allow", source=side(selector="kind == 'office'")),)),
        inventory=inventory,
    )
    assert Engine(pset).decide(flow(net("198.51.100.4"), BACKEND), INGRESS).rule == 0


# -- §9.10 host endpoints --------------------------------------------------------------------------------

NODE = host("node-1", {"role": "node"}, ip="192.168.0.10", port=10250)
NODE_INVENTORY = Inventory(host_endpoints=(
    HostEndpoint("node-1", node="node-1", expected_ips=("192.168.0.10",), labels=FrozenMap({"role": "node"})),
))


def test_an_empty_gnp_selector_also_applies_to_host_endpoints():
    pset = policy_set(gnp("everything", ingress=(rule("Deny", protocol="UDP"),)), inventory=NODE_INVENTORY)
    verdict = Engine(pset).decide(flow(PUB, NODE), INGRESS)
    assert decided(verdict) == ("deny", "default", "everything", -1)


def test_namespaced_policies_never_select_host_endpoints():
    pset = policy_set(np("prod", "all-in-prod", ingress=(rule("Allow"),)), inventory=NODE_INVENTORY)
    # no policy, no profile: a host endpoint is denied
    assert decided(Engine(pset).decide(flow(PUB, NODE), INGRESS)) == ("deny", "__PROFILE__", "__NO_MATCH__", 0)


def test_host_endpoint_profiles_come_from_the_inventory():
    inventory = Inventory(host_endpoints=(
        HostEndpoint("node-1", expected_ips=("192.168.0.10",), labels=FrozenMap({"role": "node"}),
                     profiles=("projectcalico-default-allow",)),
    ))
    assert decided(Engine(policy_set(inventory=inventory)).decide(flow(PUB, NODE), INGRESS)) == (
        "allow", "__PROFILE__", "projectcalico-default-allow", 0,
    )


def test_a_host_endpoint_missing_from_the_inventory_is_unknown_only_when_profiles_decide():
    engine = Engine(policy_set(gnp("hosts", selector="role == 'node'", ingress=(rule("Deny", protocol="UDP"),),
                                   types=("Ingress",)), gnp("hosts-allow", selector="role == 'node'",
                                                             ingress=(rule("Allow", protocol="TCP"),))))
    unknown_host = host("node-9", {"role": "node"}, ip="192.168.0.99", port=10250)
    assert decided(engine.decide(flow(PUB, unknown_host), INGRESS)) == ("allow", "default", "hosts-allow", 0)
    no_policy = Engine(policy_set())
    verdict = no_policy.decide(flow(PUB, unknown_host), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.HOST_ENDPOINT_UNKNOWN


def test_a_host_endpoint_profile_missing_from_the_inventory_is_unknown_when_it_decides():
    inventory = Inventory(host_endpoints=(
        HostEndpoint("node-1", expected_ips=("192.168.0.10",), labels=FrozenMap({"role": "node"}),
                     profiles=("corp-hosts",)),
    ))
    verdict = Engine(policy_set(inventory=inventory)).decide(flow(PUB, NODE), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.PROFILE_UNKNOWN


@pytest.mark.parametrize(
    ("protocol", "port", "direction", "outcome"),
    [
        (TCP, 22, INGRESS, "allow"),  # inbound failsafe: ssh to the host
        (TCP, 6443, INGRESS, "allow"),
        (UDP, 22, INGRESS, "deny"),  # protocol matters
        (TCP, 8443, INGRESS, "deny"),
        (UDP, 53, EGRESS, "allow"),  # outbound failsafe: DNS from the host
        (TCP, 22, EGRESS, "deny"),  # ssh is inbound-only
    ],
)
def test_host_endpoint_failsafe_ports_accept_before_any_policy(protocol, port, direction, outcome):
    pset = policy_set(gnp("deny-everything", ingress=(rule("Deny"),), egress=(rule("Deny"),)), inventory=NODE_INVENTORY)
    node = host("node-1", {"role": "node"}, ip="192.168.0.10", port=port if direction is INGRESS else None)
    peer = net("203.0.113.9", port=port if direction is EGRESS else None)
    traffic = flow(peer, node, protocol) if direction is INGRESS else flow(node, peer, protocol)
    verdict = Engine(pset).decide(traffic, direction)
    assert verdict.outcome.value == outcome
    if outcome == "allow":
        assert verdict.policy == "failsafe"


def test_failsafe_lists_can_be_replaced_or_disabled():
    pset = policy_set(gnp("deny-everything", ingress=(rule("Deny"),)), inventory=NODE_INVENTORY)
    ssh = flow(PUB, host("node-1", {"role": "node"}, ip="192.168.0.10", port=22))
    assert Engine(pset, failsafe_inbound=()).decide(ssh, INGRESS).outcome is Outcome.DENY
    only_from_office = parse_failsafe_ports("tcp:198.51.100.0/24:22")
    assert Engine(pset, failsafe_inbound=only_from_office).decide(ssh, INGRESS).outcome is Outcome.DENY
    office_ssh = flow(net("198.51.100.3"), host("node-1", {"role": "node"}, ip="192.168.0.10", port=22))
    assert Engine(pset, failsafe_inbound=only_from_office).decide(office_ssh, INGRESS).outcome is Outcome.ALLOW


def test_untracked_and_pre_dnat_stages_run_before_normal_policy_for_host_endpoints():
    pset = policy_set(
        gnp("normal-allow", selector="role == 'node'", ingress=(rule("Allow"),)),
        gnp("raw-deny", selector="role == 'node'", ingress=(rule("Deny", protocol="UDP"),), do_not_track=True,
            apply_on_forward=True),
        gnp("prednat-deny", selector="role == 'node'", pre_dnat=True, apply_on_forward=True,
            ingress=(rule("Deny", protocol="TCP", destination=side(ports=ports(10250))),)),
        inventory=NODE_INVENTORY,
    )
    engine = Engine(pset)
    assert decided(engine.decide(flow(PUB, NODE), INGRESS)) == ("deny", "default", "prednat-deny", 0)
    assert decided(engine.decide(flow(PUB, NODE, UDP), INGRESS)) == ("deny", "default", "raw-deny", 0)
    other_port = host("node-1", {"role": "node"}, ip="192.168.0.10", port=9100)
    # no verdict in the untracked / preDNAT stages (their tiers end in Pass): normal policy decides
    assert decided(engine.decide(flow(PUB, other_port), INGRESS)) == ("allow", "default", "normal-allow", 0)
    # those stages never apply to pods, even when the selector would match
    raw_for_all = gnp("raw-all", ingress=(rule("Deny"),), do_not_track=True, apply_on_forward=True)
    assert Engine(policy_set(raw_for_all)).decide(flow(PUB, BACKEND, UDP), INGRESS).outcome is Outcome.ALLOW


# -- §4 each criterion ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "traffic", "matches"),
    [
        ({"protocol": "TCP"}, flow(FRONTEND, BACKEND, TCP), True),
        ({"protocol": "TCP"}, flow(FRONTEND, BACKEND, UDP), False),
        ({"protocol": 6}, flow(FRONTEND, BACKEND, TCP), True),  # a number and its name are the same
        ({"not_protocol": "UDP"}, flow(FRONTEND, BACKEND, TCP), True),
        ({"not_protocol": "TCP"}, flow(FRONTEND, BACKEND, TCP), False),
        ({"protocol": "TCP", "destination": side(ports=ports(8080))}, flow(FRONTEND, BACKEND), True),
        ({"protocol": "TCP", "destination": side(ports=ports("8000:8100"))}, flow(FRONTEND, BACKEND), True),
        ({"protocol": "TCP", "destination": side(ports=ports(80, 443))}, flow(FRONTEND, BACKEND), False),
        ({"protocol": "TCP", "destination": side(not_ports=ports(8080))}, flow(FRONTEND, BACKEND), False),
        ({"protocol": "TCP", "destination": side(not_ports=ports(9090))}, flow(FRONTEND, BACKEND), True),
        ({"protocol": "TCP", "source": side(ports=ports("1024:65535"))},
         flow(pod("prod", "frontend", {"app": "frontend"}, ip="10.0.0.1", port=40000), BACKEND), True),
        ({"source": side(nets=("10.0.0.0/24",))}, flow(FRONTEND, BACKEND), True),
        ({"source": side(nets=("10.9.0.0/16", "10.0.0.1"))}, flow(FRONTEND, BACKEND), True),  # bare IP = /32
        ({"source": side(nets=("192.168.0.0/16",))}, flow(FRONTEND, BACKEND), False),
        ({"source": side(not_nets=("10.0.0.0/24",))}, flow(FRONTEND, BACKEND), False),
        ({"source": side(not_nets=("192.168.0.0/16",))}, flow(FRONTEND, BACKEND), True),
        # destination criteria of an ingress rule constrain the local endpoint
        ({"destination": side(nets=("10.0.0.2/32",))}, flow(FRONTEND, BACKEND), True),
        ({"destination": side(selector="app == 'backend'")}, flow(FRONTEND, BACKEND), True),
        ({"destination": side(selector="app == 'database'")}, flow(FRONTEND, BACKEND), False),
        ({"protocol": "ICMP", "icmp": ICMPMatch(8)}, flow(FRONTEND, BACKEND, ICMP, icmp_type=8, icmp_code=0), True),
        ({"protocol": "ICMP", "icmp": ICMPMatch(8, 1)}, flow(FRONTEND, BACKEND, ICMP, icmp_type=8, icmp_code=0), False),
        ({"protocol": "ICMP", "not_icmp": ICMPMatch(8)}, flow(FRONTEND, BACKEND, ICMP, icmp_type=0, icmp_code=0), True),
        ({"protocol": "ICMP", "not_icmp": ICMPMatch(8)}, flow(FRONTEND, BACKEND, ICMP, icmp_type=8, icmp_code=0), False),
        ({"ip_version": 4}, flow(FRONTEND, BACKEND), True),
        ({"ip_version": 6}, flow(FRONTEND, BACKEND), False),
        ({"http": HTTPMatch(methods=("GET",))}, flow(FRONTEND, BACKEND), True),  # felix ignores http
    ],
)
def test_each_rule_criterion(criteria, traffic, matches):
    pset = policy_set(np("prod", "probe", selector="app == 'backend'", ingress=(rule("Deny", **criteria),)))
    assert Engine(pset).decide(traffic, INGRESS).rule == (0 if matches else -1)


def test_named_ports_resolve_against_the_owner_of_the_address_that_matches_the_same_sides_selector():
    inventory = Inventory(pods=(
        Pod("prod", "backend", FrozenMap({"app": "backend"}), ports=(NamedPort("http", TCP, 8080),)),
        Pod("prod", "database", FrozenMap({"app": "database"}), ports=(NamedPort("http", TCP, 5432),)),
    ))
    pset = policy_set(
        gnp("web", ingress=(rule("Allow", protocol="TCP", destination=side(selector="app == 'backend'", ports=ports("http"))),
                            rule("Deny"))),
        inventory=inventory,
    )
    engine = Engine(pset)
    assert engine.decide(flow(FRONTEND, BACKEND), INGRESS).rule == 0  # backend's http is 8080
    assert engine.decide(flow(FRONTEND, pod("prod", "backend", {"app": "backend"}, ip="10.0.0.2", port=80)), INGRESS).rule == 1
    # the database also names 5432 "http", but it does not match the destination selector
    db = pod("prod", "database", {"app": "database"}, ip="10.0.0.3", port=5432)
    assert engine.decide(flow(FRONTEND, db), INGRESS).rule == 1


def test_named_ports_without_a_protocol_use_the_named_ports_protocol_and_udplite_has_no_ports():
    inventory = Inventory(pods=(Pod("prod", "backend", FrozenMap({"app": "backend"}),
                                    ports=(NamedPort("dns", UDP, 53),)),))
    pset = policy_set(gnp("dns", ingress=(rule("Allow", destination=side(ports=ports("dns"))),)), inventory=inventory)
    engine = Engine(pset)
    target = pod("prod", "backend", {"app": "backend"}, ip="10.0.0.2", port=53)
    assert engine.decide(flow(FRONTEND, target, UDP), INGRESS).rule == 0
    assert engine.decide(flow(FRONTEND, target, TCP), INGRESS).rule == -1
    assert engine.decide(flow(FRONTEND, target, UDPLITE), INGRESS).rule == -1


def test_ip_family_quirk_a_v6_only_not_nets_never_matches_ipv4():
    pset = policy_set(gnp("v6-exclusion", ingress=(rule("Deny", source=side(not_nets=("fd00::/8",))),)))
    assert Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS).rule == -1
    v6_peer = pod("prod", "frontend", {"app": "frontend"}, ip="2001:db8::1")
    v6_backend = pod("prod", "backend", {"app": "backend", "env": "prod"}, ip="2001:db8::2", port=8080)
    assert Engine(pset).decide(flow(v6_peer, v6_backend), INGRESS).rule == 0


def test_icmp_without_ip_version_is_ipv4_only():
    pset = policy_set(gnp("ping", ingress=(rule("Deny", protocol="ICMP"),)))
    v6 = pod("prod", "backend", {"app": "backend"}, ip="2001:db8::2")
    assert Engine(pset).decide(flow(FRONTEND, BACKEND, ICMP, icmp_type=8, icmp_code=0), INGRESS).rule == 0
    assert Engine(pset).decide(flow(pod("prod", "a", {}, ip="2001:db8::1"), v6, ICMP), INGRESS).rule == -1


def test_services_need_endpoint_slices_and_are_unknown_when_they_decide():
    pset = policy_set(gnp("to-api", types=("Egress",), egress=(
        rule("Allow", destination=side(services=ServiceMatch("api", "prod"))),
    )))
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), EGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.SERVICE_ENDPOINTS_UNKNOWN
    assert (verdict.policy, verdict.rule) == ("to-api", 0)


# -- §9.14 staged policies ---------------------------------------------------------------------------------


def test_staged_policies_never_affect_the_current_set_and_a_staged_only_tier_is_skipped():
    lockdown = sgnp("lockdown", tier="security", selector="app == 'backend'")
    current = policy_set(lockdown, tiers=(SECURITY,), name=SetName.CURRENT)
    proposed = policy_set(lockdown, tiers=(SECURITY,), name=SetName.PROPOSED)
    traffic = flow(FRONTEND, BACKEND)
    assert decided(Engine(current).decide(traffic, INGRESS)) == ("allow", "__PROFILE__", "kns.prod", 0)
    assert decided(Engine(proposed).decide(traffic, INGRESS)) == ("deny", "security", "lockdown", -1)


def test_pending_set_evaluates_a_staged_policy_alongside_its_enforced_twin():
    enforced = np("prod", "db", selector="app == 'backend'", order=10, ingress=(rule("Allow", protocol="TCP"),))
    staged = snp("prod", "db", selector="app == 'backend'", order=10, ingress=(rule("Deny"),))
    pending = policy_set(enforced, staged, name=SetName.PENDING)
    # same order and name: the enforced policy sorts first (`N` < `S`) and decides
    assert decided(Engine(pending).decide(flow(FRONTEND, BACKEND), INGRESS)) == ("allow", "default", "prod/db", 0)
    verdict = Engine(pending).decide(flow(FRONTEND, BACKEND, UDP), INGRESS)
    assert decided(verdict) == ("deny", "default", "prod/db", 0) and verdict.staged and verdict.policy_kind == "snp"


def test_a_staged_delete_is_never_evaluated():
    delete = Policy(
        kind=PolicyKind.STAGED_GLOBAL_NETWORK_POLICY, name="gone", namespace=None, tier="default", order=None,
        selector=S(""), applies_to=S(""), types=frozenset({INGRESS}), staged_action=StagedAction.DELETE,
    )
    assert Engine(policy_set(delete, name=SetName.PENDING)).decide(flow(FRONTEND, BACKEND), INGRESS).tier == "__PROFILE__"


# -- §9.15 Kubernetes NetworkPolicy as translated ------------------------------------------------------------


def test_kubernetes_pod_selectors_carry_the_orchestrator_term_and_never_match_network_sets():
    inventory = Inventory(network_sets=(
        NetworkSet("lookalike", None, FrozenMap({"app": "frontend"}), (ipaddress.ip_network("203.0.113.0/24"),)),
    ))
    knp = policy(
        PolicyKind.KUBERNETES_NETWORK_POLICY, "allow-frontend", "prod", order=1000,
        selector="projectcalico.org/orchestrator == 'k8s' && app == 'backend'",
        ingress=(rule("Allow", protocol="TCP",
                      source=side(selector="projectcalico.org/orchestrator == 'k8s' && app == 'frontend'"),
                      destination=side(ports=ports(8080))),
                 rule("Allow", protocol="TCP", source=side(nets=("192.168.0.0/16",)))),
    )
    engine = Engine(policy_set(knp, inventory=inventory))
    assert decided(engine.decide(flow(FRONTEND, BACKEND), INGRESS)) == ("allow", "default", "prod/allow-frontend", 0)
    assert engine.decide(flow(PUB, BACKEND), INGRESS).rule == -1
    # ipBlock matches pod IPs too
    in_block = pod("staging", "x", {"app": "x"}, ip="192.168.3.3")
    assert engine.decide(flow(in_block, BACKEND), INGRESS).rule == 1
    assert engine.decide(flow(FRONTEND, BACKEND), INGRESS).policy_kind == "knp"


# -- endpoints: the labels Calico adds ----------------------------------------------------------------------------


def test_calico_adds_namespace_orchestrator_and_service_account_labels():
    inventory = Inventory(
        namespaces={"prod": Namespace("prod", FrozenMap({"team": "payments"}))},
        pods=(Pod("prod", "frontend", FrozenMap({"app": "frontend"}), service_account="web"),),
    )
    frontend = pod("prod", "frontend", {"app": "frontend"}, ip="10.0.0.1")
    for selector in (
        "projectcalico.org/namespace == 'prod'",
        "projectcalico.org/orchestrator == 'k8s'",
        "projectcalico.org/serviceaccount == 'web'",
        "pcns.team == 'payments'",
        "pcns.projectcalico.org/name == 'prod'",
        "pcns.kubernetes.io/metadata.name == 'prod'",
        "pcsa.projectcalico.org/name == 'web'",
    ):
        pset = policy_set(gnp("probe", selector=selector, types=("Egress",), egress=(rule("Deny"),)), inventory=inventory)
        assert Engine(pset).decide(flow(frontend, PUB), EGRESS).rule == 0, selector


def test_logged_pcns_and_pcsa_labels_cannot_spoof_namespace_labels():
    inventory = Inventory(namespaces={"prod": Namespace("prod", FrozenMap({"team": "payments"}))})
    spoofer = pod("prod", "x", {"pcns.team": "security"}, ip="10.0.0.9")
    pset = policy_set(gnp("probe", selector="pcns.team == 'security'", types=("Egress",), egress=(rule("Deny"),)),
                      inventory=inventory)
    assert Engine(pset).decide(flow(spoofer, PUB), EGRESS).tier == "__PROFILE__"


def test_pods_behind_an_aggregated_name_are_linked_by_generate_name():
    inventory = Inventory(pods=(
        Pod("prod", "backend-7d9c-aaaaa", FrozenMap({"app": "backend"}), generate_name="backend-7d9c-",
            service_account="api", ports=(NamedPort("http", TCP, 8080),)),
        Pod("prod", "backend-7d9c-bbbbb", FrozenMap({"app": "backend"}), generate_name="backend-7d9c-",
            service_account="api", ports=(NamedPort("http", TCP, 8080),)),
    ))
    pset = policy_set(
        gnp("http-from-api", ingress=(rule("Allow", protocol="TCP", destination=side(ports=ports("http")),
                                           source=side(sa_names=("api",))),)),
        inventory=inventory,
    )
    aggregated = Endpoint(EndpointType.WEP, "prod", None, "backend-7d9c-*", None, None, 8080)
    # labels not logged: the linked pods' shared labels, account and named ports stand in
    assert Engine(pset).decide(flow(aggregated, aggregated), INGRESS).rule == 0


# -- decide_reported / connection ----------------------------------------------------------------------------------


def test_reporter_chooses_the_direction_and_connection_needs_both_sides():
    pset = policy_set(gnp("no-egress-from-frontend", selector="app == 'frontend'", types=("Egress",)))
    engine = Engine(pset)
    traffic = flow(FRONTEND, BACKEND)
    assert engine.decide_reported(traffic, "dst").outcome is Outcome.ALLOW
    src = engine.decide_reported(traffic, "src")
    assert decided(src) == ("deny", "default", "no-egress-from-frontend", -1) and src.direction is EGRESS
    both = engine.connection(traffic)
    assert both.outcome is Outcome.DENY and both.direction is EGRESS
    # an external peer has no policy side: only the pod's side is judged
    assert engine.connection(flow(PUB, BACKEND)).direction is INGRESS


def test_rows_reported_at_a_non_policy_endpoint_are_unknown():
    verdict = Engine(policy_set()).decide(flow(FRONTEND, PUB), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.NOT_A_POLICY_ENDPOINT


def test_forwarded_rows_are_allowed_by_default_without_apply_on_forward_policy_and_unknown_with_it():
    traffic = flow(PUB, net("198.51.100.1", port=443))
    assert Engine(policy_set()).decide_reported(traffic, "fwd").outcome is Outcome.ALLOW
    forward = gnp("forward-guard", selector="role == 'node'", ingress=(rule("Deny"),), apply_on_forward=True)
    verdict = Engine(policy_set(forward)).decide_reported(traffic, "fwd")
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.FORWARDED_NOT_MODELLED
    # the workload side still counts: a deny there is definite
    deny_in = gnp("deny-in", selector="app == 'backend'", ingress=(rule("Deny"),))
    assert Engine(policy_set(forward, deny_in)).decide_reported(flow(PUB, BACKEND), "dst,fwd").outcome is Outcome.DENY
    with pytest.raises(UnknownReporter, match="expected one of"):
        Engine(policy_set()).decide_reported(traffic, "sideways")


# -- explain ------------------------------------------------------------------------------------------------------


def test_explain_shows_every_tier_policy_and_rule_tried_and_why():
    pset = policy_set(
        gnp("first", tier="security", selector="app == 'database'", ingress=(rule("Deny"),)),
        gnp("a-udp", order=1, ingress=(rule("Allow", protocol="UDP"),)),
        gnp("b-web", order=2, ingress=(rule("Log"), rule("Allow", protocol="TCP", destination=side(ports=ports(8080))))),
        tiers=(SECURITY,),
    )
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS, explain=True)
    assert decided(verdict) == ("allow", "default", "b-web", 1)
    steps = [(s.tier, s.policy, s.rule, s.outcome) for s in verdict.trace]
    assert ("security", None, None, "skipped") in steps
    assert ("default", "a-udp", 0, "no_match") in steps
    assert ("default", "b-web", 0, "matched") in steps  # the Log rule matches and evaluation continues
    assert ("default", "b-web", 1, "matched") in steps
    text = format_trace(verdict, "proposed")
    assert "protocol UDP: no (flow protocol TCP)" in text
    assert "destination ports [8080]: yes (port 8080)" in text
    # a trace is for explaining, not for comparing verdicts
    assert verdict == Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)


def test_explain_renders_logged_text_safely():
    sneaky = pod("prod", "frontend", {"app": "[bold red]x[/]"}, ip="10.0.0.1")
    pset = policy_set(gnp("probe", ingress=(rule("Allow", source=side(selector="app == 'y'")),)))
    verdict = Engine(pset).decide(flow(sneaky, BACKEND), INGRESS, explain=True)
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(trace_table(verdict, "proposed"))
    assert "[bold red]x[/]" in console.export_text()


# -- the lesson's scenario, built by hand ------------------------------------------------------------------


def _lesson(*extra: Policy) -> tuple[PolicySet, PolicySet]:
    database_allow = gnp(
        "database-allow-from-backend", selector="env == 'prod' && app == 'database'", types=("Ingress",),
        ingress=(rule("Allow", protocol="TCP", source=side(selector="env == 'prod' && app == 'backend'"),
                      destination=side(ports=ports(8080))),),
    )
    lockdown = sgnp("backend-lockdown-staged", selector="env == 'prod' && app == 'backend'", types=("Ingress",))
    current = policy_set(database_allow, *extra, name=SetName.CURRENT)
    proposed = policy_set(database_allow, lockdown, *extra, name=SetName.PROPOSED)
    return current, proposed


def test_lesson_frontend_to_backend_is_allowed_now_and_denied_after_promotion():
    current, proposed = _lesson()
    traffic = flow(FRONTEND, BACKEND)
    assert decided(Engine(current).decide_reported(traffic, "dst")) == ("allow", "__PROFILE__", "kns.prod", 0)
    after = Engine(proposed).decide_reported(traffic, "dst")
    assert decided(after) == ("deny", "default", "backend-lockdown-staged", -1)
    assert after.staged and after.policy_kind == "sgnp"


def test_lesson_backend_to_database_stays_allowed_by_rule_0():
    for pset in _lesson():
        verdict = Engine(pset).decide_reported(flow(BACKEND, DATABASE), "dst")
        assert decided(verdict) == ("allow", "default", "database-allow-from-backend", 0)


def test_lesson_safety_net_sorts_before_the_order_less_lockdown_so_nothing_breaks():
    safety_net = gnp("zzz-final-allow-everything", order=100_000, types=("Ingress", "Egress"),
                     ingress=(rule("Allow"),), egress=(rule("Allow"),))
    _, proposed = _lesson(safety_net)
    verdict = Engine(proposed).decide_reported(flow(FRONTEND, BACKEND), "dst")
    assert decided(verdict) == ("allow", "default", "zzz-final-allow-everything", 0)
