"""Every kind flowstage reads, loaded into the model: what each field becomes."""

from __future__ import annotations

import ipaddress

from policy_helpers import load_text, only_policy

from flowstage.policy.model import (
    Action,
    Direction,
    HTTPMatch,
    ICMPMatch,
    NamedPort,
    PolicyKind,
    PortRange,
    Ports,
    ServiceMatch,
    StagedAction,
)


def test_global_network_policy(tmp_path):
    policy = only_policy(
        load_text(
            tmp_path,
            """
            apiVersion: projectcalico.org/v3
            kind: GlobalNetworkPolicy
            metadata: {name: security.block-bad}
            spec:
              tier: security
              order: 10.5
              selector: role == 'db'
              namespaceSelector: team == 'a'
              serviceAccountSelector: tier == 'x'
              types: [Ingress, Egress]
              doNotTrack: false
              applyOnForward: true
              ingress:
              - action: Log
              - action: Deny
                protocol: ICMP
                icmp: {type: 8, code: 0}
                source: {nets: [10.1.2.3/8]}
              - action: Allow
                protocol: TCP
                http: {methods: [GET], paths: [{exact: /healthz}, {prefix: /api}]}
                destination: {ports: [80, "8000:8080", http]}
              egress:
              - action: Pass
                notProtocol: 17
                ipVersion: 4
                destination: {notNets: ["192.168.0.0/16"], notPorts: []}
            """,
        )
    )
    assert (policy.kind, policy.name, policy.namespace, policy.tier, policy.order) == (
        PolicyKind.GLOBAL_NETWORK_POLICY,
        "security.block-bad",
        None,
        "security",
        10.5,
    )
    assert policy.types == {Direction.INGRESS, Direction.EGRESS}
    assert str(policy.namespace_selector) and str(policy.service_account_selector)
    assert policy.apply_on_forward and not policy.do_not_track and not policy.pre_dnat
    log, deny, allow = policy.ingress
    assert (log.action, log.index, deny.action, deny.index) == (Action.LOG, 0, Action.DENY, 1)
    assert (deny.protocol, deny.icmp, deny.effective_ip_version) == (1, ICMPMatch(8, 0), 4)
    assert deny.source.nets == (
        ipaddress.ip_network("10.0.0.0/8"),
    )  # masked to the network, as Calico stores it
    assert deny.path == "spec.ingress[1]"
    (passing,) = policy.egress
    assert (passing.action, passing.not_protocol, passing.ip_version) == (Action.PASS, 17, 4)
    assert passing.destination.not_nets == (ipaddress.ip_network("192.168.0.0/16"),)
    assert passing.destination.not_ports is None
    assert allow.destination.ports == Ports((PortRange(80, 80), PortRange(8000, 8080)), ("http",))
    assert allow.http == HTTPMatch(("GET",), (("exact", "/healthz"), ("prefix", "/api")))
    assert policy.flow_log_id == "gnp:security.block-bad"


def test_calico_network_policy_is_namespaced(tmp_path):
    policy = only_policy(
        load_text(
            tmp_path,
            """
            apiVersion: projectcalico.org/v3
            kind: NetworkPolicy
            metadata: {name: allow-web, namespace: prod}
            spec:
              selector: app == 'web'
              ingress:
              - action: Allow
                protocol: TCP
                source: {serviceAccounts: {names: [api, worker]}}
                destination: {ports: [443]}
              - action: Allow
                source: {services: {name: frontend}}
            """,
        )
    )
    assert (policy.kind, policy.namespace, policy.tier, policy.order) == (
        PolicyKind.NETWORK_POLICY,
        "prod",
        "default",
        None,
    )
    accounts, service = policy.ingress
    assert accounts.source.service_accounts.names == ("api", "worker")
    assert service.source.services == ServiceMatch(
        "frontend", "prod"
    )  # empty namespace means the policy's own
    assert policy.flow_log_id == "np:prod/allow-web"


