"""Three-valued verdicts: `unknown` (with the missing fact) only when the outcome really depends on it.

Flow logs aggregate IPs, ports and names away and carry no ICMP type; the engine explores both answers of
every undecidable criterion and is definite whenever they agree.
"""

from __future__ import annotations

import ipaddress

import pytest
from test_engine import (
    BACKEND,
    EGRESS,
    FRONTEND,
    ICMP,
    INGRESS,
    PUB,
    TCP,
    UDP,
    decided,
    flow,
    gnp,
    net,
    np,
    pod,
    policy_set,
    ports,
    rule,
    side,
)

from flowstage.policy.engine import Engine, format_trace
from flowstage.policy.model import (
    FrozenMap,
    ICMPMatch,
    Inventory,
    NamedPort,
    Namespace,
    NetworkSet,
    Pod,
    PolicySet,
    SetName,
)
from flowstage.policy.traffic import Endpoint, EndpointType, Outcome, Reason, Traffic

# frontend pods behind an aggregated name: no IP, no exact name (felix's default aggregation for allowed flows)
FRONTEND_AGGR = pod("prod", "frontend-7d9c", {"app": "frontend", "env": "prod"}, aggr=True)
PVT = net(aggr="pvt")
PUB_AGGR = net(aggr="pub")


def test_a_rule_on_source_nets_is_unknown_when_the_source_ip_was_aggregated_away():
    pset = policy_set(gnp("office-only", selector="app == 'backend'",
                          ingress=(rule("Allow", source=side(nets=("10.0.0.0/24",))),)))
    verdict = Engine(pset).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.SOURCE_IP_UNKNOWN
    # the verdict names where the missing fact mattered
    assert (verdict.tier, verdict.policy, verdict.rule, verdict.policy_kind) == ("default", "office-only", 0, "gnp")


def test_definite_despite_an_unknown_ip_when_the_protocol_rules_the_rule_out():
    pset = policy_set(gnp("dns-from-office", selector="app == 'backend'",
                          ingress=(rule("Allow", protocol="UDP", source=side(nets=("10.0.0.0/24",))),)))
    verdict = Engine(pset).decide(flow(FRONTEND_AGGR, BACKEND, TCP), INGRESS)
    assert decided(verdict) == ("deny", "default", "dns-from-office", -1)


@pytest.mark.parametrize(
    ("peer", "nets", "outcome"),
    [
        (PUB_AGGR, ("10.0.0.0/8",), "allow"),  # `pub` is never inside RFC 1918: the deny cannot match
        (PUB_AGGR, ("192.168.0.0/16", "172.16.0.0/12"), "allow"),
        (PVT, ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"), "deny"),  # `pvt` is always inside RFC 1918
        (PVT, ("10.0.0.0/8",), "unknown"),  # pvt may be 192.168.x.x
    ],
)
def test_pub_and_pvt_decide_nets_whenever_they_can(peer, nets, outcome):
    pset = policy_set(gnp("no-private", selector="app == 'backend'",
                          ingress=(rule("Deny", source=side(nets=nets)), rule("Allow"))))
    assert Engine(pset).decide(flow(peer, BACKEND), INGRESS).outcome.value == outcome


def test_a_known_ip_family_settles_catch_all_nets():
    pset = policy_set(gnp("internet", selector="app == 'backend'",
                          ingress=(rule("Deny", source=side(nets=("0.0.0.0/0",))), rule("Allow"))))
    assert Engine(pset).decide(flow(PUB_AGGR, BACKEND), INGRESS).outcome is Outcome.DENY  # BACKEND's IP is v4
    # with neither IP logged, `pub` may be IPv6, where the rule does not render
    aggregated_backend = pod("prod", "backend-5f", {"app": "backend"}, aggr=True, port=8080)
    verdict = Engine(pset).decide(flow(PUB_AGGR, aggregated_backend), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.IP_VERSION_UNKNOWN


def test_unknown_only_when_it_matters_both_continuations_allow():
    pset = policy_set(gnp("web", selector="app == 'backend'", ingress=(
        rule("Allow", source=side(nets=("10.0.0.0/24",))),
        rule("Allow", protocol="TCP"),
    )))
    verdict = Engine(pset).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS, explain=True)
    # the decider reported is the path on which the unknown criterion did not match
    assert decided(verdict) == ("allow", "default", "web", 1)
    text = format_trace(verdict)
    assert "assumes it does not match" in text and "same verdict" in text


def test_unknown_when_the_answers_differ_and_the_trace_says_why():
    pset = policy_set(gnp("web", selector="app == 'backend'", ingress=(
        rule("Deny", source=side(nets=("10.0.0.0/24",))),
        rule("Allow", protocol="TCP"),
    )))
    verdict = Engine(pset).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS, explain=True)
    assert (verdict.outcome, verdict.reason, verdict.rule) == (Outcome.UNKNOWN, Reason.SOURCE_IP_UNKNOWN, 0)
    assert any(step.outcome == "unknown" and step.rule == 0 for step in verdict.trace)


