"""Kubernetes NetworkPolicy translated to its Calico equivalent, as Calico's converter does (semantics §6)."""

from __future__ import annotations

import ipaddress

from policy_helpers import load_text, only_policy

from flowstage.policy.model import Action, PortRange, Ports


def knp(tmp_path, spec: str, kind: str = "NetworkPolicy", api: str = "networking.k8s.io/v1"):
    text = f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: p, namespace: prod}}\nspec:\n"
    text += "".join(f"  {line}\n" for line in spec.strip("\n").splitlines())
    return only_policy(load_text(tmp_path, text))


def test_pod_selector_becomes_an_orchestrator_scoped_calico_selector(tmp_path):
    policy = knp(
        tmp_path,
        """
        podSelector:
          matchLabels: {tier: web, app: shop}
          matchExpressions:
          - {key: env, operator: In, values: [prod, staging]}
          - {key: canary, operator: DoesNotExist}
          - {key: zone, operator: NotIn, values: [z1]}
          - {key: team, operator: Exists}
        """,
    )
    assert str(policy.selector) == (
        '(projectcalico.org/orchestrator == "k8s" && app == "shop" && tier == "web" && env in {"prod", "staging"}'
        ' && !has(canary) && zone not in {"z1"} && has(team))'
    )
    assert str(policy.applies_to).endswith('projectcalico.org/namespace == "prod")')


def test_empty_pod_selector_selects_every_kubernetes_pod_in_the_namespace(tmp_path):
    policy = knp(tmp_path, "podSelector: {}")
    assert str(policy.selector) == 'projectcalico.org/orchestrator == "k8s"'


def test_one_allow_rule_per_protocol_and_peer_with_tcp_as_the_default(tmp_path):
    policy = knp(
        tmp_path,
        """
        podSelector: {}
        ingress:
        - from:
          - podSelector: {matchLabels: {app: web}}
          - ipBlock: {cidr: 10.0.0.0/8}
          ports:
          - {port: 80}
          - {protocol: UDP, port: 53}
        """,
    )
    summary = [
        (r.index, r.action, r.protocol, r.source.nets, r.destination.ports, r.path) for r in policy.ingress
    ]
    web = "spec.ingress[0].from[0]"
    block = "spec.ingress[0].from[1]"
    tcp80, udp53 = Ports((PortRange(80, 80),)), Ports((PortRange(53, 53),))
    ten = (ipaddress.ip_network("10.0.0.0/8"),)
    assert summary == [
        (0, Action.ALLOW, 6, (), tcp80, web),
        (1, Action.ALLOW, 6, ten, tcp80, block),
        (2, Action.ALLOW, 17, (), udp53, web),
        (3, Action.ALLOW, 17, ten, udp53, block),
    ]


def test_ports_of_one_protocol_are_grouped_and_merged_into_ranges(tmp_path):
    policy = knp(
        tmp_path,
        """
        podSelector: {}
        ingress:
        - ports: [{port: 81}, {port: 80}, {port: 82}, {port: 9090}, {port: http}, {port: 8000, endPort: 8080}]
        """,
    )
    (rule,) = policy.ingress
    assert rule.destination.ports == Ports(
        (PortRange(80, 82), PortRange(8000, 8080), PortRange(9090, 9090)), ("http",)
    )


def test_a_protocol_without_a_port_means_all_its_ports(tmp_path):
    policy = knp(tmp_path, "podSelector: {}\ningress:\n- ports: [{port: 80}, {protocol: TCP}]")
    (rule,) = policy.ingress
    assert (rule.protocol, rule.destination.ports) == (6, None)


def test_no_ports_and_no_peers_allow_everything(tmp_path):
    policy = knp(tmp_path, "podSelector: {}\ningress:\n- {}\negress:\n- {}\npolicyTypes: [Ingress, Egress]")
    (inbound,) = policy.ingress
    (outbound,) = policy.egress
    for rule in (inbound, outbound):
        assert (rule.protocol, rule.source.is_empty, rule.destination.is_empty) == (None, True, True)


def test_ip_block_becomes_nets_and_not_nets_without_a_selector(tmp_path):
    policy = knp(
        tmp_path,
        """
        podSelector: {}
        policyTypes: [Egress]
        egress:
        - to: [{ipBlock: {cidr: 172.16.0.0/12, except: [172.16.1.0/24, 172.17.0.0/16]}}]
        """,
    )
    (rule,) = policy.egress
    destination = rule.destination
    assert destination.nets == (ipaddress.ip_network("172.16.0.0/12"),)
    assert destination.not_nets == (
        ipaddress.ip_network("172.16.1.0/24"),
        ipaddress.ip_network("172.17.0.0/16"),
    )
    assert destination.effective_selector is None  # matches any address in the CIDR, pods included
    assert rule.source.is_empty


def test_egress_peers_and_ports_both_describe_the_destination(tmp_path):
    policy = knp(
        tmp_path,
        "podSelector: {}\npolicyTypes: [Egress]\negress:\n- to: [{podSelector: {matchLabels: {app: db}}}]\n  ports: [{port: 5432}]",
    )
    (rule,) = policy.egress
    assert rule.destination.ports == Ports((PortRange(5432, 5432),))
    assert str(rule.destination.effective_selector) == (
        '(projectcalico.org/namespace == "prod" && (projectcalico.org/orchestrator == "k8s" && app == "db"))'
    )


def test_empty_namespace_selector_means_all_namespaces(tmp_path):
    policy = knp(tmp_path, "podSelector: {}\ningress:\n- from: [{namespaceSelector: {}}]")
    source = policy.ingress[0].source
    assert str(source.namespace_selector) == "all()"
    assert str(source.effective_selector) == (
        '(has(projectcalico.org/namespace) && projectcalico.org/orchestrator == "k8s")'
    )


def test_namespace_and_pod_selector_in_one_peer_are_anded_across_namespaces(tmp_path):
    policy = knp(
        tmp_path,
        "podSelector: {}\ningress:\n- from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: x}}}]",
    )
    selector = policy.ingress[0].source.effective_selector
    assert str(selector) == '(pcns.team == "a" && (projectcalico.org/orchestrator == "k8s" && app == "x"))'


def test_staged_kubernetes_policy_translates_the_same_way(tmp_path):
    staged = knp(
        tmp_path,
        "stagedAction: Set\npodSelector: {}\ningress:\n- ports: [{port: 443}]",
        kind="StagedKubernetesNetworkPolicy",
        api="projectcalico.org/v3",
    )
    assert (staged.tier, staged.order, staged.ingress[0].protocol) == ("default", 1000.0, 6)