def test_staged_calico_kinds_carry_their_staged_action(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: StagedGlobalNetworkPolicy
        metadata: {name: g}
        spec: {selector: all(), stagedAction: Learn}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedNetworkPolicy
        metadata: {name: n, namespace: prod}
        spec: {selector: all()}
        ---
        apiVersion: projectcalico.org/v3
        kind: StagedNetworkPolicy
        metadata: {name: gone, namespace: prod}
        spec: {stagedAction: Delete, tier: security}
        """,
    )
    assert bundle.errors == []
    learn, default_set, delete = bundle.policies
    assert (learn.kind, learn.staged_action) == (PolicyKind.STAGED_GLOBAL_NETWORK_POLICY, StagedAction.LEARN)
    assert (default_set.kind, default_set.staged_action) == (
        PolicyKind.STAGED_NETWORK_POLICY,
        StagedAction.SET,
    )
    assert (delete.staged_action, delete.tier, delete.types, delete.ingress) == (
        StagedAction.DELETE,
        "security",
        frozenset(),
        (),
    )
    assert all(p.staged for p in bundle.policies)
    assert bundle.promoted_form(learn).kind is PolicyKind.GLOBAL_NETWORK_POLICY
    assert bundle.promoted_form(default_set).staged_action is None


def test_kubernetes_network_policy(tmp_path):
    policy = only_policy(
        load_text(
            tmp_path,
            """
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: api-allow, namespace: prod}
            spec:
              podSelector: {matchLabels: {app: api}}
              ingress:
              - from: [{podSelector: {matchLabels: {app: web}}}]
                ports: [{port: 8080}]
            """,
        )
    )
    assert (policy.kind, policy.tier, policy.order) == (
        PolicyKind.KUBERNETES_NETWORK_POLICY,
        "default",
        1000.0,
    )
    assert policy.flow_log_id == "knp:prod/api-allow"
    (rule,) = policy.ingress
    assert (rule.action, rule.protocol, rule.destination.ports) == (
        Action.ALLOW,
        6,
        Ports((PortRange(8080, 8080),)),
    )


def test_staged_kubernetes_network_policy(tmp_path):
    policy = only_policy(
        load_text(
            tmp_path,
            """
            apiVersion: projectcalico.org/v3
            kind: StagedKubernetesNetworkPolicy
            metadata: {name: lock, namespace: prod}
            spec:
              stagedAction: Set
              podSelector: {}
              policyTypes: [Ingress]
            """,
        )
    )
    assert (policy.kind, policy.staged_action, policy.flow_log_id) == (
        PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY,
        StagedAction.SET,
        "sknp:prod/lock",
    )


def test_tiers(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: security}
        spec: {order: 100, defaultAction: Pass}
        ---
        apiVersion: projectcalico.org/v3
        kind: Tier
        metadata: {name: platform}
        """,
    )
    security, platform = bundle.tiers
    assert (security.name, security.order, security.default_action, security.defined) == (
        "security",
        100.0,
        Action.PASS,
        True,
    )
    assert (platform.order, platform.default_action) == (None, Action.DENY)


def test_network_sets(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: GlobalNetworkSet
        metadata: {name: blocked, labels: {feed: bad}}
        spec: {nets: [198.51.100.0/24, 2001:db8::1]}
        ---
        apiVersion: projectcalico.org/v3
        kind: NetworkSet
        metadata: {name: partners, namespace: prod, labels: {role: partner}}
        spec: {nets: [203.0.113.7]}
        """,
    )
    global_set, namespaced = bundle.network_sets
    assert (global_set.namespace, dict(global_set.labels)) == (None, {"feed": "bad"})
    assert global_set.nets == (
        ipaddress.ip_network("198.51.100.0/24"),
        ipaddress.ip_network("2001:db8::1/128"),
    )
    assert (namespaced.namespace, namespaced.nets) == ("prod", (ipaddress.ip_network("203.0.113.7/32"),))


def test_profiles_with_rules_and_labels_to_apply(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: Profile
        metadata: {name: kns.prod}
        spec:
          ingress: [{action: Deny}]
          egress: [{action: Allow}]
          labelsToApply: {pcns.team: a}
        """,
    )
    (profile,) = bundle.profiles
    assert (profile.name, profile.ingress[0].action, profile.egress[0].action) == (
        "kns.prod",
        Action.DENY,
        Action.ALLOW,
    )
    assert dict(profile.labels_to_apply) == {"pcns.team": "a"}
    assert bundle.inventory().profiles == {"kns.prod": profile}