def test_named_port_without_pod_inventory_is_unknown():
    pset = policy_set(gnp("http", selector="app == 'backend'",
                          ingress=(rule("Allow", protocol="TCP", destination=side(ports=ports("http"))),)))
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.NAMED_PORT_UNKNOWN
    inventory = Inventory(pods=(Pod("prod", "backend", FrozenMap({"app": "backend"}), ports=(NamedPort("http", TCP, 8080),)),))
    assert Engine(policy_set(*pset.all_policies(), inventory=inventory)).decide(flow(FRONTEND, BACKEND), INGRESS).rule == 0


def test_namespace_selector_without_namespace_labels_is_unknown_except_by_name():
    by_label = policy_set(gnp("from-team", selector="app == 'backend'",
                              ingress=(rule("Allow", source=side(namespace_selector="team == 'web'")),)))
    verdict = Engine(by_label).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.NAMESPACE_LABELS_UNKNOWN
    # the namespace's name is always known
    by_name = policy_set(gnp("from-prod", selector="app == 'backend'",
                             ingress=(rule("Allow", source=side(namespace_selector="projectcalico.org/name == 'prod'")),)))
    assert Engine(by_name).decide(flow(FRONTEND, BACKEND), INGRESS).rule == 0
    with_inventory = policy_set(*by_label.all_policies(), inventory=Inventory(
        namespaces={"prod": Namespace("prod", FrozenMap({"team": "web"}))}))
    assert Engine(with_inventory).decide(flow(FRONTEND, BACKEND), INGRESS).rule == 0


def test_a_policy_whose_applicability_is_unknown_is_explored_both_ways():
    pset = policy_set(
        gnp("team-lockdown", namespace_selector="team == 'payments'", types=("Ingress",)),
    )
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert (verdict.outcome, verdict.reason, verdict.policy) == (Outcome.UNKNOWN, Reason.NAMESPACE_LABELS_UNKNOWN, "team-lockdown")
    assert verdict.rule is None


def test_labels_not_logged_make_rule_selectors_unknown_but_kleene_logic_still_decides():
    unlabelled = pod("prod", "frontend", None, ip="10.0.0.1")
    pset = policy_set(gnp("web", selector="app == 'backend'",
                          ingress=(rule("Deny", source=side(selector="app == 'frontend'")), rule("Allow"))))
    verdict = Engine(pset).decide(flow(unlabelled, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.LABELS_UNKNOWN
    # true whatever the labels: `... || has(projectcalico.org/namespace)` holds for every pod
    always = policy_set(gnp("web", selector="app == 'backend'", ingress=(
        rule("Deny", source=side(selector="app == 'frontend' || has(projectcalico.org/namespace)")),
    )))
    assert Engine(always).decide(flow(unlabelled, BACKEND), INGRESS).rule == 0


def test_service_accounts_without_pod_inventory_are_unknown():
    pset = policy_set(np("prod", "by-account", selector="app == 'backend'",
                         ingress=(rule("Allow", source=side(sa_names=("web",))),)))
    verdict = Engine(pset).decide(flow(FRONTEND, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.SERVICE_ACCOUNT_UNKNOWN


def test_icmp_type_is_never_logged_so_type_rules_are_unknown_for_icmp_only():
    pset = policy_set(gnp("ping", selector="app == 'backend'", ingress=(
        rule("Allow", protocol="ICMP", icmp=ICMPMatch(8)),
        rule("Allow", protocol="TCP"),
    )))
    engine = Engine(pset)
    icmp = engine.decide(flow(FRONTEND, BACKEND, ICMP), INGRESS)
    assert icmp.outcome is Outcome.UNKNOWN and icmp.reason is Reason.ICMP_TYPE_UNKNOWN
    assert decided(engine.decide(flow(FRONTEND, BACKEND, TCP), INGRESS)) == ("allow", "default", "ping", 1)


def test_ip_version_rules_are_unknown_when_no_ip_tells_the_family():
    pset = policy_set(gnp("v6-deny", selector="app == 'backend'", ingress=(rule("Deny", ip_version=6), rule("Allow"))))
    aggregated_backend = pod("prod", "backend-5f", {"app": "backend"}, aggr=True, port=8080)
    verdict = Engine(pset).decide(flow(FRONTEND_AGGR, aggregated_backend), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.IP_VERSION_UNKNOWN
    known = Engine(pset).decide(flow(FRONTEND_AGGR, aggregated_backend, ip_version=4), INGRESS)
    assert known.outcome is Outcome.ALLOW


def test_destination_port_aggregated_away():
    pset = policy_set(gnp("web", selector="app == 'backend'",
                          ingress=(rule("Allow", protocol="TCP", destination=side(ports=ports(8080))),)))
    no_port = pod("prod", "backend", {"app": "backend"}, ip="10.0.0.2")
    verdict = Engine(pset).decide(flow(FRONTEND, no_port), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.DEST_PORT_UNKNOWN
    # UDP cannot match a TCP rule whatever the port
    assert Engine(pset).decide(flow(FRONTEND, no_port, UDP), INGRESS).outcome is Outcome.DENY


def test_network_sets_may_own_an_aggregated_pod_address():
    inventory = Inventory(network_sets=(
        NetworkSet("corp", None, FrozenMap({"zone": "corp"}), (ipaddress.ip_network("10.0.0.0/8"),)),
        NetworkSet("everything", None, FrozenMap({"zone": "any"}), (ipaddress.ip_network("0.0.0.0/0"),)),
    ))
    corp = policy_set(gnp("corp", selector="app == 'backend'",
                          ingress=(rule("Deny", source=side(selector="zone == 'corp'")), rule("Allow"))), inventory=inventory)
    verdict = Engine(corp).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.SOURCE_IP_UNKNOWN
    # a /0 set surely holds every IPv4 address
    anywhere = policy_set(gnp("any", selector="app == 'backend'",
                              ingress=(rule("Deny", source=side(selector="zone == 'any'")),)), inventory=inventory)
    assert Engine(anywhere).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS).rule == 0


def test_unknown_exploration_is_bounded():
    many = tuple(
        rule("Deny" if i % 2 else "Allow", source=side(nets=(f"10.{i}.0.0/16",)))
        for i in range(40)
    )
    pset = policy_set(gnp("many", selector="app == 'backend'", ingress=many))
    verdict = Engine(pset, max_paths=16).decide(flow(FRONTEND_AGGR, BACKEND), INGRESS, explain=True)
    assert verdict.outcome is Outcome.UNKNOWN and verdict.reason is Reason.SOURCE_IP_UNKNOWN
    assert "stopped exploring" in format_trace(verdict)


def test_egress_to_an_aggregated_public_destination():
    pset = policy_set(gnp("egress", selector="app == 'frontend'", types=("Egress",), egress=(
        rule("Allow", protocol="TCP", destination=side(nets=("10.0.0.0/8",))),
        rule("Deny", protocol="TCP", destination=side(ports=ports(443))),
        rule("Allow"),
    )))
    out = Endpoint(EndpointType.NET, None, None, "pub", FrozenMap({}), None, 443)
    verdict = Engine(pset).decide(flow(FRONTEND, out), EGRESS)
    assert decided(verdict) == ("deny", "default", "egress", 1)
    assert Engine(pset).decide(flow(FRONTEND, PUB), EGRESS).rule == 1


def _mixed_policies() -> tuple[PolicySet, list[Traffic]]:
    """Unknown criteria of every kind (nets, named ports, namespace labels, network sets) and the flows to ask."""
    inventory = Inventory(
        namespaces={"prod": Namespace("prod", FrozenMap({"team": "web"}))},
        network_sets=(NetworkSet("corp", None, FrozenMap({"zone": "corp"}), (ipaddress.ip_network("10.0.0.0/8"),)),),
    )
    pset = policy_set(
        gnp("a", order=1, selector="app == 'backend'", ingress=(
            rule("Log", source=side(nets=("10.0.0.0/24",))),
            rule("Deny", protocol="UDP", source=side(selector="zone == 'corp'")),
            rule("Pass", source=side(nets=("192.168.0.0/16",))),
        )),
        gnp("b", order=2, namespace_selector="team == 'web'", ingress=(
            rule("Allow", protocol="TCP", destination=side(ports=ports("http", 8080))),
        )),
        gnp("c", order=3, selector="app == 'frontend'", types=("Egress",), egress=(
            rule("Deny", destination=side(nets=("0.0.0.0/0",))), rule("Allow"),
        )),
        inventory=inventory,
    )
    peers = [FRONTEND, FRONTEND_AGGR, PVT, PUB_AGGR, PUB, pod("prod", "x", None)]
    flows = [flow(peer, target, proto) for peer in peers for target in (BACKEND, pod("prod", "backend", {"app": "backend"}))
             for proto in (TCP, UDP, ICMP)]
    flows += [flow(FRONTEND_AGGR, peer, TCP) for peer in peers]
    return pset, flows


def test_the_fast_path_the_uncached_engine_and_explain_agree():
    pset, flows = _mixed_policies()
    fast, uncached = Engine(pset), Engine(pset, cache=False)
    for traffic in flows:
        for direction in (INGRESS, EGRESS):
            verdict = fast.decide(traffic, direction)
            assert verdict == uncached.decide(traffic, direction) == fast.decide(traffic, direction, explain=True)


def test_an_engine_sharing_another_sets_facts_and_rules_decides_as_one_on_its_own():
    pset, flows = _mixed_policies()
    fewer = PolicySet(SetName.CURRENT, pset.tiers, {t: ps[:1] for t, ps in pset.policies.items()}, pset.inventory)
    first = Engine(fewer)
    for traffic in flows:
        first.decide(traffic, INGRESS)  # its caches are warm when the next engine borrows them
    shared, alone = Engine(pset, share_with=first), Engine(pset)
    assert shared.resolver is first.resolver and shared.compiler.pool is first.compiler.pool
    for traffic in flows:
        for direction in (INGRESS, EGRESS):
            assert shared.decide(traffic, direction) == alone.decide(traffic, direction)
    # Another inventory means other endpoint facts: nothing is shared.
    other = Engine(pset, share_with=Engine(PolicySet(SetName.CURRENT, pset.tiers, pset.policies, Inventory())))
    assert other.resolver is not first.resolver