def test_host_endpoints(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: HostEndpoint
        metadata: {name: node1-eth0, labels: {role: worker}}
        spec:
          node: node1
          interfaceName: eth0
          expectedIPs: [10.0.0.1]
          profiles: [projectcalico-default-allow]
          ports: [{name: ssh, port: 22, protocol: TCP}]
        """,
    )
    (hep,) = bundle.host_endpoints
    assert (hep.name, hep.node, hep.interface_name, hep.expected_ips) == (
        "node1-eth0",
        "node1",
        "eth0",
        ("10.0.0.1",),
    )
    assert (dict(hep.labels), hep.profiles, hep.ports) == (
        {"role": "worker"},
        ("projectcalico-default-allow",),
        (NamedPort("ssh", 6, 22),),
    )


def test_namespaces_gain_the_name_label_the_api_server_sets(tmp_path):
    bundle = load_text(
        tmp_path, "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod, labels: {team: a}}\n"
    )
    (namespace,) = bundle.namespaces
    assert dict(namespace.labels) == {"team": "a", "kubernetes.io/metadata.name": "prod"}
    assert bundle.inventory().namespaces == {"prod": namespace}


def test_pods_bring_labels_ips_service_account_and_named_ports(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: v1
        kind: Pod
        metadata: {name: web-7d9c-abcde, namespace: prod, generateName: web-7d9c-, labels: {app: web}}
        spec:
          nodeName: node1
          serviceAccountName: web-sa
          initContainers: [{name: init, ports: [{name: warmup, containerPort: 9000}]}]
          containers:
          - name: main
            ports:
            - {name: http, containerPort: 8080, protocol: TCP}
            - {containerPort: 9090}
            - {name: dns, containerPort: 53, protocol: UDP}
        status:
          podIP: 10.1.1.1
          podIPs: [{ip: 10.1.1.1}, {ip: "fd00::1"}]
        """,
    )
    (pod,) = bundle.pods
    assert (pod.namespace, pod.name, pod.generate_name, pod.node, pod.service_account) == (
        "prod",
        "web-7d9c-abcde",
        "web-7d9c-",
        "node1",
        "web-sa",
    )
    assert pod.ips == ("10.1.1.1", "fd00::1")
    assert pod.ports == (NamedPort("http", 6, 8080), NamedPort("dns", 17, 53), NamedPort("warmup", 6, 9000))
    assert bundle.inventory().pods == (pod,)


def test_workload_endpoints_are_read_as_the_pods_they_stand_for(tmp_path):
    bundle = load_text(
        tmp_path,
        """
        apiVersion: projectcalico.org/v3
        kind: WorkloadEndpoint
        metadata:
          name: node1-k8s-web--abc-eth0
          namespace: prod
          labels: {app: web, projectcalico.org/namespace: prod, projectcalico.org/orchestrator: k8s,
                   projectcalico.org/serviceaccount: web-sa}
        spec:
          pod: web-abc
          node: node1
          ipNetworks: [10.1.1.2/32]
          profiles: [kns.prod, ksa.prod.web-sa]
          ports: [{name: http, protocol: TCP, port: 8080}]
        """,
    )
    (pod,) = bundle.pods
    assert (pod.name, dict(pod.labels), pod.ips, pod.service_account) == (
        "web-abc",
        {"app": "web"},
        ("10.1.1.2",),
        "web-sa",
    )
    assert pod.ports == (NamedPort("http", 6, 8080),)


def test_inventory_not_given_is_none_not_empty(tmp_path):
    bundle = load_text(
        tmp_path, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n"
    )
    inventory = bundle.inventory()
    assert (inventory.namespaces, inventory.pods) == (None, None)
